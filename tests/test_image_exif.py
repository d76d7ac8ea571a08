"""Safe image loading, EXIF orientation: applied like a viewer (checked against the EXIF spec written
with numpy), malformed EXIF never stops hashing, HEIF rotation applied once."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from PIL import Image

import ncii_hash as nh
from ncii_hash.image.io import load_pixels

from imageio_helpers import (  # noqa: F401  (warnings_are_errors: an autouse fixture)
    available,
    scene_fixtures,
    warnings_are_errors,
    encode,
    exif_block,
    hamming,
    scene,
    with_app1,
)

SCENE, SCENE_IMG, SCENE_HASH = scene_fixtures()




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
