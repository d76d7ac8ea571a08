"""Safe image loading: allow-list, pixel limit before decoding, pixel modes, EXIF orientation,
and every bad input a survivor's phone or a platform upload can produce."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile, features

import ncii_hash as nh
from ncii_hash import ImageError
from ncii_hash.image.io import allowed_formats, load_pixels

from imageio_helpers import (
    bmp_header,
    encode,
    exif_block,
    gif_header,
    hamming,
    jpeg_header,
    png16,
    png_bytes,
    scene,
    with_app1,
)

allowed_formats()  # registers the HEIF plugin, which the fixtures also use to encode
SCENE = scene()
SCENE_IMG = Image.fromarray(SCENE)
SCENE_HASH = nh.pdq_hash(SCENE).hash


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    """No Pillow warning may reach the caller: turn them all into test failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ResourceWarning)  # checked separately below
        yield


def _available(fmt: str) -> bool:
    return fmt in allowed_formats()


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
    if not _available(fmt):
        pytest.skip(f"{fmt} decoding not available in this Pillow/pillow-heif build")
    res = nh.pdq_hash(encode(SCENE_IMG, fmt, **kw))
    assert hamming(res.hash, SCENE_HASH) <= 24
    assert res.quality >= 50


def test_heif_and_jpeg_are_always_available():
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


# ---- pixel limit, before decoding ---------------------------------------------------------

CRAFTED = {
    "png": lambda w, h: png_bytes(w, h),
    "jpeg": jpeg_header,
    "gif": gif_header,
    "bmp": bmp_header,
}


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any pixel data is decoded."""

    def refuse(self, *a, **k):
        raise AssertionError("pixels were decoded although the header was over the limit")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.parametrize("kind", sorted(CRAFTED))
@pytest.mark.parametrize("size", [(100_000, 100_000), (20_000, 20_000), (10_001, 10_000), (65_535, 2)])
def test_oversized_headers_are_refused_before_decoding(tmp_path, kind, size, no_decoding):
    w, h = size
    if kind in ("gif", "jpeg"):  # 16-bit size fields
        w, h = min(w, 65535), min(h, 65535)
    path = tmp_path / f"bomb.{kind}"
    path.write_bytes(CRAFTED[kind](w, h))
    assert path.stat().st_size < 200
    with pytest.raises(ImageError, match="above the limit") as info:
        nh.pdq_hash(path, max_pixels=(w * h) - 1)
    assert str(path) in str(info.value) and f"{w}x{h}" in str(info.value)


@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_default_limit_is_100_megapixels(kind, no_decoding):
    assert nh.DEFAULT_MAX_PIXELS == 100_000_000
    with pytest.raises(ImageError, match="above the limit"):
        nh.pdq_hash(CRAFTED[kind](10_001, 10_000))


def test_max_pixels_is_inclusive_and_configurable():
    h, w = SCENE.shape[:2]
    data = encode(SCENE_IMG, "PNG")
    assert nh.pdq_hash(data, max_pixels=h * w).hex == nh.pdq_hash(data).hex
    with pytest.raises(ImageError, match="above the limit"):
        nh.pdq_hash(data, max_pixels=h * w - 1)
    with pytest.raises(ImageError, match="above the limit"):
        nh.pdq_hash(SCENE_IMG, max_pixels=h * w - 1)  # PIL input is checked too
    with pytest.raises(ValueError):
        nh.pdq_hash(data, max_pixels=0)
    with pytest.raises(TypeError):
        nh.pdq_hash(data, max_pixels="many")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_pillow_bomb_warning_never_reaches_the_caller(monkeypatch, fmt):
    """Between Pillow's limit and ours, Pillow would warn: we must hash silently (warnings
    are errors in this module). Above twice Pillow's limit it refuses: that is an ImageError."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", SCENE.shape[0] * SCENE.shape[1] - 1)
    data = encode(SCENE_IMG, fmt)
    assert nh.pdq_hash(data).quality >= 50
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    try:
        nh.pdq_hash(data)
    except ImageError:
        pass


def test_gif_first_frame_larger_than_screen_is_checked(no_decoding):
    screen = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"," + struct.pack("<HHHHB", 0, 0, 60000, 60000, 0) + b"\x02\x02\x44\x01\x00;"
    with pytest.raises(ImageError, match="too large|above the limit"):
        nh.pdq_hash(screen + frame)


# ---- EXIF orientation ---------------------------------------------------------------------

# What a viewer shows for stored pixels S under each EXIF orientation, per the EXIF spec
# (row 0 / column 0 placement), written with numpy independently of Pillow.
VIEW = {
    1: lambda s: s,
    2: lambda s: s[:, ::-1],
    3: lambda s: s[::-1, ::-1],
    4: lambda s: s[::-1],
    5: lambda s: s.transpose(1, 0, 2),
    6: lambda s: np.rot90(s, -1),
    7: lambda s: np.rot90(s[:, ::-1], -1),
    8: lambda s: np.rot90(s, 1),
}
# The stored pixels a camera writes for an upright scene U (the inverse of VIEW).
STORE = {
    1: lambda u: u,
    2: lambda u: u[:, ::-1],
    3: lambda u: u[::-1, ::-1],
    4: lambda u: u[::-1],
    5: lambda u: u.transpose(1, 0, 2),
    6: lambda u: np.rot90(u, 1),
    7: lambda u: np.rot90(u[:, ::-1], -1),
    8: lambda u: np.rot90(u, -1),
}


def _exif(orientation: int) -> bytes:
    ex = Image.Exif()
    ex[0x0112] = orientation
    return ex.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_store_is_the_inverse_of_view(orientation):
    assert np.array_equal(VIEW[orientation](STORE[orientation](SCENE)), SCENE)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_a_viewer(orientation):
    stored = np.ascontiguousarray(STORE[orientation](SCENE))
    png = encode(Image.fromarray(stored), "PNG", exif=_exif(orientation))
    assert np.array_equal(load_pixels(png), SCENE)  # lossless: exactly the upright scene
    assert np.array_equal(load_pixels(png, exif_transpose=False), stored)
    jpeg = encode(Image.fromarray(stored), "JPEG", quality=95, exif=_exif(orientation))
    upright = nh.pdq_hash(jpeg)
    assert hamming(upright.hash, SCENE_HASH) <= 8
    raw = nh.pdq_hash(jpeg, exif_transpose=False)
    if orientation != 1:
        assert hamming(raw.hash, SCENE_HASH) > 31  # the tag really changed what was hashed


def test_exif_rotn_conformance_images_are_turned_upright(full_pdq):
    # The four files are separate shots of one desk (different framing), so their hashes
    # differ; what must hold is that each is turned exactly as its tag says.
    folder = full_pdq / "data" / "reg-test-input" / "exif-rotn"
    for k in (1, 3, 6, 8):
        path = folder / f"exif-rotn-{k}.jpg"
        stored = load_pixels(path, exif_transpose=False, draft_min_side=256)
        shown = load_pixels(path, draft_min_side=256)
        assert np.array_equal(shown, VIEW[k](stored)), k
        assert (shown.shape[0] > shown.shape[1]) == (k in (6, 8))


@pytest.mark.parametrize(
    "payload",
    [
        b"Exif\0\0" + bytes(np.random.default_rng(7).integers(0, 256, 200, dtype=np.uint8)),
        b"Exif\0\0II*\0\x08\0\0\0\xff\xff",  # IFD claims 65535 entries, has none
        b"Exif\0\0MM\0*\xff\xff\xff\xf0",  # IFD offset far beyond the block
        b"Exif\0\0",
        exif_block(struct.pack("<HHII", 0x0112, 2, 4, 0x36372E33)),  # orientation as ASCII "3.76"
        exif_block(struct.pack("<HHIHH", 0x0112, 3, 1, 0, 0)),  # orientation 0 (invalid)
        exif_block(struct.pack("<HHIHH", 0x0112, 3, 1, 9, 0)),  # orientation 9 (invalid)
        exif_block(struct.pack("<HHIHH", 0x0112, 3, 1, 65535, 0)),
        exif_block(struct.pack("<HHII", 0x0112, 3, 2, 0xFFFFFF00)),  # two values, bad offset
    ],
    ids=["random", "huge-count", "bad-offset", "empty", "ascii", "zero", "nine", "65535", "bad-pointer"],
)
def test_malformed_exif_never_stops_hashing(payload):
    clean = encode(SCENE_IMG, "JPEG", quality=95)
    broken = with_app1(clean, payload)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow may say "Corrupt EXIF data"; hashing goes on
        assert np.array_equal(load_pixels(broken), load_pixels(clean))


def test_heif_orientation_is_applied_once():
    stored = np.ascontiguousarray(STORE[6](SCENE))
    data = encode(Image.fromarray(stored), "HEIF", quality=95, exif=_exif(6))
    assert hamming(nh.pdq_hash(data).hash, SCENE_HASH) <= 16


# ---- truncated, corrupt, empty, missing ----------------------------------------------------

def _samples():
    out = {
        "jpeg": encode(SCENE_IMG, "JPEG", quality=90),
        "png": encode(SCENE_IMG, "PNG"),
        "webp": encode(SCENE_IMG, "WEBP"),
        "gif": encode(SCENE_IMG, "GIF"),
        "bmp": encode(SCENE_IMG, "BMP"),
        "tiff": encode(SCENE_IMG, "TIFF"),
        "heif": encode(SCENE_IMG, "HEIF"),
    }
    if _available("AVIF"):
        out["avif"] = encode(SCENE_IMG, "AVIF")
    return out


SAMPLES = _samples()


@pytest.mark.parametrize("kind", sorted(SAMPLES))
@pytest.mark.parametrize("fraction", [0.0005, 0.01, 0.1, 0.5, 0.9])
def test_truncated_files_raise_image_error_naming_the_file(tmp_path, kind, fraction):
    data = SAMPLES[kind]
    cut = max(1, int(len(data) * fraction))
    path = tmp_path / f"cut-{kind}.{kind}"
    path.write_bytes(data[:cut])
    with pytest.raises(ImageError) as info:
        nh.pdq_hash(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_corrupted_bytes_only_ever_give_image_error(kind):
    """Seeded fuzzing: flipped, zeroed and deleted bytes anywhere in a valid file."""
    rng = np.random.default_rng(sum(kind.encode()))
    data = SAMPLES[kind]
    for trial in range(12):
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 8))):
            pos = int(rng.integers(0, len(buf)))
            action = trial % 3
            if action == 0:
                buf[pos] ^= 1 << int(rng.integers(0, 8))
            elif action == 1:
                buf[pos : pos + 16] = bytes(min(16, len(buf) - pos))
            else:
                del buf[pos : pos + int(rng.integers(1, 64))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": a warning, not a crash
            try:
                res = nh.pdq_hash(bytes(buf))
            except ImageError:
                continue
        assert res.hash.shape == (32,) and 0 <= res.quality <= 100


def test_random_bytes_and_empty_inputs(tmp_path):
    rng = np.random.default_rng(0)
    for n in (1, 15, 16, 17, 1000):
        with pytest.raises(ImageError, match="not a supported image"):
            nh.pdq_hash(bytes(rng.integers(0, 256, n, dtype=np.uint8)))
    with pytest.raises(ImageError, match="0 bytes"):
        nh.pdq_hash(b"")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty") as info:
        nh.pdq_hash(empty)
    assert str(empty) in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file") as info:
        nh.pdq_hash(tmp_path / "gone.jpg")
    assert str(tmp_path / "gone.jpg") in str(info.value)
    with pytest.raises(ImageError, match="folder"):
        nh.pdq_hash(tmp_path)
    with pytest.raises(ImageError, match="folder"):
        nh.pdq_hash(str(tmp_path))


def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.png"
    path.write_bytes(encode(SCENE_IMG, "PNG"))
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root (or with CAP_DAC_OVERRIDE): chmod 000 does not stop reading")
        with pytest.raises(ImageError, match="permission denied") as info:
            nh.pdq_hash(path)
        assert str(path) in str(info.value)
    finally:
        path.chmod(0o600)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_named_pipe_and_device_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        nh.pdq_hash(fifo)
    if os.path.exists("/dev/zero"):
        with pytest.raises(ImageError, match="not a regular file"):
            nh.pdq_hash("/dev/zero")


def test_non_utf8_file_names(tmp_path):
    raw_dir = os.fsencode(tmp_path)
    raw_name = raw_dir + b"/caf\xe9-\xff.png"  # Latin-1 bytes: not valid UTF-8
    fd = os.open(raw_name, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, encode(SCENE_IMG, "PNG"))
    os.close(fd)
    name = os.fsdecode(raw_name)  # str with surrogate escapes, as os.listdir(str) returns
    assert nh.pdq_hash(name).hex == nh.pdq_hash(SCENE).hex
    from pathlib import Path

    assert nh.pdq_hash(Path(name)).hex == nh.pdq_hash(SCENE).hex
    missing = os.fsdecode(raw_dir + b"/\xff\xfe-missing.jpg")
    with pytest.raises(ImageError) as info:
        nh.pdq_hash(missing)
    msg = str(info.value)
    msg.encode("utf-8")  # printable on any UTF-8 terminal: no lone surrogates
    assert "\\xff\\xfe-missing.jpg" in msg
    # A bytes file name is encoded data, not a path: refused, with a hint how to pass it.
    with pytest.raises(ImageError, match="os.fsdecode"):
        nh.pdq_hash(raw_name)


def test_control_characters_in_names_cannot_forge_log_lines(tmp_path):
    with pytest.raises(ImageError) as info:
        nh.pdq_hash(str(tmp_path / "a\nFAKE LOG LINE.jpg"))
    assert "\n" not in str(info.value) and "\\n" in str(info.value)


def test_files_are_closed(tmp_path):
    paths = []
    for i, (kind, data) in enumerate(sorted(SAMPLES.items())):
        p = tmp_path / f"ok{i}.{kind}"
        p.write_bytes(data)
        paths.append(p)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(SAMPLES["jpeg"][:500])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        import gc

        for p in paths + [bad]:
            try:
                nh.pdq_hash(p)
            except ImageError:
                pass
        gc.collect()
    if os.path.isdir("/proc/self/fd"):
        open_names = {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd") if fd.isdigit()
                      and os.path.exists(f"/proc/self/fd/{fd}")}
        assert not {str(p) for p in paths + [bad]} & open_names


# ---- animations -----------------------------------------------------------------------------

def _frames(n: int) -> list:
    rng = np.random.default_rng(3)
    first = SCENE_IMG.convert("P")
    others = [Image.fromarray(rng.integers(0, 256, SCENE.shape, dtype=np.uint8)).convert("P") for _ in range(3)]
    return [first] + [others[i % 3] for i in range(n - 1)]


def test_animated_gif_hashes_its_first_frame_only():
    frames = _frames(150)
    anim = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)
    single = encode(frames[0], "GIF")
    assert nh.pdq_hash(anim).hex == nh.pdq_hash(single).hex
    # Later frames are never decoded: cutting the file inside frame 40 changes nothing.
    cut = anim[: len(anim) * 40 // 150]
    assert nh.pdq_hash(cut).hex == nh.pdq_hash(single).hex


def test_animated_webp_hashes_its_first_frame_only():
    frames = [f.convert("RGB") for f in _frames(60)]
    anim = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=10)
    with Image.open(__import__("io").BytesIO(anim)) as probe:
        assert probe.n_frames == 60
    assert np.array_equal(load_pixels(anim), np.asarray(frames[0]))


# ---- thread-safety (fresh interpreter: plugin registration races too) ----------------------

THREAD_SCRIPT = r"""
import sys, threading
import ncii_hash as nh
paths = sys.argv[1:]
serial_order = None
results = [None] * 8
barrier = threading.Barrier(8)
def work(t):
    barrier.wait()
    out = []
    for k in range(3):
        for p in paths[t % len(paths):] + paths[: t % len(paths)]:
            out.append((p, nh.pdq_hash(p).hex))
    results[t] = sorted(set(out))
threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
for th in threads: th.start()
for th in threads: th.join()
serial = sorted((p, nh.pdq_hash(p).hex) for p in paths)
assert all(r == serial for r in results), "threads disagree"
print("OK", len(serial))
"""


def test_loading_is_thread_safe(tmp_path):
    paths = []
    for kind, data in sorted(SAMPLES.items()):
        p = tmp_path / f"t.{kind}"
        p.write_bytes(data)
        paths.append(str(p))
    proc = subprocess.run([sys.executable, "-c", THREAD_SCRIPT, *paths], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"OK {len(paths)}"
