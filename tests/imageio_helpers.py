"""Seeded image fixtures shared by the image-loading tests (generated at run time)."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).resolve().parent
LABELME = HERE / "data" / "pdq" / "data" / "reg-test-input" / "labelme-subset"


def scene() -> np.ndarray:
    """A 256x384 RGB photo (two LabelMe pictures side by side): real texture, so PDQ is
    stable under re-encoding, and not square, so rotations change the shape."""
    a = np.asarray(Image.open(LABELME / "q0003.jpg").convert("RGB"))
    b = np.asarray(Image.open(LABELME / "q0122.jpg").convert("RGB"))
    return np.ascontiguousarray(np.concatenate([a, b], axis=1)[:, 64:448])


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, *, color_type: int = 2, bit_depth: int = 8, raw: bytes | None = None) -> bytes:
    """A PNG written by hand: any declared size (``raw`` = unfiltered scanlines, or a tiny
    IDAT that does not cover the image, for crafted headers)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(raw if raw is not None else b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG of a uint16 (H, W) grey or (H, W, 3) RGB array (48-bit RGB)."""
    h, w = arr.shape[:2]
    color_type = 0 if arr.ndim == 2 else 2
    rows = arr.astype(">u2").reshape(h, -1).view(np.uint8).reshape(h, -1)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    return png_bytes(w, h, color_type=color_type, bit_depth=16, raw=raw)


def jpeg_header(width: int, height: int) -> bytes:
    """SOI + a baseline SOF0 declaring ``width`` x ``height`` (3 components) and nothing else."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9"


def gif_header(width: int, height: int) -> bytes:
    """A GIF whose screen and first frame declare ``width`` x ``height``; the data is one code."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b";"


def bmp_header(width: int, height: int) -> bytes:
    """A 24-bit BMP declaring ``width`` x ``height`` with (almost) no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    offset = 14 + len(info)
    return b"BM" + struct.pack("<IHHI", offset + 16, 0, 0, offset) + info + b"\0" * 16


def with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """Insert an APP1 segment right after SOI (an EXIF block, possibly malformed)."""
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def exif_block(orientation_entry: bytes, count: int = 1) -> bytes:
    """``Exif\\0\\0`` + a little-endian TIFF header + one IFD with the given 12-byte entries."""
    return b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", count) + orientation_entry + b"\0\0\0\0"


# ---- shared by the image-loading tests (test_image_*.py) ---------------------------------------

def available(fmt: str) -> bool:
    """Whether ``fmt`` may be decoded here (HEIF/AVIF depend on the pillow-heif build)."""
    from ncii_hash.image.io import allowed_formats

    return fmt in allowed_formats()


def scene_fixtures() -> tuple:
    """(pixels, PIL image, PDQ hash) of the seeded test scene; registers the HEIF plugin first,
    which the fixtures also use to encode."""
    import ncii_hash as nh
    from ncii_hash.image.io import allowed_formats

    allowed_formats()
    pixels = scene()
    return pixels, Image.fromarray(pixels), nh.pdq_hash(pixels).hash


@pytest.fixture(autouse=True)
def warnings_are_errors():
    """No Pillow warning may reach the caller: turn them all into test failures (a test module
    imports this fixture to use it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ResourceWarning)  # checked separately
        yield
