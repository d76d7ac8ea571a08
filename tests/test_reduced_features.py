"""The reduced local-feature signals of benchmarks/reduced_features.py (issue 20): the position
quantiser, the verification rules and the bytes they need. No timing is asserted."""

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


def test_quantise_positions_snaps_to_cell_centres():
    xy = np.array([[0.0, 0.0], [99.9, 49.9], [100.0, 50.0], [399.0, 299.0], [400.0, 300.0]], np.float32)
    fs = F.FeatureSet(400, 300, xy, np.zeros(5, np.float32), np.zeros(5, np.uint8), np.zeros((5, 32), np.uint8))
    q = R.quantise_positions(fs, 4)  # cells of 100 x 75
    assert q.xy.tolist() == [[50, 37.5], [50, 37.5], [150, 37.5], [350, 262.5], [350, 262.5]]
    assert np.array_equal(q.descriptors, fs.descriptors)
    assert R.quantise_positions(fs, 1).xy.tolist() == [[200, 150]] * 5  # no positions: the centre
    back = F.FeatureSet.from_bytes(R.quantise_positions(fs, 8).to_bytes())  # still a valid set
    assert len(back) == 5
    with pytest.raises(ValueError):
        R.quantise_positions(fs, 0)
    assert R.cell_tolerance(400, 300, 4) == pytest.approx(F.REPROJECTION + 62.5)


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


def test_positionless_rule_uses_the_query_spread(photo):
    fs = F.extract_features(photo)
    c = R.quantise_positions(fs, 1)
    # the picture against itself: every keypoint is its own correspondence, one rotation
    m = R.verify_positionless(fs, c)
    assert m.is_match and m.inliers >= 0.9 * len(fs) and m.transform is None
    assert m.spread > 0.3  # the hull of the query's keypoints, not of the collapsed candidate
    turned = F.FeatureSet(fs.width, fs.height, fs.xy, (fs.angle + 90.0) % 360.0, fs.octave, fs.descriptors)
    assert R.verify_positionless(turned, c).inliers >= 0.9 * len(fs)  # one common turn is consistent
    scattered = F.FeatureSet(fs.width, fs.height, fs.xy,
                             np.random.default_rng(0).uniform(0, 360, len(fs)).astype(np.float32), fs.octave,
                             fs.descriptors)
    assert R.verify_positionless(scattered, c).inliers < 0.3 * len(fs)  # random turns are not


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


def test_coarsened_sets_are_stored_in_an_order_that_hides_the_original_one(photo):
    full = F.extract_features(photo)
    signal = R.ReducedSignal("g", grid=4)
    a = signal.reduce(full)
    perm = np.random.default_rng(3).permutation(len(full))
    shuffled = F.FeatureSet(full.width, full.height, full.xy[perm], full.angle[perm], full.octave[perm],
                            full.descriptors[perm])
    assert a.to_bytes() == signal.reduce(shuffled).to_bytes()
