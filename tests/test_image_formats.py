"""Safe image loading, formats and pixel modes: every allow-listed format hashes, everything else is
refused by name; grey, palette, alpha, 16-bit, float and int images hash like their 8-bit pixels."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from PIL import Image, features

import ncii_hash as nh
from ncii_hash import ImageError
from ncii_hash.image.io import allowed_formats, load_pixels

from imageio_helpers import (  # noqa: F401  (warnings_are_errors: an autouse fixture)
    available,
    scene_fixtures,
    warnings_are_errors,
    encode,
    hamming,
    png16,
    scene,
)

SCENE, SCENE_IMG, SCENE_HASH = scene_fixtures()




# ---- allow-listed formats ---------------------------------------------------------------

LOSSLESS = [("PNG", {}), ("BMP", {}), ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"}), ("WEBP", {"lossless": True})]
LOSSY = [("JPEG", {"quality": 95}), ("WEBP", {"quality": 90}), ("GIF", {}), ("HEIF", {"quality": 90}), ("AVIF", {"quality": 90})]


@pytest.mark.parametrize("fmt,kw", LOSSLESS, ids=lambda v: str(v))
def test_lossless_formats_hash_exactly_like_their_pixels(fmt, kw):
    data = encode(SCENE_IMG, fmt, **kw)
    assert np.array_equal(load_pixels(data), SCENE)
    assert nh.pdq_hash(data).hash.tobytes() == SCENE_HASH.tobytes()


@pytest.mark.parametrize("fmt,kw", LOSSY, ids=lambda v: str(v))
def test_lossy_formats_hash_close_to_their_source(fmt, kw):
    if not available(fmt):
        pytest.skip(f"{fmt} decoding not available in this Pillow/pillow-heif build")
    res = nh.pdq_hash(encode(SCENE_IMG, fmt, **kw))
    assert hamming(res.hash, SCENE_HASH) <= 24
    assert res.quality >= 50


def test_heif_and_jpeg_are_alwaysavailable():
    assert {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF"} <= set(allowed_formats())


def test_mpo_from_phones_hashes_its_first_picture():
    other = Image.fromarray(np.ascontiguousarray(SCENE[::-1]))
    data = encode(SCENE_IMG, "MPO", save_all=True, append_images=[other], quality=95)
    with Image.open(__import__("io").BytesIO(data)) as probe:
        assert probe.format == "MPO" and probe.n_frames == 2
    first_alone = encode(SCENE_IMG, "JPEG", quality=95)
    assert np.array_equal(load_pixels(data), load_pixels(first_alone))


def _refused_samples(tmp_path):
    img = Image.fromarray(SCENE[:32, :32])
    samples = {
        "pdf": encode(img, "PDF"),
        "eps": encode(img, "EPS") if False else b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\n",
        "ico": encode(img, "ICO"),
        "ppm": encode(img, "PPM"),
        "tga": encode(img, "TGA"),
        "psd": b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 32, 32, 8, 3) + b"\0" * 64,
        "svg": b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "svg2": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
        "txt": b"hello, this is not a picture\n" * 4,
        "html": b"<!DOCTYPE html><html><body>hi</body></html>",
        "zip": b"PK\x03\x04" + b"\0" * 40,
        "mp4": b"\0\0\0\x18ftypisom\0\0\0\0isommp41" + b"\0" * 32,
    }
    if features.check("jpg_2000"):
        samples["jp2"] = encode(img, "JPEG2000")
    return samples


@pytest.mark.parametrize(
    "kind", ["pdf", "eps", "ico", "ppm", "tga", "psd", "svg", "svg2", "txt", "html", "zip", "mp4", "jp2"]
)
def test_non_allowlisted_formats_are_refused_naming_file_and_reason(tmp_path, kind):
    samples = _refused_samples(tmp_path)
    if kind not in samples:
        pytest.skip(f"cannot make a {kind} sample here")
    path = tmp_path / f"upload-{kind}.jpg"  # the extension lies; content decides
    path.write_bytes(samples[kind])
    with pytest.raises(ImageError) as info:
        nh.pdq_hash(path)
    msg = str(info.value)
    assert str(path) in msg and "not a supported image" in msg and "JPEG" in msg
    assert info.value.source == str(path)
    with pytest.raises(ImageError, match="not a supported image"):
        nh.pdq_hash(samples[kind])  # same for bytes


def test_refusal_says_what_a_known_foreign_file_is(tmp_path):
    with pytest.raises(ImageError, match="PDF document"):
        nh.pdq_hash(encode(Image.fromarray(SCENE[:16, :16]), "PDF"))
    with pytest.raises(ImageError, match="SVG"):
        nh.pdq_hash(b"<svg></svg>")


def test_png_with_wrong_extension_still_hashes(tmp_path):
    data = encode(SCENE_IMG, "PNG")
    (tmp_path / "photo.jpg").write_bytes(data)
    (tmp_path / "photo.png").write_bytes(data)
    assert nh.pdq_hash(tmp_path / "photo.jpg").hex == nh.pdq_hash(tmp_path / "photo.png").hex


# ---- pixel modes --------------------------------------------------------------------------

GREY_FILES = {"1.png", "L.png", "LA.png"}


def test_every_mode_in_the_conformance_set_hashes(full_pdq):
    folder = full_pdq / "data" / "misc-images" / "modes"
    original = nh.pdq_hash(folder / "original.jpg", decode="fast")
    files = sorted(p for p in folder.iterdir() if p.suffix != ".md")
    assert len(files) >= 13
    for path in files:
        pixels = load_pixels(path, draft_min_side=256)
        assert pixels.dtype == np.uint8
        assert pixels.ndim == (2 if path.name in GREY_FILES else 3), path.name
        res = nh.pdq_hash(path, decode="fast")
        assert res.quality >= 50, path.name
        assert hamming(res.hash, original.hash) <= 16, path.name


def _mode_image(mode: str) -> Image.Image:
    if mode == "La":
        return SCENE_IMG.convert("LA").convert("La")
    return SCENE_IMG.convert(mode)


# mode -> (file format to round-trip through, or None for a PIL image input; max distance)
MODES = {
    "1": ("PNG", None),  # dithered to black and white: hashes, but is a different picture
    "L": ("PNG", 16),
    "LA": ("PNG", 16),
    "La": (None, 16),
    "P": ("PNG", 31),
    "PA": (None, 31),
    "RGBA": ("PNG", 0),
    "RGBa": (None, 0),
    "RGBX": (None, 0),
    "CMYK": ("JPEG", 16),
    "YCbCr": ("JPEG", 16),
    "LAB": ("TIFF", 16),
    "HSV": (None, 16),
    "I": ("TIFF", 16),
    "F": ("TIFF", 16),
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_generated_modes_hash(mode):
    fmt, bound = MODES[mode]
    img = _mode_image(mode)
    source = img if fmt is None else encode(img, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    pixels = load_pixels(source)
    grey = mode in ("1", "L", "LA", "La", "I", "F")
    assert pixels.ndim == (2 if grey else 3)
    res = nh.pdq_hash(source)
    if bound is not None:
        assert hamming(res.hash, SCENE_HASH) <= bound


def test_palette_with_transparency_hashes_without_compositing():
    p = SCENE_IMG.convert("P")
    alpha = bytes(range(256))  # every palette entry a different transparency
    data = encode(p, "PNG", transparency=alpha)
    with Image.open(__import__("io").BytesIO(data)) as probe:
        assert probe.mode == "P" and isinstance(probe.info["transparency"], bytes)
    # Alpha dropped, not composited: the colours are exactly the palette's.
    assert np.array_equal(load_pixels(data), np.asarray(p.convert("RGB")))
    single = encode(p, "PNG", transparency=0)
    assert np.array_equal(load_pixels(single), np.asarray(p.convert("RGB")))


def test_rgba_alpha_is_dropped_not_composited():
    rgba = np.dstack([SCENE, np.zeros(SCENE.shape[:2], np.uint8)])  # fully transparent
    assert np.array_equal(load_pixels(encode(Image.fromarray(rgba), "PNG")), SCENE)


def _grey8() -> np.ndarray:
    return np.asarray(SCENE_IMG.convert("L"))


def test_16bit_grey_png_hashes_like_its_8bit_version():
    rng = np.random.default_rng(16)
    g = _grey8().astype(np.int64)
    # Low byte noise below one 8-bit step: the 16-bit image *is* the 8-bit one, refined.
    wide = np.clip(g * 257 + rng.integers(-128, 128, g.shape), 0, 65535)
    data = png16(wide.astype(np.uint16))
    with Image.open(__import__("io").BytesIO(data)) as probe:
        assert probe.mode.startswith("I;16")
    pixels = load_pixels(data)
    assert pixels.ndim == 2 and np.abs(pixels.astype(int) - g).max() <= 1
    assert hamming(nh.pdq_hash(data).hash, nh.pdq_hash(g.astype(np.uint8)).hash) <= 4
    # A dark 16-bit image is not mistaken for 8-bit: scaling depends on the type, not the content.
    dark = png16(np.full((32, 32), 200, np.uint16))
    assert load_pixels(dark).max() == 1


def test_48bit_rgb_png_hashes_like_its_24bit_version():
    data = png16(SCENE.astype(np.uint16) * 257)
    assert np.array_equal(load_pixels(data), SCENE)
    assert nh.pdq_hash(data).hash.tobytes() == SCENE_HASH.tobytes()


@pytest.mark.parametrize("scale,offset", [(1 / 255, 0.0), (1.0, 0.0), (257.0, 0.0), (3.5, -400.0), (1e-3, -7.0)])
def test_float_tiff_hashes_like_its_8bit_version(scale, offset):
    g = _grey8()
    f = Image.fromarray(g.astype(np.float32) * np.float32(scale) + np.float32(offset), mode="F")
    data = encode(f, "TIFF")
    with Image.open(__import__("io").BytesIO(data)) as probe:
        assert probe.mode == "F"
    assert hamming(nh.pdq_hash(data).hash, nh.pdq_hash(g).hash) <= 4


def test_float_with_nan_and_inf_still_hashes():
    f = _grey8().astype(np.float32) / 255
    f[0, :5] = [np.nan, np.inf, -np.inf, np.nan, 2.0]
    res = nh.pdq_hash(Image.fromarray(f, mode="F"))
    assert res.quality >= 0


def test_32bit_int_image_is_scaled_not_clipped():
    g = _grey8().astype(np.int32) * 1000 - 50_000  # range far outside 0..65535
    res = nh.pdq_hash(Image.fromarray(g, mode="I"))
    assert hamming(res.hash, nh.pdq_hash(_grey8()).hash) <= 4
