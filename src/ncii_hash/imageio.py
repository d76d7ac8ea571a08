"""Safe image loading for hashing.

Decoding untrusted files is the riskiest thing this library does, so it is guarded:

* only an allow-list of formats is ever handed to a decoder (JPEG, PNG, WebP, GIF, BMP,
  TIFF, HEIC/HEIF, AVIF where available); SVG, PDF, PSD, EPS and the rest are refused;
* the pixel count is read from the header and refused above a limit *before* decoding
  (default 100 megapixels; ``max_pixels`` or :data:`DEFAULT_MAX_PIXELS`);
* only the first frame of an animation is decoded;
* truncated, empty and non-image files raise :class:`ImageError` (a ``ValueError``) that
  names the file and the reason.

Pixels come back as ``uint8`` arrays, ``(H, W, 3)`` RGB or ``(H, W)`` grey, chosen so the
PDQ luma matches Meta's reference: single-channel images stay grey (their luma is the grey
value), alpha is dropped without compositing, palettes are expanded, 16-bit and float
samples are scaled to 0..255. EXIF orientation is applied by default, so the hash is that
of what a viewer shows; ``exif_transpose=False`` hashes the stored pixel grid like the
reference tools.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Images with more pixels than this are refused before decoding (100 megapixels).
DEFAULT_MAX_PIXELS = 100_000_000

#: Pillow format names that may be decoded. Everything else is refused.
ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")

#: File suffixes considered images when walking folders.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff",
     ".heic", ".heif", ".hif", ".avif"}
)

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, "Image.Image", np.ndarray]

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_plugins_lock = threading.Lock()
_plugins_ready = False


class ImageError(ValueError):
    """An input could not be hashed; the message names the input and the reason."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def _register_plugins() -> None:
    global _plugins_ready
    if _plugins_ready:
        return
    with _plugins_lock:
        if _plugins_ready:
            return
        try:  # HEIC/HEIF (and AVIF on older Pillow) come from pillow-heif
            import pillow_heif

            pillow_heif.register_heif_opener()
            if hasattr(pillow_heif, "register_avif_opener") and "AVIF" not in Image.OPEN:
                try:
                    pillow_heif.register_avif_opener()
                except Exception:  # pragma: no cover - depends on the pillow-heif build
                    pass
        except ImportError:  # pragma: no cover - pillow-heif is a dependency
            pass
        Image.init()
        _plugins_ready = True


def allowed_formats() -> tuple[str, ...]:
    """The allow-listed formats this installation can actually decode."""
    _register_plugins()
    return tuple(f for f in ALLOWED_FORMATS if f in Image.OPEN)


def describe_source(source: object) -> str:
    """A short human name for an input, for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.dtype} {source.shape}>"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    return f"<{type(source).__name__}>"


def open_image(source: ImageSource, *, max_pixels: int | None = None) -> Image.Image:
    """Open (but do not decode) an allow-listed image and check its pixel count.

    Returns a lazy PIL image. Raises :class:`ImageError` on anything wrong.
    """
    name = describe_source(source)
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    _register_plugins()
    formats = allowed_formats()
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fsdecode(source))
        if not path.exists():
            raise ImageError(name, "no such file")
        if path.is_dir():
            raise ImageError(name, "is a folder, not an image file")
        try:
            if path.stat().st_size == 0:
                raise ImageError(name, "file is empty")
            fp: object = open(path, "rb")
        except PermissionError:
            raise ImageError(name, "permission denied") from None
        except OSError as exc:
            raise ImageError(name, f"cannot read file ({exc.strerror or exc})") from None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError(name, "no data (0 bytes)")
        fp = io.BytesIO(bytes(source))
    else:
        raise TypeError(f"cannot open {name} as an image file")
    try:
        # Pillow's own bomb check stays on as a second line; ours is stricter and clearer.
        img = Image.open(fp, formats=list(formats))  # type: ignore[arg-type]
    except UnidentifiedImageError:
        _close(fp)
        raise ImageError(name, _unidentified_reason(source)) from None
    except Image.DecompressionBombError as exc:
        _close(fp)
        raise ImageError(name, f"image is too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        _close(fp)
        raise ImageError(name, f"cannot read image header ({exc})") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        img.close()
        raise ImageError(name, f"image has no pixels ({width}x{height})")
    if width * height > limit:
        img.close()
        raise ImageError(
            name,
            f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels, above the limit of "
            f"{limit / 1e6:.1f} megapixels (raise max_pixels to allow it)",
        )
    return img


def _close(fp: object) -> None:
    close = getattr(fp, "close", None)
    if close is not None:
        close()


def _unidentified_reason(source: object) -> str:
    head = b""
    if isinstance(source, (bytes, bytearray, memoryview)):
        head = bytes(source[:16])
    else:
        try:
            with open(os.fsdecode(source), "rb") as f:  # type: ignore[arg-type]
                head = f.read(16)
        except OSError:
            pass
    lowered = head.lstrip().lower()
    if head.startswith(b"%PDF"):
        kind = "a PDF document"
    elif lowered.startswith(b"<svg") or lowered.startswith(b"<?xml"):
        kind = "an SVG/XML document"
    elif head.startswith(b"8BPS"):
        kind = "a Photoshop document"
    else:
        kind = None
    allowed = ", ".join(allowed_formats())
    if kind:
        return f"{kind} is not a supported image format (supported: {allowed})"
    return f"not a supported image (supported formats: {allowed})"


def _pixels_from_pil(img: Image.Image, name: str) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img.convert("I") if mode != "I" else img, dtype=np.float64)
        # 16-bit samples (and 32-bit ints holding them) scale to 8 bits; 8-bit-range ints stay.
        if arr.size and arr.max() > 255:
            arr = arr / 257.0
        return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
        if arr.size and arr.max() <= 1.0 and arr.min() >= 0.0:
            arr = arr * 255.0
        return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    if mode in _GREY_MODES:
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if mode != "RGB":
        try:
            img = img.convert("RGB")
        except (ValueError, OSError) as exc:
            raise ImageError(name, f"cannot convert image mode {mode} to RGB ({exc})") from None
    return np.asarray(img, dtype=np.uint8)


def load_pixels(
    source: ImageSource,
    *,
    exif_transpose: bool = True,
    max_pixels: int | None = None,
    draft_min_side: int | None = None,
) -> np.ndarray:
    """Decode ``source`` to a ``uint8`` array: ``(H, W, 3)`` RGB or ``(H, W)`` grey.

    ``source`` is a path, encoded bytes, a PIL image or a numpy array (returned as a
    checked view). ``draft_min_side`` lets JPEG decode at a reduced scale (1/2, 1/4, 1/8)
    as long as the shorter side stays at least that long -- much faster for large photos,
    at the cost of a few bits of hash difference.
    """
    name = describe_source(source)
    if isinstance(source, np.ndarray):
        return check_pixel_array(source, name)
    if isinstance(source, Image.Image):
        img = source
        owned = False
    elif isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        img = open_image(source, max_pixels=max_pixels)
        owned = True
    else:
        raise TypeError(
            f"cannot hash {name}: pass a file path, encoded image bytes, a PIL image or a numpy uint8 array"
        )
    try:
        width, height = img.size
        limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
        if width * height > limit:
            raise ImageError(name, f"image is {width}x{height}, above the limit of {limit} pixels")
        if draft_min_side and img.format in ("JPEG", "MPO"):
            scale = 1
            while scale < 8 and min(width, height) // (scale * 2) >= draft_min_side:
                scale *= 2
            if scale > 1:
                img.draft(img.mode if img.mode in ("RGB", "L") else "RGB", (width // scale, height // scale))
        try:
            if owned:
                img.seek(0)
            img.load()
        except ImageError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(name, f"image data is corrupt or truncated ({exc})") from None
        except Image.DecompressionBombError as exc:  # pragma: no cover - caught by the header check
            raise ImageError(name, f"image is too large to decode safely ({exc})") from None
        if exif_transpose:
            try:
                transposed = ImageOps.exif_transpose(img)
            except Exception:  # a malformed EXIF block must not stop hashing
                transposed = None
            if transposed is not None:
                img = transposed
        return _pixels_from_pil(img, name)
    finally:
        if owned:
            img.close()


def check_pixel_array(arr: np.ndarray, name: str = "array") -> np.ndarray:
    """Validate a pixel array: uint8, ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``."""
    if arr.dtype != np.uint8:
        raise TypeError(f"{name}: pixel arrays must be uint8 (0..255); got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"{name}: pixel arrays must have shape (H, W), (H, W, 3) RGB or (H, W, 4) RGBA; got {arr.shape}")
    if arr.ndim == 3 and arr.strides[2] != 1:
        arr = np.ascontiguousarray(arr)
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

