"""Safe image loading, bad inputs: the pixel limit before decoding, truncated/corrupt/empty/missing/
unreadable files, odd names, animations (first frame only) and thread-safety."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

import ncii_hash as nh
from ncii_hash import ImageError
from ncii_hash.image.io import load_pixels

from imageio_helpers import (  # noqa: F401  (warnings_are_errors: an autouse fixture)
    available,
    scene_fixtures,
    warnings_are_errors,
    bmp_header,
    encode,
    gif_header,
    jpeg_header,
    png_bytes,
    scene,
)

SCENE, SCENE_IMG, SCENE_HASH = scene_fixtures()




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
    if available("AVIF"):
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
