"""Safe image loading for hashing.

Decoding untrusted files is the riskiest thing this library does, so it is guarded:

* only an allow-list of formats is ever handed to a decoder (JPEG incl. MPO, PNG, WebP, GIF,
  BMP, TIFF, HEIC/HEIF, AVIF where available); SVG, PDF, PSD, EPS, ICO and the rest are
  refused without running their parsers;
* the pixel count is read from the header and refused above a limit *before* decoding
  (default 100 megapixels; ``max_pixels`` or :data:`DEFAULT_MAX_PIXELS`);
* only the first frame of an animation (or page of a TIFF, primary image of a HEIF) is decoded;
* every failure -- missing, unreadable, empty, truncated, corrupt, foreign or oversized input,
  and any exception a decoder raises on hostile data -- becomes :class:`ImageError` (a
  ``ValueError``) that names the input and the reason. Nothing else escapes for file or
  bytes input; wrong Python types raise ``TypeError``.

Pixels come back as ``uint8`` arrays, ``(H, W, 3)`` RGB or ``(H, W)`` grey, chosen so the
PDQ luma matches Meta's reference: single-channel images stay grey (their luma is the grey
value), alpha is dropped without compositing, palettes are expanded, 16-bit samples are
scaled by 255/65535 and float samples by their nominal range (see :func:`_scale_to_uint8`).
EXIF orientation is applied by default, so the hash is that of what a viewer shows;
``exif_transpose=False`` hashes the stored pixel grid like the reference tools.

Thread-safety: loading is safe from many threads at once. Plugin registration runs once
under a lock. Pillow's own decompression-bomb check (a second line behind ours) warns
through the process-global ``warnings`` machinery; the few calls that can trigger it run
under a module lock with that one warning silenced, so no DecompressionBombWarning ever
reaches the caller.
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
from .arrow import _rgbx_view, _use_single_block_images

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

_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the Pillow transpose that shows the image upright (PIL rotates
# counter-clockwise, so "rotate 90 CW to view" (6) is ROTATE_270).
_ORIENTATION_FIX = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

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


def _check_limit(max_pixels: Optional[int]) -> int:
    if max_pixels is None:
        return DEFAULT_MAX_PIXELS
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise TypeError(f"max_pixels must be a positive int or None; got {max_pixels!r}")
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive; got {max_pixels}")
    return int(max_pixels)


def _pillow_may_warn(width: int, height: int) -> bool:
    """Whether Pillow's own bomb check could warn (or raise) for an image of this size."""
    pillow_limit = Image.MAX_IMAGE_PIXELS
    return pillow_limit is not None and max(1, width) * max(1, height) > pillow_limit


@contextlib.contextmanager
def _no_bomb_warning(active: bool = True) -> Iterator[None]:
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
            with _no_bomb_warning(fmt == "GIF"):
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
    limit = _check_limit(max_pixels)
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
            _check_size(img, name, limit)
            yield img
        finally:
            img.close()


def _check_size(img: Image.Image, name: str, limit: int) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError(name, f"image has no pixels ({width}x{height})")
    if width * height > limit:
        raise ImageError(
            name,
            f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels, above the limit of "
            f"{limit / 1e6:.1f} megapixels (pass a larger max_pixels to allow it)",
        )


def _scale_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map integer or float samples of a wider-than-8-bit grey image to 0..255.

    The nominal range is inferred from the data, from the common conventions in turn:
    [0, 1] (float), [0, 255], [0, 65535]; anything else is stretched linearly from its
    minimum to its maximum. PDQ thresholds DCT coefficients at their median, so any
    positive linear map gives (nearly) the same hash; what matters is not clipping."""
    is_float = arr.dtype.kind == "f"
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        arr = np.where(finite, arr, 0.0)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if lo >= 0.0 and hi <= 1.0 and is_float:
        arr = arr * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        pass
    elif lo >= 0.0 and hi <= 65535.0:
        arr = arr * (255.0 / 65535.0)
    else:
        arr = (arr - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _pixels_from_pil(img: Image.Image, name: str, allow_rgbx: bool = False) -> np.ndarray:
    mode = img.mode
    if allow_rgbx and mode == "RGB":
        view = _rgbx_view(img)
        if view is not None:
            return view
    try:
        if mode.startswith("I;16"):
            # Always 16-bit: scale by the type's range, independent of the content.
            arr = np.asarray(img).astype(np.float64) * (255.0 / 65535.0)
            return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        if mode in ("I", "F"):
            return _scale_to_uint8(np.asarray(img))
        if mode in ("1", "L"):
            return np.asarray(img.convert("L") if mode == "1" else img, dtype=np.uint8)
        if mode in ("LA", "La"):
            # Alpha dropped without compositing; La is premultiplied, so unpremultiply first.
            return np.asarray((img.convert("LA") if mode == "La" else img).getchannel("L"), dtype=np.uint8)
        if mode == "RGB":
            return np.asarray(img, dtype=np.uint8)
        if mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")  # direct P -> RGB warns about byte transparency
        elif mode in ("RGBa", "PA"):
            img = img.convert("RGBA")
        rgb = img.convert("RGB")
    except (MemoryError, Image.DecompressionBombError):
        raise
    except Exception as exc:
        raise ImageError(name, f"cannot convert image mode {mode} to RGB or grey ({exc})") from None
    return np.asarray(rgb, dtype=np.uint8)


def _exif_upright(img: Image.Image) -> Image.Image:
    """``img`` turned as its EXIF/XMP orientation says; unchanged when the tag is absent,
    1, invalid or unreadable (a malformed EXIF block never stops hashing)."""
    try:
        orientation = img.getexif().get(_ORIENTATION_TAG)
        method = _ORIENTATION_FIX.get(orientation) if isinstance(orientation, int) else None
    except Exception:
        return img
    if method is None:
        return img
    return img.transpose(method)


def load_pixels(
    source: ImageSource,
    *,
    exif_transpose: bool = True,
    max_pixels: Optional[int] = None,
    draft_min_side: Optional[int] = None,
    allow_rgbx: bool = False,
) -> np.ndarray:
    """Decode ``source`` to a ``uint8`` array: ``(H, W, 3)`` RGB or ``(H, W)`` grey.

    With ``allow_rgbx=True`` an RGB image may come back as a zero-copy ``(H, W, 4)`` view
    of Pillow's own pixel memory (the 4th byte is padding to ignore): same pixels, no copy.

    ``source`` is a path (``str`` or ``os.PathLike``; a ``bytes`` file name must go through
    ``os.fsdecode`` first), encoded image bytes, a PIL image or a numpy array (returned as a
    checked view). ``draft_min_side`` lets JPEG decode at a reduced scale (1/2, 1/4, 1/8) as
    long as the shorter side stays at least that long -- much faster for large photos, at
    the cost of a few bits of hash difference.

    Raises :class:`ImageError` when the input cannot be decoded, ``TypeError`` for objects
    that are no image at all (and arrays of the wrong dtype), ``ValueError`` for arrays of
    the wrong shape.
    """
    name = describe_source(source)
    if isinstance(source, np.ndarray):
        return check_pixel_array(source, name)
    if isinstance(source, Image.Image):
        limit = _check_limit(max_pixels)
        _check_size(source, name, limit)
        return _decode(source, name, exif_transpose=exif_transpose, draft_min_side=None, allow_rgbx=allow_rgbx)
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        if allow_rgbx:
            _use_single_block_images()
        with opened_image(source, max_pixels=max_pixels) as img:
            return _decode(img, name, exif_transpose=exif_transpose, draft_min_side=draft_min_side,
                           allow_rgbx=allow_rgbx)
    raise TypeError(
        f"cannot hash {name}: pass a file path, encoded image bytes, a PIL image or a numpy uint8 array"
    )


def _decode(img: Image.Image, name: str, *, exif_transpose: bool, draft_min_side: Optional[int],
            allow_rgbx: bool = False) -> np.ndarray:
    """Decode the current frame of a size-checked image to hashing pixels."""
    width, height = img.size
    try:
        with _no_bomb_warning(_pillow_may_warn(width, height)):
            if draft_min_side and img.format in ("JPEG", "MPO"):
                scale = 1
                while scale < 8 and min(width, height) // (scale * 2) >= draft_min_side:
                    scale *= 2
                if scale > 1:
                    img.draft(img.mode if img.mode in ("RGB", "L") else "RGB", (width // scale, height // scale))
            img.load()
            if exif_transpose:
                img = _exif_upright(img)
            return _pixels_from_pil(img, name, allow_rgbx)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(name, "image is too large to decode safely (beyond Pillow's own limit)") from None
    except MemoryError:
        raise ImageError(name, f"not enough memory to decode a {width}x{height} image") from None
    except Exception as exc:  # decoders raise many types on hostile data; all mean "corrupt"
        raise ImageError(name, f"image data is corrupt or truncated ({type(exc).__name__}: {exc})") from None


def check_pixel_array(arr: np.ndarray, name: str = "array") -> np.ndarray:
    """Validate a pixel array: uint8, ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``."""
    if arr.dtype != np.uint8:
        hint = ""
        if arr.dtype.kind in "fiub":
            hint = " (convert first, e.g. numpy.clip(a * 255, 0, 255).astype(numpy.uint8) for floats in 0..1)"
        raise TypeError(f"{name}: pixel arrays must be uint8 (0..255); got dtype {arr.dtype}{hint}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(
            f"{name}: pixel arrays must have shape (H, W) grey, (H, W, 1), (H, W, 3) RGB or "
            f"(H, W, 4) RGBA; got {arr.shape}"
        )
    if arr.ndim == 3 and arr.strides[2] != 1:
        arr = np.ascontiguousarray(arr)
    # Empty and tiny (< 5x5) arrays are valid: PDQ gives them the zero hash at quality 0.
    if arr.size and (arr.strides[0] <= 0 or arr.strides[1] <= 0):
        arr = np.ascontiguousarray(arr)
    return arr


def reference_512_squash(pixels: np.ndarray) -> np.ndarray:
    """The reference CLI's pre-resize: if either side exceeds 512, resample to exactly
    512x512 by nearest neighbour (source index ``floor(dst * size / 512)``)."""
    h, w = pixels.shape[:2]
    if h <= 512 and w <= 512:
        return pixels
    rows = (np.arange(512, dtype=np.int64) * h) // 512
    cols = (np.arange(512, dtype=np.int64) * w) // 512
    return np.ascontiguousarray(pixels[rows][:, cols])
