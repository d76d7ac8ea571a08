"""Border trimming and the border-robust matching rule (ncii_hash.image.borders).

Oracles: a known frame around a generated photo must be found to the pixel (or within JPEG's
reach), a borderless photo and a photo with a flat sky must keep their plain hash, and the
any-to-any rule must never be worse than plain matching.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ncii_hash as nh
from ncii_hash import border_robust_distance, find_content_box, pdq_hash, trim_borders

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks.datasets import synthetic_photos  # noqa: E402


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return synthetic_photos(1, seed=7, size=(320, 240))[0]


def frame(px: np.ndarray, top: int, bottom: int, left: int, right: int, colour=(0, 0, 0)) -> np.ndarray:
    h, w = px.shape[:2]
    out = np.empty((h + top + bottom, w + left + right, 3), dtype=np.uint8)
    out[:] = colour
    out[top:top + h, left:left + w] = px
    return out


def jpeg(px: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, format="JPEG", quality=q)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


@pytest.mark.parametrize("sides,colour", [((30, 30, 0, 0), (0, 0, 0)), ((0, 0, 40, 40), (255, 255, 255)),
                                          ((25, 25, 25, 25), (200, 30, 90)), ((60, 10, 0, 15), (20, 20, 20))])
def test_finds_exact_frame(photo, sides, colour):
    t, b, l, r = sides
    framed = frame(photo, t, b, l, r, colour)
    h, w = framed.shape[:2]
    assert find_content_box(framed) == (t, h - b, l, w - r)
    inner, box = trim_borders(framed)
    assert np.array_equal(inner, photo)


def test_borderless_photo_has_no_box(photo):
    assert find_content_box(photo) is None
    inner, box = trim_borders(photo)
    assert box is None and inner is photo


def test_letterbox_after_jpeg_is_found_within_a_few_pixels(photo):
    framed = jpeg(frame(photo, 40, 40, 0, 0), 50)
    box = find_content_box(framed)
    assert box is not None
    h = framed.shape[0]
    # JPEG ringing can keep up to one 8x8 block of the bar: under-trimming, never over-trimming
    assert 32 <= box[0] <= 40 and 32 <= h - box[1] <= 40 and box[2] == 0


def test_thin_strips_and_overtrimming_are_refused(photo):
    assert find_content_box(frame(photo, 2, 2, 0, 0)) is None  # < 2% of the height
    flat = np.full((200, 200, 3), 128, dtype=np.uint8)
    assert find_content_box(flat) is None  # all border: would keep nothing


def test_greyscale_input_and_bad_input(photo):
    grey = np.asarray(Image.fromarray(frame(photo, 30, 30, 0, 0)).convert("L"))
    assert find_content_box(grey) == (30, grey.shape[0] - 30, 0, grey.shape[1])
    with pytest.raises(ValueError, match="uint8"):
        find_content_box(photo.astype(np.float32))
    with pytest.raises(ValueError, match="coverage"):
        find_content_box(photo, coverage=0)


def test_border_robust_hash_recovers_letterboxed_copy(photo):
    orig = pdq_hash(photo, dihedral=True, trim_borders=True)
    boxed = pdq_hash(frame(photo, 60, 60, 0, 0), dihedral=True, trim_borders=True)
    assert orig.trimmed is None and orig.hashes.shape == (1, 32)
    assert boxed.trimmed is not None and boxed.hashes.shape == (2, 32) and boxed.dihedral_sets.shape == (2, 8, 32)
    assert nh.hamming(boxed.hash, orig.hash) > 31  # plain PDQ misses it
    assert border_robust_distance(boxed, orig) == 0  # trimmed content is pixel-identical
    assert nh.border_robust_match(boxed, orig, dihedral=True)


def test_any_to_any_is_never_worse_than_plain(photo):
    rng = np.random.default_rng(3)
    a = pdq_hash(photo, dihedral=True, trim_borders=True)
    for k in range(4):
        other = synthetic_photos(1, seed=100 + k)[0]
        if k % 2:
            other = frame(other, int(rng.integers(10, 50)), 20, 0, 0)
        b = pdq_hash(other, dihedral=True, trim_borders=True)
        plain = nh.hamming(b.hash, a.hash)
        assert border_robust_distance(b, a) <= plain
        assert border_robust_distance(b, a, dihedral=True) <= border_robust_distance(b, a)


def test_dihedral_needs_dihedral_hashes(photo):
    q = pdq_hash(photo, trim_borders=True)
    with pytest.raises(ValueError, match="dihedral"):
        border_robust_distance(q, q, dihedral=True)
