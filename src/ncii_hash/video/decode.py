"""Choosing a decoder and running it: :func:`decode_and_hash` is what the worker process (or
the in-process path) calls for one file; failures become :class:`~.frames.Abort`."""

from __future__ import annotations

from typing import Union

from .._util.optional import try_import
from .frames import INSTALL_HINT, Abort, Emit, Options
from .opencv import decode_opencv
from .pyav import decode_pyav


def choose_decoder(name: str) -> str:
    """The decoder ``name`` resolves to here; ImportError naming the extra if none is installed."""
    if name in ("auto", "pyav") and try_import("av") is not None:
        return "pyav"
    if name in ("auto", "opencv") and try_import("cv2") is not None:
        return "opencv"
    wanted = {"pyav": "PyAV (pip install av)", "opencv": "OpenCV (pip install opencv-python-headless)"}
    raise ImportError(wanted.get(name, INSTALL_HINT) + f"; {INSTALL_HINT}")


def decode_and_hash(path: Union[str, bytes], container: str, opts: Options, emit: Emit) -> None:
    """Decode ``path`` (sniffed as ``container``; or a whole file's bytes, PyAV only) and hash
    the sampled frames through ``emit``. Any failure of the decoder or the core becomes :class:`Abort`."""
    decoder = choose_decoder(opts.decoder)
    try:
        if decoder == "pyav":
            decode_pyav(path, container, opts, emit)
        elif isinstance(path, bytes):
            raise Abort("a video held in memory is decoded with PyAV only: pip install 'ncii-hash[video]'")
        else:
            decode_opencv(path, opts, emit)
    except (Abort, ImportError):
        raise
    except Exception as exc:  # av.FFmpegError, cv2.error, ValueError from the core, MemoryError...
        raise Abort(f"decoding failed: {type(exc).__name__}: {exc}") from None
