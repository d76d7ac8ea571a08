"""ncii_hash.features.coarse: keypoints moved to the centres of grid cells (or to none), stored
in an order that hides the original one, and verified with a widened tolerance or, without
positions, with the upload's geometry. No timing is asserted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2")

from ncii_hash.features import coarse  # noqa: E402
from ncii_hash.features import orb as F  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "examples" / "survivor" / "IMG_0001.jpg"
OTHERS = sorted((ROOT / "tests" / "data" / "pdq" / "data" / "reg-test-input" / "labelme-subset").glob("*.jpg"))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB"))


@pytest.fixture(scope="module")
def photo_features(photo) -> F.FeatureSet:
    return F.extract_features(photo)


def test_positions_snap_to_cell_centres():
    xy = np.array([[0.0, 0.0], [99.9, 49.9], [100.0, 50.0], [399.0, 299.0], [400.0, 300.0]], np.float32)
    desc = np.arange(5 * 32, dtype=np.uint8).reshape(5, 32)
    fs = F.FeatureSet(400, 300, xy, np.arange(5, dtype=np.float32), np.zeros(5, np.uint8), desc)
    q = coarse.coarsen_positions(fs, 4)  # cells of 100 x 75
    assert sorted(map(tuple, q.xy.tolist())) == [(50, 37.5), (50, 37.5), (150, 37.5), (350, 262.5), (350, 262.5)]
    # each keypoint keeps its own descriptor, orientation and level
    for k in range(5):
        j = int(np.flatnonzero((q.descriptors == desc[k]).all(axis=1))[0])
        assert q.angle[j] == pytest.approx(fs.angle[k], abs=1.5)
    assert coarse.coarsen_positions(fs, 1).xy.tolist() == [[200, 150]] * 5  # no positions: the centre
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="grid"):
            coarse.coarsen_positions(fs, bad)
    assert coarse.coarse_tolerance(400, 300, 4) == pytest.approx(F.REPROJECTION + 62.5)


def test_stored_order_hides_the_original_one(photo_features):
    fs = photo_features
    perm = np.random.default_rng(3).permutation(len(fs))
    shuffled = F.FeatureSet(fs.width, fs.height, fs.xy[perm], fs.angle[perm], fs.octave[perm], fs.descriptors[perm])
    for grid in (1, 8):
        a = coarse.coarsen_positions(fs, grid)
        assert a.to_bytes() == coarse.coarsen_positions(shuffled, grid).to_bytes()
        assert len(np.unique(a.xy, axis=0)) <= grid * grid


@pytest.mark.parametrize("grid", [1, 8, 16])
def test_a_crop_verifies_and_another_photo_does_not(photo, photo_features, grid):
    h, w = photo.shape[:2]
    crop = np.ascontiguousarray(photo[h // 20: h - h // 20, w // 20: w - w // 20])
    q = F.query_features(crop)[0]
    banked = coarse.coarsen_positions(photo_features, grid)
    assert coarse.verify_coarse(q, banked, grid=grid).is_match
    for other in OTHERS[:3]:
        o = coarse.coarsen_positions(F.extract_features(np.asarray(Image.open(other).convert("RGB"))), grid)
        m = coarse.verify_coarse(q, o, grid=grid)
        assert not m.is_match and m.inliers < F.MIN_INLIERS // 2


def test_without_positions_the_query_geometry_decides(photo_features):
    fs = photo_features
    c = coarse.coarsen_positions(fs, 1)
    m = coarse.verify_without_positions(fs, c)  # the picture against itself
    assert m.is_match and m.inliers >= 0.9 * len(fs) and m.transform is None
    assert m.spread > 0.8  # the inliers span (nearly) all of the query's own keypoints
    turned = F.FeatureSet(fs.width, fs.height, fs.xy, (fs.angle + 90.0) % 360.0, fs.octave, fs.descriptors)
    assert coarse.verify_without_positions(turned, c).inliers >= 0.9 * len(fs)  # one common turn is consistent
    rng = np.random.default_rng(0)
    scattered = F.FeatureSet(fs.width, fs.height, fs.xy, rng.uniform(0, 360, len(fs)).astype(np.float32),
                             fs.octave, fs.descriptors)
    assert coarse.verify_without_positions(scattered, c).inliers < 0.3 * len(fs)  # random turns are not
    # only the keypoints in one corner of the query still describe the picture: the inliers
    # are bunched there and do not spread over the query
    corner = (fs.xy[:, 0] < fs.width / 3) & (fs.xy[:, 1] < fs.height / 3)
    desc = fs.descriptors.copy()
    desc[~corner] = rng.integers(0, 256, desc[~corner].shape, dtype=np.uint8)
    part = F.FeatureSet(fs.width, fs.height, fs.xy, fs.angle, fs.octave, desc)
    r = coarse.verify_without_positions(part, c)
    assert r.inliers >= 0.8 * corner.sum() and r.spread < 0.2
    assert not coarse.verify_without_positions(part, c, min_spread=0.2).is_match
