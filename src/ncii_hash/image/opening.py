"""Opening untrusted image files safely, before any pixel is decoded: the format allow-list
(foreign formats are named from their magic number, their parsers never run), the pixel
limit read from the header, and the quieting of Pillow's own decompression-bomb warning.
:mod:`.io` decodes what this module has opened.

Thread-safety: plugin registration runs once under a lock; the calls that can trigger
Pillow's bomb warning run under a module lock with that one warning silenced.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import threading
import warnings
from typing import IO, Iterator, Optional, Union

import numpy as np
from PIL import Image

from ..errors import ImageError

#: Images with more pixels than this are refused before decoding (100 megapixels).
DEFAULT_MAX_PIXELS = 100_000_000

#: Pillow format names that may be decoded, in the order they are tried. Everything else is
#: refused. JPEG comes first; Pillow's JPEG opener returns multi-picture phone files as MPO.
ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")

#: File suffixes considered images when walking folders.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff",
     ".heic", ".heif", ".hif", ".avif"}
)

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, "Image.Image", np.ndarray]

# Magic numbers of formats people send by mistake, only to word the refusal. Their parsers
# are never run.
_FOREIGN_MAGIC = (
    (b"%PDF", "a PDF document"),
    (b"8BPS", "a Photoshop (PSD) document"),
    (b"%!PS", "a PostScript/EPS document"),
    (b"\xc5\xd0\xd3\xc6", "an EPS document"),
    (b"\x00\x00\x01\x00", "an ICO icon"),
    (b"\x00\x00\x02\x00", "a CUR cursor"),
    (b"icns", "an ICNS icon"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"),
    (b"DDS ", "a DDS texture"),
    (b"gimp xcf", "a GIMP (XCF) document"),
    (b"PK\x03\x04", "a ZIP archive (or an office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video (hash videos with the video hasher)"),
    (b"OggS", "an Ogg file"),
)

_plugins_lock = threading.Lock()
_plugins_ready = False
# Serialises the rare calls that run with a DecompressionBombWarning filter installed;
# ``warnings.catch_warnings`` swaps process-global state and must not interleave with itself.
_bomb_warning_lock = threading.Lock()


def _register_plugins() -> None:
    global _plugins_ready
    if _plugins_ready:
        return
    with _plugins_lock:
        if _plugins_ready:
            return
        Image.init()
        try:  # HEIC/HEIF (and AVIF on Pillow builds without it) come from pillow-heif
            import pillow_heif

            pillow_heif.register_heif_opener()
            if hasattr(pillow_heif, "register_avif_opener") and "AVIF" not in Image.OPEN:
                try:
                    pillow_heif.register_avif_opener()
                except Exception:  # pragma: no cover - depends on the pillow-heif build
                    pass
        except ImportError:  # pragma: no cover - pillow-heif is a dependency
            pass
        _plugins_ready = True


def allowed_formats() -> tuple[str, ...]:
    """The allow-listed formats this installation can actually decode."""
    _register_plugins()
    # MPO is opened by the JPEG opener, so it is decodable exactly when JPEG is.
    return tuple(f for f in ALLOWED_FORMATS if f in Image.OPEN or (f == "MPO" and "JPEG" in Image.OPEN))


def _printable(text: str) -> str:
    """``text`` safe to print on any terminal or log: undecodable file-name bytes (held as
    surrogate escapes) become ``\\xNN`` and control characters are escaped, so an error
    message can always be written and a file name cannot forge extra log lines."""
    try:
        text = os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def describe_source(source: object) -> str:
    """A short, printable human name for an input, for error messages."""
    if isinstance(source, (str, os.PathLike)):
        try:
            return _printable(os.fsdecode(source))
        except TypeError:  # a PathLike whose __fspath__ returns something odd
            return f"<{type(source).__name__}>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{memoryview(source).nbytes} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.dtype} {source.shape}>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    return f"<{type(source).__name__}>"


def check_limit(max_pixels: Optional[int]) -> int:
    if max_pixels is None:
        return DEFAULT_MAX_PIXELS
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise TypeError(f"max_pixels must be a positive int or None; got {max_pixels!r}")
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive; got {max_pixels}")
    return int(max_pixels)


def pillow_may_warn(width: int, height: int) -> bool:
    """Whether Pillow's own bomb check could warn (or raise) for an image of this size."""
    pillow_limit = Image.MAX_IMAGE_PIXELS
    return pillow_limit is not None and max(1, width) * max(1, height) > pillow_limit


@contextlib.contextmanager
def no_bomb_warning(active: bool = True) -> Iterator[None]:
    """Silence Pillow's DecompressionBombWarning (our own limit already ruled on the size).

    Only used around the few calls that can emit it, because the ``warnings`` filter list is
    process-global: the lock keeps our own swaps from interleaving."""
    if not active:
        yield
        return
    with _bomb_warning_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _open_file(path: Union[str, os.PathLike], name: str) -> IO[bytes]:
    """Open a regular file for reading, mapping every failure to ImageError."""
    try:
        # O_NONBLOCK: opening a named pipe must not hang waiting for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ImageError(name, "no such file") from None
    except IsADirectoryError:
        raise ImageError(name, "is a folder, not an image file") from None
    except PermissionError:
        raise ImageError(name, "permission denied") from None
    except (OSError, ValueError) as exc:  # ValueError: embedded NUL in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ImageError(name, f"cannot open file ({reason})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageError(name, "is a folder, not an image file")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(name, "is not a regular file (a device, pipe or socket)")
        if st.st_size == 0:
            raise ImageError(name, "file is empty (0 bytes)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _identify(fp: IO[bytes], name: str, source: object) -> Image.Image:
    """Run the header parser of the first allow-listed format that accepts the data.

    Pillow's ``Image.open`` is not used because its bomb check would warn (or refuse) before
    our own, configurable limit is applied; Pillow still checks again while decoding."""
    try:
        prefix = fp.read(16)
    except OSError as exc:
        raise ImageError(name, f"cannot read file ({exc.strerror or exc})") from None
    failures = []
    for fmt in allowed_formats():
        if fmt == "MPO":
            continue  # opened by the JPEG opener
        factory, accept = Image.OPEN[fmt]
        try:
            accepted = accept is None or accept(prefix)
        except Exception:  # a plugin's sniffing must not decide the outcome
            accepted = False
        if not accepted or isinstance(accepted, str):  # a str is Pillow's "recognised, unsupported"
            continue
        try:
            fp.seek(0)
            # GIF grows the canvas to frame 0 while parsing the header: Pillow checks it there.
            with no_bomb_warning(fmt == "GIF"):
                img = factory(fp, "")
        except Image.DecompressionBombError:
            raise ImageError(name, "image is too large to decode safely (beyond Pillow's own limit)") from None
        except MemoryError:
            raise ImageError(name, "not enough memory to read the image header") from None
        except Exception as exc:
            failures.append(f"{fmt}: {exc}")
            continue
        if img.format not in ALLOWED_FORMATS:  # pragma: no cover - a plugin returned another kind
            img.close()
            raise ImageError(name, f"{img.format} images are not supported")
        return img
    if failures:
        raise ImageError(name, f"cannot read image header ({'; '.join(failures)})")
    raise ImageError(name, _unidentified_reason(prefix, source))


def _unidentified_reason(head: bytes, source: object) -> str:
    stripped = head.lstrip().lower()
    kind = next((k for magic, k in _FOREIGN_MAGIC if head.startswith(magic)), None)
    if kind is None and head[4:8] == b"ftyp":
        kind = "a video or an unsupported HEIF/AVIF variant (hash videos with the video hasher)"
    if kind is None and (stripped.startswith(b"<svg") or stripped.startswith(b"<?xml")):
        kind = "an SVG/XML document"
    if kind is None and (stripped.startswith(b"<!doctype html") or stripped.startswith(b"<html")):
        kind = "an HTML page"
    supported = ", ".join(allowed_formats())
    if kind:
        return f"this is {kind}, not a supported image (supported formats: {supported})"
    hint = ""
    if isinstance(source, (bytes, bytearray)) and len(source) < 4096:
        with contextlib.suppress(Exception):
            if os.path.isfile(bytes(source)):
                hint = (
                    "; bytes are read as encoded image data -- to hash a file whose name is bytes, "
                    "pass os.fsdecode(name)"
                )
    return f"not a supported image (supported formats: {supported}){hint}"


@contextlib.contextmanager
def opened_image(source: ImageSource, *, max_pixels: Optional[int] = None) -> Iterator[Image.Image]:
    """Open (but do not decode) an allow-listed image from a path or encoded bytes, check its
    size against ``max_pixels``, and yield the lazy PIL image; the file is closed on exit.

    Raises :class:`ImageError` for anything wrong with the input."""
    name = describe_source(source)
    limit = check_limit(max_pixels)
    _register_plugins()
    if isinstance(source, (str, os.PathLike)):
        try:
            path = os.fspath(source)
        except TypeError:
            raise TypeError(f"{name}: os.fspath() of this object failed; pass a str or pathlib.Path") from None
        fp = _open_file(path, name)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageError(name, "no data (0 bytes)")
        fp = io.BytesIO(data)
    else:
        raise TypeError(f"cannot open {name} as an image file; pass a path or encoded image bytes")
    with fp:
        img = _identify(fp, name, source)
        try:
            check_size(img, name, limit)
            yield img
        finally:
            img.close()


def check_size(img: Image.Image, name: str, limit: int) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError(name, f"image has no pixels ({width}x{height})")
    if width * height > limit:
        raise ImageError(
            name,
            f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels, above the limit of "
            f"{limit / 1e6:.1f} megapixels (pass a larger max_pixels to allow it)",
        )


