"""How much of a picture can an attacker rebuild from a banked feature set, next to a PDQ hash?
(project issue #8: local features reveal more than PDQ; this measures by how much.)

The attack (``benchmarks/inversion.py``) needs no neural network: a ridge regression from a
keypoint's 256 descriptor bits to the 32x32 grey patch in the keypoint's own frame, learned on
public training photos, then every predicted patch laid back at its keypoint. It is a *lower
bound* on what a feature set leaks: a learned CNN inversion (Pittaluga et al., CVPR 2019)
recovers more.

Data (full mode): the cached photo set of ``benchmarks/datasets.py``, split by package so no
picture or scene is on both sides: the evaluation set is the GCompris photos
(:data:`EVAL_PACKAGE`, domain "photo"); every other package (scikit-image, matplotlib,
OpenCV samples, wallpapers) trains the attacker. Quick mode: generated images (different seeds
for training and evaluation). Each evaluation image is reduced to what a bank stores -- its
serialized feature set (``to_bytes``/``from_bytes``) and its 32-byte PDQ hash -- and rebuilt by:

* ``features: gradient`` / ``features: splat`` -- the feature inversion (two ways to assemble);
* ``PDQ hash`` -- DCT signs times mean magnitudes learned on the training photos;
* ``keypoints only`` -- a density map of keypoint positions (no descriptors);
* ``constant grey`` -- the training mean grey (chance for correlation and retrieval);
* ``unrelated photo`` -- another evaluation photo (chance for SSIM and PDQ distance).

Metrics, against the original grey work frame (features.py's frame, ~512x384): Pearson
correlation of the 32x32 and 64x64 area-downsampled luma, and of the detail finer than a PDQ
hash can carry (128x128 luma without DCT frequencies 0..16 in both directions); SSIM at 64x64 and on the whole frame
(scikit-image); the PDQ distance between the rebuilt and the original frame (match: <= 31);
retrieval: the rank of the true original among all evaluation originals by 32x32 luma
correlation (top-1, top-5). Output: ``inversion.json`` (results under ``config.results``),
``inversion.md``, ``inversion_examples.png`` (original | feature inversion | PDQ inversion |
inversion from the largest window set, public evaluation photos only), ``inversion_corr.png``.

**Several PDQ hashes of one picture** (issue 20): a survivor may share, besides the whole
picture's hash, the hashes of a few windows of it. For each window set of
:func:`window_sets` (the library's candidates, ``ncii_hash.image.variants.CANDIDATE_WINDOW_SETS``,
when that module exists; stand-ins otherwise; ``"none"`` is the single PDQ hash) the attacker
holds every hash of each evaluation picture and rebuilds it two ways: ``least squares`` (each
window's coefficients at sign times learned magnitude, the smallest 64x64 picture with all of
them), ``learned`` (a ridge regression from the signs of all the hashes to the 32x32
picture, trained on the training photos and :data:`TRAIN_CROPS` random crops of each) and
``both`` (the average of the two).
Written to ``inversion.json`` under ``config.results["window_sets"][name]``::

    windows          windows besides the whole picture; n_hashes = windows + 1
    boxes            the windows of a 4:3 picture, as fractions (top, bottom, left, right)
    corr32, ci       mean 32x32 luma correlation of the best attack, with its 95 % t interval
    attack           which attack that is ("least squares" | "learned" | "both": their
                     average, each standardised)
    attacks          per attack: corr32 {mean, median, q1, q3}, ci, retrieval {top1, top5,
                     median_rank, candidates}
    retrieval        the best attack's retrieval figures
    delta_vs_single  corr32 of this set's best attack minus the single hash's best attack
                     ("none"), per picture: {mean, ci} (paired t interval)
    within_target    delta_vs_single.mean <= WINDOW_TARGET (0.05, issue 20)

``retrieval`` is that of the attack that picks the picture out best (named in it).

**Reduced local-feature signals** (issue 20, ``benchmarks/reduced_features.py``: fewer
keypoints, positions on a coarse grid, no positions): each evaluation picture's banked set is
reduced and rebuilt by the patch attack above (``features: gradient``, patches laid at the
coarsened positions) and by ``learned layout`` (a ridge regression from per-cell keypoint
counts, orientation vectors and descriptor components to the 32x32 picture, trained on the
training photos and :data:`LAYOUT_TRAIN_CROPS` crops of each). Written under
``config.results["reduced_features"][signal]`` with the same fields as a window set
(``delta_vs_single_pdq`` in place of ``delta_vs_single``) plus ``features``, ``grid`` and
``bytes_per_feature``; the entry ``"prior only (mean training picture)"`` is what the
attacker's prior alone scores (corr32 and ci only). The matching side of the same signals
(recall, false matches) is ``bench_reduced_features``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

import ncii_hash as nh

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import datasets, harness  # noqa: E402
from ncii_hash.image.variants import window_hashes  # noqa: E402  (the whole picture's hash, then each window's)

NAME = "inversion"
EVAL_PACKAGE = "gcompris-qt-data"
METHODS = ("features: gradient", "features: splat", "PDQ hash", "keypoints only", "constant grey",
           "unrelated photo")
EXAMPLES = 4
#: Issue 20: the rebuild from a default signal may be at most this much better (32x32
#: correlation) than from a single PDQ hash.
WINDOW_TARGET = 0.05
#: Random crops of each training photo (and of its mirror image) the learned hash attack
#: also trains on: the windows are crops too, so the model sees pictures at many framings.
TRAIN_CROPS = 24
#: Side of a training crop, as a share of the photo's side (each side drawn independently).
TRAIN_CROP_SIDE = (0.6, 1.0)
#: Random crops of each training photo the learned layout attack on reduced feature sets
#: trains on (each needs a feature extraction, so fewer).
LAYOUT_TRAIN_CROPS = 6


# --------------------------------------------------------------------------------------------
# metrics (pure functions, tested in tests/test_bench_inversion.py)


def downsample(img: np.ndarray, n: int) -> np.ndarray:
    """(n, n) float64 area average (the whole frame, squashed like PDQ does)."""
    import cv2

    return cv2.resize(np.asarray(img, np.float32), (n, n), interpolation=cv2.INTER_AREA).astype(np.float64)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two arrays; 0 when either is (numerically) constant: it carries no layout."""
    a = np.ravel(a).astype(np.float64)
    b = np.ravel(b).astype(np.float64)
    if np.ptp(a) <= 1e-3 or np.ptp(b) <= 1e-3:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def detail(img: np.ndarray) -> np.ndarray:
    """(128, 128) luma without the DCT frequencies a PDQ hash describes (vertical and
    horizontal frequency both <= 16, DC included): only what is finer than PDQ can carry."""
    from scipy.fft import dctn, idctn

    c = dctn(downsample(img, 128), norm="ortho")
    c[:17, :17] = 0.0
    return idctn(c, norm="ortho")


def retrieval_ranks(rebuilt: np.ndarray, originals: np.ndarray) -> np.ndarray:
    """Rank (1 = best) of original i among all originals by correlation with rebuilt i.
    Both (N, D); ties share their mean rank (a constant guess ranks (N + 1) / 2)."""
    def unit(x):
        x = np.asarray(x, np.float64)
        flat = np.ptp(x, axis=1, keepdims=True) <= 1e-3  # as in pearson: no layout, no vote
        x = np.where(flat, 0.0, x - x.mean(1, keepdims=True))
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return np.divide(x, n, out=np.zeros_like(x), where=n > 0)
    c = unit(rebuilt) @ unit(originals).T
    true = np.diag(c)[:, None]
    return 1.0 + (c > true).sum(1) + ((c == true).sum(1) - 1) / 2.0


def as_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# data


def load_split(ctx: harness.Context) -> tuple[list[np.ndarray], list[np.ndarray], list[str], str]:
    """(training pixels, evaluation pixels, evaluation ids, description)."""
    if ctx.quick:
        train = datasets.synthetic_photos(8, ctx.seed + 1)
        ev = datasets.synthetic_photos(6, ctx.seed)
        return train, ev, [f"synthetic-{i}" for i in range(len(ev))], "synthetic (quick)"
    manifest = datasets.load_manifest(ctx.cache) or datasets.gather(ctx.cache, log=lambda s: None)
    photos = manifest["photos"]
    ev = [p for p in photos if p["package"] == EVAL_PACKAGE and p["domain"] == "photo"]
    tr = [p for p in photos if p["package"] != EVAL_PACKAGE]
    if len(ev) < 10 or len(tr) < 5:
        ctx.note(f"too few cached photos ({len(tr)} training, {len(ev)} evaluation): fell back to "
                 "generated images (run python -m benchmarks.datasets --install)")
        train = datasets.synthetic_photos(30, ctx.seed + 1)
        evs = datasets.synthetic_photos(40, ctx.seed)
        return train, evs, [f"synthetic-{i}" for i in range(len(evs))], "synthetic (fallback)"
    folder = ctx.cache / "photos"
    load = lambda p: np.asarray(Image.open(folder / p["file"]).convert("RGB"))
    ctx.config["train_packages"] = sorted({p["package"] for p in tr})
    return [load(p) for p in tr], [load(p) for p in ev], [p["id"] for p in ev], str(folder / "manifest.json")


# --------------------------------------------------------------------------------------------
# the benchmark


def train_attacker(train: list[np.ndarray], seed: int):
    """Fit the patch model (each training photo and its mirror image), the PDQ magnitudes and
    the sign of the density baseline, from public training photos only."""
    from ncii_hash.features import orb as F

    from benchmarks import inversion as inv

    signs, patches, image_of, greys = [], [], [], []
    for k, px in enumerate(train):
        for view in (px, px[:, ::-1]):
            view = np.ascontiguousarray(view)
            fs = F.extract_features(view)
            grey = F._grey_frame(view)  # the exact frame the features live in
            signs.append(inv.descriptor_signs(fs))
            patches.append(inv.sample_patches(grey, fs))
            image_of.append(np.full(len(fs), k))
            greys.append((grey, fs))
    mean_grey = float(np.mean([g.mean() for g, _ in greys]))
    model = inv.fit_patch_model(np.concatenate(signs), np.concatenate(patches), np.concatenate(image_of),
                                mean_grey, seed=seed)
    magnitudes = inv.learn_pdq_magnitudes([g for g, _ in greys])
    dens = [pearson(downsample(inv.density_map(fs), 32), downsample(g, 32)) for g, fs in greys]
    density_sign = 1.0 if np.mean(dens) >= 0 else -1.0
    return model, magnitudes, density_sign


def rebuilders(model, magnitudes, density_sign, others: list[np.ndarray]) -> dict[str, Callable]:
    """Method name -> f(index, feature bytes, pdq hash, frame shape) -> rebuilt frame."""
    from ncii_hash.features import FeatureSet

    from benchmarks import inversion as inv

    def unrelated(i, shape):
        import cv2

        return cv2.resize(others[(i + 1) % len(others)].astype(np.float32), (shape[1], shape[0]),
                          interpolation=cv2.INTER_AREA)
    fs_of = lambda b: FeatureSet.from_bytes(b)
    return {
        "features: gradient": lambda i, b, h, shape: inv.invert_features(fs_of(b), model, method="gradient"),
        "features: splat": lambda i, b, h, shape: inv.invert_features(fs_of(b), model, method="splat"),
        "PDQ hash": lambda i, b, h, shape: inv.invert_pdq(h, magnitudes, mean=model.mean_grey, shape=shape),
        "keypoints only": lambda i, b, h, shape: model.mean_grey + density_sign * 40.0 * _standardise(inv.density_map(fs_of(b))),
        "constant grey": lambda i, b, h, shape: np.full(shape, model.mean_grey, np.float32),
        "unrelated photo": lambda i, b, h, shape: unrelated(i, shape),
    }


# --------------------------------------------------------------------------------------------
# several PDQ hashes of one picture (issue 20)

PixelBox = tuple[int, int, int, int]  # top, bottom, left, right in pixels
WindowSet = Callable[[int, int], list[PixelBox]]


def _fraction_set(*boxes) -> WindowSet:
    return lambda w, h: [(round(t * h), round(b * h), round(l * w), round(r * w)) for t, b, l, r in boxes]


def _corners(side: float) -> list:
    o = 1.0 - side
    return [(0, side, 0, side), (0, side, o, 1), (o, 1, 0, side), (o, 1, o, 1)]


#: Used until ``ncii_hash.image.variants`` exists (boxes as fractions of each side).
STAND_IN_WINDOW_SETS: dict[str, WindowSet] = {
    "none": _fraction_set(),
    "centre 70%": _fraction_set((0.15, 0.85, 0.15, 0.85)),
    "4 corners 90%": _fraction_set(*_corners(0.9)),
    "9 crops 90%": _fraction_set(*[(t, t + 0.9, l, l + 0.9) for t in (0, 0.05, 0.1) for l in (0, 0.05, 0.1)]),
}


def window_sets() -> tuple[dict[str, WindowSet], str]:
    """(name -> (width, height) -> pixel boxes the survivor hashes besides the whole picture,
    where they come from). ``"none"`` (the single PDQ hash) is always there, first."""
    try:
        from ncii_hash.image import variants
        sets = dict(variants.CANDIDATE_WINDOW_SETS)
        origin = "ncii_hash.image.variants.CANDIDATE_WINDOW_SETS"
    except (ImportError, AttributeError):
        sets, origin = dict(STAND_IN_WINDOW_SETS), "stand-ins (bench_inversion.STAND_IN_WINDOW_SETS)"
    empty = [k for k, f in sets.items() if not f(400, 300)]
    for k in empty:
        del sets[k]
    return {"none": STAND_IN_WINDOW_SETS["none"], **sets}, origin


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its Student t interval."""
    from scipy import stats

    a = np.asarray(values, np.float64)
    m = float(a.mean())
    if len(a) < 2 or float(a.std()) == 0.0:
        return m, m, m
    half = float(stats.t.ppf(0.5 + level / 2, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)))
    return m, m - half, m + half


def training_views(greys: list[np.ndarray], crops: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(views, photo index of each): every training frame, its mirror image, and ``crops``
    random crops of each (sides drawn from TRAIN_CROP_SIDE independently)."""
    rng = np.random.default_rng([seed, 20])
    views, of = [], []
    for k, g in enumerate(greys):
        for view in (g, np.ascontiguousarray(g[:, ::-1])):
            views.append(view)
            h, w = view.shape
            for _ in range(crops):
                ch, cw = (int(round(rng.uniform(*TRAIN_CROP_SIDE) * n)) for n in (h, w))
                t, l = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                views.append(np.ascontiguousarray(view[t:t + ch, l:l + cw]))
            of += [k] * (crops + 1)
    return views, np.asarray(of)


def train_window_attackers(train_greys: list[np.ndarray], sets: dict[str, WindowSet], crops: int,
                           seed: int) -> dict:
    """Window set name -> learned attack (:class:`benchmarks.inversion.HashModel`)."""
    from benchmarks import inversion as inv

    views, of = training_views(train_greys, crops, seed)
    pictures = np.stack([downsample(v, 32) for v in views])
    models = {}
    for name, fn in sets.items():
        signs = np.stack([inv.hash_signs(window_hashes(v, fn(v.shape[1], v.shape[0]))) for v in views])
        models[name] = inv.fit_hash_model(signs, pictures, of, seed=seed)
    return models


WINDOW_ATTACKS = ("least squares", "learned", "both")


def best_retrieval(attacks: dict) -> dict:
    """The retrieval figures of the attack that picks the true picture out best (top-1, then
    top-5, then median rank), with its name: the attacker uses whichever works."""
    name = max(attacks, key=lambda a: (attacks[a]["retrieval"]["top1"], attacks[a]["retrieval"]["top5"],
                                       -attacks[a]["retrieval"]["median_rank"]))
    return {**attacks[name]["retrieval"], "attack": name}


def distribution(values) -> dict:
    """Mean, median and quartiles of ``values``."""
    a = np.asarray(values, np.float64)
    return {"mean": float(a.mean()), "median": float(np.median(a)), "q1": float(np.percentile(a, 25)),
            "q3": float(np.percentile(a, 75))}


def retrieval_summary(ranks: np.ndarray) -> dict:
    """How often the true picture ranks first / in the first five among the candidates."""
    return {"top1": float((ranks <= 1).mean()), "top5": float((ranks <= 5).mean()),
            "median_rank": float(np.median(ranks)), "candidates": int(len(ranks))}


class AttackTally:
    """Per attack: each picture's 32x32 correlation with its original, the rebuilds (for the
    retrieval ranks) and those of the example pictures."""

    def __init__(self, attacks: Sequence[str], originals: np.ndarray, pick: set):
        self.originals, self.pick = originals, pick
        self.per: dict[str, list[float]] = {a: [] for a in attacks}
        self.small: dict[str, list[np.ndarray]] = {a: [] for a in attacks}
        self.examples: dict[str, list[np.ndarray]] = {a: [] for a in attacks}

    def add(self, i: int, rebuilt: dict[str, np.ndarray]) -> None:
        """Picture ``i``'s 32x32 rebuild by each attack."""
        for a, r in rebuilt.items():
            self.per[a].append(pearson(r, self.originals[i]))
            self.small[a].append(r.ravel())
            if i in self.pick:
                self.examples[a].append(r)

    def summary(self, attack: str) -> dict:
        """``{"corr32": mean, "ci": [low, high], "retrieval": {...}}`` of one attack."""
        m, lo, hi = mean_ci(self.per[attack])
        return {"corr32": m, "ci": [lo, hi],
                "retrieval": retrieval_summary(retrieval_ranks(np.stack(self.small[attack]), self.originals))}


def evaluate_window_sets(greys: list[np.ndarray], sets: dict[str, WindowSet], models: dict,
                         magnitudes: np.ndarray, mean_grey: float, pick: set) -> tuple[dict, dict, np.ndarray]:
    """(config.results["window_sets"], name -> rebuilt examples of the picked pictures, the
    per-picture 32x32 correlation of the single hash's best attack)."""
    from benchmarks import inversion as inv

    originals = np.stack([downsample(g, 32).ravel() for g in greys])
    out, examples = {}, {}
    corr: dict[str, dict[str, np.ndarray]] = {}
    for name, fn in sets.items():
        tally = AttackTally(WINDOW_ATTACKS, originals, pick)
        for i, g in enumerate(greys):
            h, w = g.shape
            boxes = fn(w, h)
            hashes = window_hashes(g, boxes)
            frac = [inv.WHOLE] + inv.fraction_boxes(boxes, w, h)
            rebuilt = {"least squares": downsample(inv.invert_pdq_windows(hashes, frac, magnitudes, mean=mean_grey), 32),
                       "learned": models[name].predict(hashes).astype(np.float64)}
            # the two rebuilds err differently: their average (each at the learned one's contrast)
            ls, le = rebuilt["least squares"], rebuilt["learned"]
            rebuilt["both"] = le.mean() + 0.5 * (_standardise(ls) + _standardise(le)) * le.std()
            tally.add(i, rebuilt)
        attacks = {a: {**tally.summary(a), "corr32": distribution(tally.per[a])} for a in WINDOW_ATTACKS}
        best = max(WINDOW_ATTACKS, key=lambda a: attacks[a]["corr32"]["mean"])
        corr[name] = {"best": np.asarray(tally.per[best])}
        box43 = inv.fraction_boxes(fn(400, 300), 400, 300)
        out[name] = {"windows": len(box43), "n_hashes": len(box43) + 1,
                     "boxes": [[round(v, 4) for v in b] for b in box43],
                     "corr32": attacks[best]["corr32"]["mean"], "ci": attacks[best]["ci"], "attack": best,
                     "attacks": attacks, "retrieval": best_retrieval(attacks),
                     "learned_held_out_r2": round(models[name].held_out_r2, 4),
                     "learned_ridge": models[name].ridge}
        examples[name] = tally.examples[best]
        print(f"[inversion] window set {name}: corr32 {out[name]['corr32']:.3f} ({best})", file=sys.stderr)
    single = corr["none"]["best"]
    for name in sets:
        m, lo, hi = mean_ci(corr[name]["best"] - single)
        out[name]["delta_vs_single"] = {"mean": m, "ci": [lo, hi]}
        out[name]["within_target"] = bool(m <= WINDOW_TARGET)
    return out, examples, single


# --------------------------------------------------------------------------------------------
# reduced local-feature signals (issue 20; benchmarks/reduced_features.py)

REDUCED_ATTACKS = ("features: gradient", "learned layout")


def _layout_grid(signal) -> int:
    from benchmarks import reduced_features as R

    return R.LAYOUT_GRID_EXACT if signal.grid is None else signal.grid


def train_layout_attackers(train_greys: list[np.ndarray], signals, crops: int, seed: int) -> tuple[dict, np.ndarray]:
    """(signal name -> HashModel-like ridge from :func:`reduced_features.layout_vector` to the
    32x32 picture, the descriptor basis), trained on the training frames, mirrors and crops."""
    from ncii_hash.features import orb as F

    from benchmarks import inversion as inv
    from benchmarks import reduced_features as R

    views, of = training_views(train_greys, crops, seed)
    full = [F.extract_features(v) for v in views]
    frames = [F._grey_frame(v) for v in views]
    pictures = np.stack([downsample(f, 32).ravel() for f in frames])
    basis = R.descriptor_basis([fs.descriptors for fs in full[:: max(1, len(full) // 200)]])
    models = {"prior": pictures.mean(0)}
    for signal in signals:
        x = np.stack([R.layout_vector(signal.reduce(fs), _layout_grid(signal), basis) for fs in full])
        w, lam, r2 = inv.fit_ridge(x, pictures, of, seed=seed)
        models[signal.name] = (w, lam, r2)
    return models, basis


def evaluate_reduced(evals: list[np.ndarray], greys: list[np.ndarray], signals, patch_model, layout_models: dict,
                     basis: np.ndarray, single_pdq: np.ndarray, pick: set) -> tuple[dict, dict]:
    """(config.results["reduced_features"], signal name -> rebuilt examples). ``single_pdq``:
    the per-picture 32x32 correlation of the single PDQ hash's best attack."""
    from ncii_hash.features import orb as F

    from benchmarks import inversion as inv
    from benchmarks import reduced_features as R

    originals = np.stack([downsample(g, 32).ravel() for g in greys])
    full = [F.extract_features(px) for px in evals]
    prior = [pearson(layout_models["prior"], o) for o in originals]
    m, lo, hi = mean_ci(prior)
    out, examples = {"prior only (mean training picture)": {"corr32": m, "ci": [lo, hi], "attack": "none",
                                                            "features": 0, "grid": None, "bytes_per_feature": 0.0}}, {}
    for signal in signals:
        w, lam, r2 = layout_models[signal.name]
        tally = AttackTally(REDUCED_ATTACKS, originals, pick)
        for i, fs in enumerate(full):
            banked = signal.reduce(fs)
            rebuilt = {"features: gradient": downsample(inv.invert_features(banked, patch_model, method="gradient"), 32),
                       "learned layout": (R.layout_vector(banked, _layout_grid(signal), basis) @ w[:-1] + w[-1]
                                          ).reshape(32, 32).astype(np.float64)}
            tally.add(i, rebuilt)
        attacks = {a: tally.summary(a) for a in REDUCED_ATTACKS}
        attacks["learned layout"].update(held_out_r2=round(r2, 4), ridge=lam, grid=_layout_grid(signal))
        best = max(REDUCED_ATTACKS, key=lambda a: attacks[a]["corr32"])
        dm, dlo, dhi = mean_ci(np.asarray(tally.per[best]) - single_pdq)
        out[signal.name] = {"features": signal.features, "grid": signal.grid,
                            "bytes_per_feature": signal.bytes_per_feature(),
                            "corr32": attacks[best]["corr32"], "ci": attacks[best]["ci"], "attack": best,
                            "attacks": attacks, "retrieval": best_retrieval(attacks),
                            "delta_vs_single_pdq": {"mean": dm, "ci": [dlo, dhi]},
                            "within_target": bool(dm <= WINDOW_TARGET)}
        examples[signal.name] = tally.examples[best]
        print(f"[inversion] reduced signal {signal.name}: corr32 {out[signal.name]['corr32']:.3f} ({best})",
              file=sys.stderr)
    return out, examples


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 1e-9 else x * 0.0


def run(ctx: harness.Context) -> None:
    cv2 = ctx.peer("cv2", dist="opencv-python-headless")
    scipy = ctx.peer("scipy")
    if cv2 is None or scipy is None:
        ctx.note("skipped: the attack needs OpenCV (local features) and SciPy (sparse solve); "
                 "pip install 'ncii-hash[bench]'")
        return
    from ncii_hash.features import orb as F

    metrics_mod = ctx.peer("skimage.metrics", dist="scikit-image")
    t0 = time.perf_counter()
    train, evals, ids, source = load_split(ctx)
    ctx.config.update(seed=ctx.seed, source=source, train_images=len(train), eval_images=len(evals),
                      eval_package=None if ctx.quick else EVAL_PACKAGE, methods=list(METHODS),
                      match_threshold=nh.PDQ_MATCH_THRESHOLD)
    model, magnitudes, density_sign = train_attacker(train, ctx.seed)
    ctx.config["attacker"] = {"training_keypoints": model.samples, "ridge": model.ridge,
                              "held_out_patch_r2": round(model.held_out_r2, 4),
                              "mean_grey": round(model.mean_grey, 2), "density_sign": density_sign,
                              "training_s": round(time.perf_counter() - t0, 1)}

    greys = [F._grey_frame(px) for px in evals]
    banked = [(F.extract_features(px).to_bytes(), nh.pdq_hash(g).hash) for px, g in zip(evals, greys)]
    ctx.config["feature_bytes_mean"] = float(np.mean([len(b) for b, _ in banked]))
    methods = rebuilders(model, magnitudes, density_sign, greys)
    per: dict[str, dict[str, list]] = {m: {k: [] for k in ("corr32", "corr64", "corr_detail", "ssim64",
                                                            "ssim_frame", "pdq_distance")}
                                       for m in METHODS}
    small: dict[str, list] = {m: [] for m in METHODS}
    examples: dict[str, list] = {m: [] for m in METHODS}
    pick = set(np.linspace(0, len(evals) - 1, min(EXAMPLES, len(evals))).round().astype(int).tolist())
    t1 = time.perf_counter()
    for i, (g, (fbytes, h)) in enumerate(zip(greys, banked)):
        g32, g64, gd = downsample(g, 32), downsample(g, 64), detail(g)
        for m, fn in methods.items():
            rebuilt = np.asarray(fn(i, fbytes, h, g.shape), np.float32)
            r8 = as_uint8(rebuilt)
            r64 = downsample(rebuilt, 64)
            per[m]["corr32"].append(pearson(downsample(rebuilt, 32), g32))
            per[m]["corr64"].append(pearson(r64, g64))
            per[m]["corr_detail"].append(pearson(detail(rebuilt), gd))
            if metrics_mod is not None:
                ssim = metrics_mod.structural_similarity
                per[m]["ssim64"].append(float(ssim(r64, g64, data_range=255.0)))
                per[m]["ssim_frame"].append(float(ssim(r8, g, data_range=255)))
            per[m]["pdq_distance"].append(int(nh.hamming(nh.pdq_hash(r8).hash, h)))
            small[m].append(downsample(rebuilt, 32).ravel())
            if i in pick:
                examples[m].append(r8)
        if (i + 1) % 50 == 0:
            print(f"[inversion] {i + 1}/{len(evals)} images, {time.perf_counter() - t1:.0f} s", file=sys.stderr)
    ctx.config["inversion_s"] = round(time.perf_counter() - t1, 1)
    originals = np.stack([downsample(g, 32).ravel() for g in greys])
    results = {m: summarise(per[m], retrieval_ranks(np.stack(small[m]), originals)) for m in METHODS}
    ctx.config["results"] = results
    ctx.config["examples"] = [ids[i] for i in sorted(pick)]

    t2 = time.perf_counter()  # several PDQ hashes of one picture (issue 20)
    sets, origin = window_sets()
    if ctx.quick:  # the single hash and the set with most windows
        sets = {k: sets[k] for k in ("none", max(sets, key=lambda k: len(sets[k](400, 300))))}
    crops = ctx.pick(3, TRAIN_CROPS)
    train_greys = [F._grey_frame(px) for px in train]
    hash_models = train_window_attackers(train_greys, sets, crops, ctx.seed)
    results["window_sets"], window_examples, single = evaluate_window_sets(greys, sets, hash_models, magnitudes,
                                                                           model.mean_grey, pick)
    ctx.config["window_sets"] = {"origin": origin, "train_crops": crops, "target_delta": WINDOW_TARGET,
                                 "seconds": round(time.perf_counter() - t2, 1)}

    from benchmarks import reduced_features as R  # reduced local-feature signals (issue 20)

    t3 = time.perf_counter()
    layout_crops = ctx.pick(1, LAYOUT_TRAIN_CROPS)
    signals = ctx.pick([s for s in R.SIGNALS if s.grid == 1], R.SIGNALS)
    layout_models, basis = train_layout_attackers(train_greys, signals, layout_crops, ctx.seed)
    results["reduced_features"], reduced_examples = evaluate_reduced(evals, greys, signals, model, layout_models,
                                                                     basis, single, pick)
    ctx.config["reduced_features"] = {"train_crops": layout_crops, "target_delta": WINDOW_TARGET,
                                      "seconds": round(time.perf_counter() - t3, 1)}
    if metrics_mod is None:
        ctx.note("SSIM not measured: scikit-image is not installed")
    write_report(ctx, results, len(evals))
    largest = max(sets, key=lambda k: results["window_sets"][k]["n_hashes"])
    examples[f"window set {largest!r}"] = window_examples[largest]
    examples["no positions"] = reduced_examples.get("no positions", [])
    draw_examples(ctx, [greys[i] for i in sorted(pick)], examples, [ids[i] for i in sorted(pick)],
                  extra=(f"window set {largest!r}", "no positions"))
    fg, pdq, const = results["features: gradient"], results["PDQ hash"], results["constant grey"]
    ctx.check("feature inversion correlates with the original better than chance (constant grey)",
              fg["corr64"]["mean"] > const["corr64"]["mean"], features=fg["corr64"]["mean"],
              constant=const["corr64"]["mean"])
    ctx.check("PDQ inversion re-hashes to (near) its own hash", pdq["pdq_distance"]["median"] <= nh.PDQ_MATCH_THRESHOLD,
              median_distance=pdq["pdq_distance"]["median"])


def summarise(values: dict[str, list], ranks: np.ndarray) -> dict:
    out: dict = {k: distribution(v) for k, v in values.items() if v}
    d = np.asarray(values["pdq_distance"])
    out["pdq_match_rate"] = float((d <= nh.PDQ_MATCH_THRESHOLD).mean())
    out["retrieval"] = retrieval_summary(ranks)
    return out


# --------------------------------------------------------------------------------------------
# report


def markdown(ctx: harness.Context, results: dict, n: int) -> str:
    a = ctx.config["attacker"]
    lines = [f"# Inverting banked signals ({ctx.mode} run)", "", f"Command: `{ctx.command}`", "",
             f"{n} evaluation images ({ctx.config['source']}); attacker trained on "
             f"{ctx.config['train_images']} other images ({a['training_keypoints']} keypoints, ridge {a['ridge']:g}, "
             f"held-out patch R^2 {a['held_out_patch_r2']:.2f}). Mean / median over images; retrieval "
             f"among all {n} evaluation originals (chance top-1 {100 / n:.1f} %, top-5 {100 * min(5, n) / n:.1f} %).", "",
             "| rebuilt from | corr 32x32 | corr 64x64 | corr detail | SSIM 64x64 | SSIM frame | PDQ distance | "
             "PDQ match (<= 31) | top-1 | top-5 | median rank |",
             "| --- | --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
    cell = lambda r, k, f: f"{r[k]['mean']:{f}} / {r[k]['median']:{f}}" if k in r else "-"
    for m in METHODS:
        r = results[m]
        lines.append(f"| {m} | {cell(r, 'corr32', '.2f')} | {cell(r, 'corr64', '.2f')} | {cell(r, 'corr_detail', '.2f')} | "
                     f"{cell(r, 'ssim64', '.2f')} | "
                     f"{cell(r, 'ssim_frame', '.2f')} | {cell(r, 'pdq_distance', '.0f')} | {100 * r['pdq_match_rate']:.0f} % | "
                     f"{100 * r['retrieval']['top1']:.0f} % | {100 * r['retrieval']['top5']:.0f} % | "
                     f"{r['retrieval']['median_rank']:.0f} |")
    lines += ["", "corr: Pearson correlation of the area-downsampled luma; corr detail: of the 128x128 luma "
              "without the DCT frequencies 0..16 x 0..16 (finer than a PDQ hash describes). The PDQ inversion is built from "
              "the hash's own bits, so its PDQ distance is near 0 by construction; the constant grey has no "
              "layout, so its correlations are 0 by definition."]
    ws = results.get("window_sets")
    if ws:
        c = ctx.config.get("window_sets", {})
        lines += ["", "## Several PDQ hashes of one picture (issue 20)", "",
                  f"Window sets from {c.get('origin', '?')}; each picture's whole hash and one hash per window. "
                  f"Attacks: least squares (64x64), learned (ridge on the signs of all hashes, trained on "
                  f"the training photos and {c.get('train_crops', '?')} random crops of each) and both (their "
                  f"average); the best of the three per set; retrieval: the attack that picks pictures out best. Delta: per-picture difference to the single hash's best attack, paired 95 % t "
                  f"interval; target <= {WINDOW_TARGET:g}.", "",
                  "| window set | hashes | corr 32x32 (95 % CI) | best attack | least squares | learned | both | "
                  "delta vs single PDQ (95 % CI) | top-1 | top-5 | median rank | within target |",
                  "| --- | ---: | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |"]
        for name, r in ws.items():
            a, d = r["attacks"], r["delta_vs_single"]
            lines.append(f"| {name} | {r['n_hashes']} | {r['corr32']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | "
                         f"{r['attack']} | {a['least squares']['corr32']['mean']:.3f} | {a['learned']['corr32']['mean']:.3f} | "
                         f"{a['both']['corr32']['mean']:.3f} | "
                         f"{d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] | "
                         f"{100 * r['retrieval']['top1']:.0f} % | {100 * r['retrieval']['top5']:.0f} % | "
                         f"{r['retrieval']['median_rank']:.0f} | {'yes' if r['within_target'] else 'no'} |")
    rf = results.get("reduced_features")
    if rf:
        c = ctx.config.get("reduced_features", {})
        lines += ["", "## Reduced local-feature signals (issue 20)", "",
                  "Signals of benchmarks/reduced_features.py, what the bank would keep. Attacks: the patch "
                  "regression laid back at the (coarsened) positions (features: gradient) and a ridge regression "
                  "from per-cell keypoint counts, orientation vectors and descriptor components to the 32x32 "
                  f"picture (learned layout; trained on the training photos and {c.get('train_crops', '?')} crops "
                  "of each); the best of the two per signal. Delta: per-picture difference to the single PDQ "
                  f"hash's best attack, paired 95 % t interval; target <= {WINDOW_TARGET:g}.", "",
                  "| signal | B/keypoint | corr 32x32 (95 % CI) | best attack | features: gradient | learned layout | "
                  "delta vs single PDQ (95 % CI) | top-1 | top-5 | median rank | within target |",
                  "| --- | ---: | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- |"]
        for name, r in rf.items():
            if "attacks" not in r:  # the baseline: what the attacker's prior alone scores
                lines.append(f"| {name} | - | {r['corr32']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | - | - | - | - | - | - | - | - |")
                continue
            a, d = r["attacks"], r["delta_vs_single_pdq"]
            lines.append(f"| {name} | {r['bytes_per_feature']:.0f} | {r['corr32']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | "
                         f"{r['attack']} | {a['features: gradient']['corr32']:.3f} | {a['learned layout']['corr32']:.3f} | "
                         f"{d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] | "
                         f"{100 * r['retrieval']['top1']:.0f} % | {100 * r['retrieval']['top5']:.0f} % | "
                         f"{r['retrieval']['median_rank']:.0f} | {'yes' if r['within_target'] else 'no'} |")
    return "\n".join(lines) + "\n"


def write_report(ctx: harness.Context, results: dict, n: int) -> None:
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / "inversion.md").write_text(markdown(ctx, results, n))
    ctx.note(f"table in {ctx.out / 'inversion.md'}")
    ctx.plot_bars("inversion_corr.png", "Correlation of rebuilt and original luma (mean)",
                  ["32x32", "64x64", "detail"], {m: [results[m][k]["mean"] for k in ("corr32", "corr64", "corr_detail")]
                                       for m in METHODS if m != "constant grey"}, ylabel="Pearson r")


def draw_examples(ctx: harness.Context, originals: list[np.ndarray], examples: dict, ids: list[str],
                  extra: tuple[str, ...] = ()) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        ctx.note("inversion_examples.png not drawn: matplotlib is not installed")
        return None
    cols = (("original", originals), ("from the feature set", examples["features: gradient"]),
            ("from the PDQ hash", examples["PDQ hash"]))
    titles = {"no positions": "from the features\nwithout positions"}
    cols += tuple((titles.get(e, f"from the PDQ hashes of\n{e}"), examples[e]) for e in extra if examples.get(e))
    fig, axes = plt.subplots(len(originals), len(cols), figsize=(3.4 * len(cols), 2.6 * len(originals)), squeeze=False)
    for r in range(len(originals)):
        for c, (title, imgs) in enumerate(cols):
            ax = axes[r][c]
            img = np.asarray(imgs[r], np.float32)
            if img.shape != originals[r].shape:  # a 32x32 rebuild, shown at the picture's shape
                import cv2

                img = cv2.resize(img, originals[r].shape[::-1], interpolation=cv2.INTER_CUBIC)
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title)
            if c == 0:
                ax.set_ylabel(ids[r][-28:], fontsize=7)
    fig.suptitle(f"Rebuilt from what a bank stores ({ctx.mode} run; evaluation images evenly spaced, not picked)",
                 fontsize=9)
    fig.tight_layout()
    ctx.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(ctx.out / "inversion_examples.png", dpi=90)
    plt.close(fig)
    ctx.plots.append("inversion_examples.png")
    return "inversion_examples.png"


def main(argv=None) -> int:
    return harness.main(run, NAME, argv)


if __name__ == "__main__":
    raise SystemExit(main())
