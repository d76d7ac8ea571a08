"""The inversion attack of benchmarks/bench_inversion.py: patch frame, PDQ bit order, the
attack beating chance on a generated image, and the retrieval metric. No timing is asserted."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

cv2 = pytest.importorskip("cv2")

import ncii_hash as nh  # noqa: E402
from ncii_hash.features import orb as F  # noqa: E402

from benchmarks import bench_inversion as bi  # noqa: E402
from benchmarks import datasets  # noqa: E402
from benchmarks import inversion as inv  # noqa: E402


def grey_of(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def one_keypoint(x: float, y: float, angle: float, size: int) -> F.FeatureSet:
    return F.FeatureSet(size, size, np.array([[x, y]], np.float32), np.array([angle], np.float32),
                        np.zeros(1, np.uint8), np.zeros((1, 32), np.uint8))


def test_patch_frame_turns_with_the_keypoint():
    # the same content turned 90 degrees clockwise, sampled at angle 90, is the same patch
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (101, 101)).astype(np.float32), (0, 0), 2.0).astype(np.uint8)
    turned = np.ascontiguousarray(np.rot90(img, k=-1))
    a = inv.sample_patches(img, one_keypoint(50, 50, 0.0, 101))
    b = inv.sample_patches(turned, one_keypoint(50, 50, 90.0, 101))
    c = inv.sample_patches(turned, one_keypoint(50, 50, 0.0, 101))
    assert a.shape == (1, 32, 32)
    assert np.abs(a - b).max() < 1e-2
    assert np.abs(a - c).mean() > 5  # and the angle matters


def test_pdq_signs_follow_the_hash_bit_order():
    for seed in range(3):
        g = grey_of(datasets.synthetic_photos(1, seed)[0])
        c = inv.pdq_coefficients(g)
        signs = inv.pdq_signs(nh.pdq_hash(g).hash)
        # our area-filtered DCT is close to PDQ's (Jarosz filter): most signs agree; a wrong
        # bit or byte order agrees on about half
        assert ((c > np.median(c)) * 2 - 1 == signs).mean() > 0.9


def test_pdq_inversion_round_trip():
    g = grey_of(datasets.synthetic_photos(1, 5)[0])
    h = nh.pdq_hash(g).hash
    small = inv.invert_pdq(h)
    assert small.shape == (64, 64) and small.dtype == np.float32
    rebuilt = inv.invert_pdq(h, shape=g.shape)
    assert rebuilt.shape == g.shape
    assert nh.hamming(nh.pdq_hash(bi.as_uint8(rebuilt)).hash, h) <= nh.PDQ_MATCH_THRESHOLD
    assert bi.pearson(bi.downsample(rebuilt, 32), bi.downsample(g, 32)) > 0.3


def test_feature_inversion_beats_chance_on_a_generated_image():
    photos = datasets.synthetic_photos(5, 17)
    model, _, _ = bi.train_attacker(photos[:4], seed=0)
    assert model.held_out_r2 > 0.1
    g = F._grey_frame(photos[4])
    fs = F.FeatureSet.from_bytes(F.extract_features(photos[4]).to_bytes())
    methods = ["splat"]
    try:
        import scipy  # noqa: F401  (the gradient-domain solve; in the bench extra)

        methods.append("gradient")
    except ImportError:
        pass
    for method in methods:
        rebuilt = inv.invert_features(fs, model, method=method)
        assert rebuilt.shape == g.shape
        assert bi.pearson(bi.downsample(rebuilt, 64), bi.downsample(g, 64)) > 0.3
    with pytest.raises(ValueError):
        inv.invert_features(fs, model, method="cnn")
    empty = inv.invert_features(F.FeatureSet.empty(40, 30), model)
    assert empty.shape == (30, 40) and np.all(empty == model.mean_grey)


def test_retrieval_ranks_and_pearson():
    rng = np.random.default_rng(0)
    originals = rng.normal(size=(5, 16))
    assert bi.retrieval_ranks(originals.copy(), originals).tolist() == [1, 1, 1, 1, 1]
    # a constant guess ties with every candidate: the middle rank
    assert bi.retrieval_ranks(np.ones((5, 16)), originals).tolist() == [3, 3, 3, 3, 3]
    almost_flat = 115.2 + rng.normal(scale=1e-6, size=(5, 16))  # float noise of a resized constant
    assert bi.retrieval_ranks(almost_flat, originals).tolist() == [3, 3, 3, 3, 3]
    # rebuilt i looks like original i+1: the truth is never first
    assert (bi.retrieval_ranks(np.roll(originals, -1, axis=0), originals) > 1).all()
    assert bi.pearson(np.ones(9), np.arange(9)) == 0.0
    assert bi.pearson(np.arange(9), 2 * np.arange(9) + 1) == pytest.approx(1.0)


def test_detail_band_excludes_what_pdq_describes():
    pytest.importorskip("scipy")
    g = grey_of(datasets.synthetic_photos(1, 9)[0])
    share = lambda img: bi.detail(img).std() / bi.downsample(img, 128).std()
    # a PDQ inversion has almost nothing above PDQ's band (resampling leaks a little); a photo does
    pdq = share(inv.invert_pdq(nh.pdq_hash(g).hash, shape=g.shape))
    assert pdq < 0.03 and share(g) > 3 * pdq


# --------------------------------------------------------------------------------------------
# several PDQ hashes of one picture (issue 20)


def test_area_matrix_is_an_area_average():
    assert np.allclose(inv.area_matrix(0.0, 1.0, 8, 8), np.eye(8))
    m = inv.area_matrix(0.0, 1.0, 4, 8)  # halving: each output cell averages two inputs
    assert np.allclose(m, np.kron(np.eye(4), [[0.5, 0.5]]))
    m = inv.area_matrix(0.25, 0.75, 3, 16)
    assert np.allclose(m.sum(1), 1.0) and (m >= 0).all()
    assert m[:, :4].sum() == 0 and m[:, 12:].sum() == 0  # nothing outside the span
    # agrees with OpenCV's area resize of the same span (an exact integer ratio)
    x = np.random.default_rng(0).uniform(0, 255, (32, 32))
    sub = cv2.resize(x[8:24, 8:24].astype(np.float32), (4, 4), interpolation=cv2.INTER_AREA)
    mine = inv.area_matrix(0.25, 0.75, 4, 32) @ x @ inv.area_matrix(0.25, 0.75, 4, 32).T
    assert np.allclose(mine, sub, atol=1e-3)
    with pytest.raises(ValueError):
        inv.area_matrix(0.5, 0.5, 4, 8)


def test_window_coefficients_are_the_dct_of_the_cut_window():
    g = grey_of(datasets.synthetic_photos(1, 4, size=(256, 256))[0]).astype(np.float64)
    x = cv2.resize(g.astype(np.float32), (128, 128), interpolation=cv2.INTER_AREA).astype(np.float64)
    # the whole picture on a 64 grid is pdq_coefficients
    x64 = cv2.resize(g.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
    assert np.allclose(inv.window_coefficients(x64, inv.WHOLE), inv.pdq_coefficients(x64), atol=1e-6)
    # the top-right quarter of a 128 grid is the 64x64 block cut out of it
    box = (0.0, 0.5, 0.5, 1.0)
    assert np.allclose(inv.window_coefficients(x, box), inv.pdq_coefficients(x[:64, 64:]), atol=1e-6)
    # and its signs are (almost all) the real PDQ hash's bits of that window
    h = nh.pdq_hash(np.ascontiguousarray(g[:128, 128:]).astype(np.uint8)).hash
    c = inv.window_coefficients(x, box)
    assert ((c > np.median(c)) * 2 - 1 == inv.pdq_signs(h)).mean() > 0.85
    assert inv.fraction_boxes([(0, 150, 100, 400)], 400, 300) == [(0.0, 0.5, 0.25, 1.0)]


def test_least_squares_windows_rebuild():
    pytest.importorskip("scipy")  # the ridge solve (cho_factor); in the bench extra
    g = grey_of(datasets.synthetic_photos(1, 6)[0])
    h = nh.pdq_hash(g).hash
    one = inv.invert_pdq_windows([h], [inv.WHOLE], mean=0.0)
    # the whole picture alone is invert_pdq (up to a scale)
    assert bi.pearson(one, inv.invert_pdq(h, mean=0.0)) > 0.999
    # the rebuild has the hash's signs in every window it was given
    boxes_px = [(0, 120, 0, 160), (60, 240, 80, 320)]
    hashes = bi.window_hashes(g, boxes_px)
    frac = [inv.WHOLE] + inv.fraction_boxes(boxes_px, g.shape[1], g.shape[0])
    mags = inv.learn_pdq_magnitudes([grey_of(p) for p in datasets.synthetic_photos(4, 60)])
    rebuilt = inv.invert_pdq_windows(hashes, frac, mags)
    for hk, box in zip(hashes, frac):
        c = inv.window_coefficients(rebuilt, box)
        assert ((c > np.median(c)) * 2 - 1 == inv.pdq_signs(hk)).mean() > 0.75  # chance: 0.5
    assert bi.pearson(bi.downsample(rebuilt, 32), bi.downsample(g, 32)) > 0.3
    with pytest.raises(ValueError):
        inv.invert_pdq_windows(hashes, frac[:1])


def test_learned_hash_model_and_window_sets():
    pytest.importorskip("scipy")  # the ridge solve and the t interval; in the bench extra
    photos = [grey_of(p) for p in datasets.synthetic_photos(4, 21)]
    sets = {"none": bi.STAND_IN_WINDOW_SETS["none"], "centre 70%": bi.STAND_IN_WINDOW_SETS["centre 70%"]}
    assert sets["centre 70%"](400, 300) == [(45, 255, 60, 340)]
    models = bi.train_window_attackers(photos[:3], sets, crops=6, seed=0)
    assert models["none"].hashes == 1 and models["centre 70%"].hashes == 2
    rebuilt = models["centre 70%"].predict(bi.window_hashes(photos[3], sets["centre 70%"](320, 240)))
    assert rebuilt.shape == (32, 32)
    with pytest.raises(ValueError):
        models["none"].predict([nh.pdq_hash(photos[3]).hash] * 2)
    m, lo, hi = bi.mean_ci([0.1, 0.2, 0.3, 0.4])
    assert m == pytest.approx(0.25) and lo < m < hi
    views, of = bi.training_views(photos[:2], 5, seed=1)
    assert len(views) == 2 * 2 * 6 and of.tolist() == [0] * 12 + [1] * 12
    assert all(0.55 * 240 <= v.shape[0] <= 240 for v in views)


def test_window_gram_is_the_stacked_operator_times_its_transpose():
    boxes = [inv.WHOLE, (0.1, 0.8, 0.0, 0.9), (0.3, 1.0, 0.25, 0.75)]
    ops = [inv.window_operator(b, 24) for b in boxes]
    a = np.vstack([np.kron(r, c) for r, c in ops])
    assert np.allclose(inv._gram(ops), a @ a.T)
    x = np.random.default_rng(2).normal(size=(24, 24))
    assert np.allclose(a[256:512] @ x.ravel(), inv.window_coefficients(x, boxes[1]).ravel())


@pytest.mark.parametrize("n,d", [(60, 90), (200, 30)])
def test_ridge_solver_equals_the_normal_equations(n, d):
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, 4))
    w = inv._ridge_solver(x, y)(10.0)
    xc = x - x.mean(0)
    direct = np.linalg.solve(xc.T @ xc + 10.0 * n / 1000.0 * np.eye(d), xc.T @ (y - y.mean(0)))
    assert np.allclose(w[:-1], direct, atol=1e-5)
    assert np.allclose(w[-1], y.mean(0) - x.mean(0) @ direct, atol=1e-5)
