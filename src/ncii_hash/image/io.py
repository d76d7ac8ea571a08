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

import os
from typing import Optional

import numpy as np
from PIL import Image

from ..errors import ImageError
from .arrow import rgbx_view, use_single_block_images
from .opening import (ALLOWED_FORMATS, DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageSource,  # noqa: F401  (the image API)
                      allowed_formats, check_limit, check_size, describe_source, no_bomb_warning, opened_image,
                      pillow_may_warn)

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
        view = rgbx_view(img)
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
        limit = check_limit(max_pixels)
        check_size(source, name, limit)
        return _decode(source, name, exif_transpose=exif_transpose, draft_min_side=None, allow_rgbx=allow_rgbx)
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        if allow_rgbx:
            use_single_block_images()
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
        with no_bomb_warning(pillow_may_warn(width, height)):
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
