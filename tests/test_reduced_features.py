"""The reduced local-feature signals of benchmarks/reduced_features.py (issue 20): what each keeps,
the bytes it needs, that each matches a crop and not another photo, and the layout attack's
input. (The coarsening itself is tested in test_coarse_features.py.) No timing is asserted."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("cv2")

from ncii_hash.features import orb as F  # noqa: E402

from benchmarks import reduced_features as R  # noqa: E402

PHOTO = ROOT / "examples" / "survivor" / "IMG_0001.jpg"
OTHER = sorted((ROOT / "tests" / "data" / "pdq" / "data" / "reg-test-input" / "labelme-subset").glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB"))


def test_signals_reduce_and_count_bytes(photo):
    full = F.extract_features(photo)
    few = R.ReducedSignal("64", features=64).reduce(full)
    assert len(few) == 64 and np.array_equal(few.descriptors, full.descriptors[:64])
    grid = R.ReducedSignal("g", grid=8).reduce(full)
    assert len(np.unique(grid.xy, axis=0)) <= 64
    assert [s.bytes_per_feature() for s in (R.ReducedSignal("a"), R.ReducedSignal("b", grid=16),
                                            R.ReducedSignal("c", grid=1))] == [38, 35, 34]
    assert not R.ReducedSignal("c", grid=1).has_positions


@pytest.mark.parametrize("signal", R.SIGNALS, ids=[s.name for s in R.SIGNALS])
def test_every_signal_matches_a_crop_and_not_another_photo(photo, signal):
    h, w = photo.shape[:2]
    crop = np.ascontiguousarray(photo[h // 20: h - h // 20, w // 20: w - w // 20])
    banked = signal.reduce(F.extract_features(photo))
    other = signal.reduce(F.extract_features(np.asarray(Image.open(OTHER).convert("RGB"))))
    q = F.query_features(crop)[0]
    same = signal.verify(q, banked, min_inliers=12, min_tight=6)
    assert same.is_match and same.inliers >= 12, same
    assert signal.verify(q, other).inliers < same.inliers // 2


def test_layout_vector_sums_per_cell():
    xy = np.array([[10.0, 10.0], [20.0, 15.0], [390.0, 290.0]], np.float32)
    desc = np.zeros((3, 32), np.uint8)
    desc[2] = 255
    fs = F.FeatureSet(400, 300, xy, np.array([0.0, 90.0, 180.0], np.float32), np.zeros(3, np.uint8), desc)
    basis = np.zeros((256, 2))
    basis[:, 0] = 1.0 / 16  # the mean of the +1/-1 bits, times 16
    v = R.layout_vector(fs, 2, basis).reshape(4, 5)
    assert np.allclose(v[0], [2, 1, 1, -32, 0], atol=1e-6)  # top-left cell: two keypoints
    assert np.allclose(v[3], [1, -1, 0, 16, 0], atol=1e-6)  # bottom-right: one, all bits set
    assert not v[1].any() and not v[2].any()
    b = R.descriptor_basis([np.random.default_rng(1).integers(0, 256, (50, 32), dtype=np.uint8)], 3)
    assert b.shape == (256, 3) and np.allclose(b.T @ b, np.eye(3), atol=1e-9)
