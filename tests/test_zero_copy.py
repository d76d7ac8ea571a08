"""The zero-copy RGBX path (Pillow's Arrow export) gives exactly the copied pixels, and the
view stays valid after the image is closed and its memory would otherwise be reused."""

from __future__ import annotations

import gc

import numpy as np
from PIL import Image

import ncii_hash as nh
from ncii_hash.image.io import load_pixels


def test_rgbx_view_equals_copy_and_outlives_the_image(tmp_path):
    rng = np.random.default_rng(5)
    # > 16 MB of pixels, so Pillow's default allocator would have split it into blocks.
    small = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(small).resize((2400, 1800)))
    path = tmp_path / "big.png"
    Image.fromarray(big).save(path)
    view = load_pixels(path, allow_rgbx=True)
    assert view.dtype == np.uint8 and view.shape[:2] == (1800, 2400) and view.shape[2] in (3, 4)
    gc.collect()
    junk = [np.full(big.shape, 255, np.uint8) for _ in range(2)]  # reuse freed memory if any
    np.testing.assert_array_equal(view[:, :, :3], big)
    del junk
    assert nh.pdq_hash(path).hex == nh.hash_pixels(big).hex
    plain = load_pixels(path)
    assert plain.shape == big.shape  # the public default stays (H, W, 3)


def test_rgbx_hash_matches_reference_path_on_jpeg(subset_pdq):
    path = subset_pdq / "data/misc-images/small.jpg"
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert nh.pdq_hash(path, exif_transpose=False).hex == nh.hash_pixels(pixels).hex
