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
``inversion.md``, ``inversion_examples.png`` (original | feature inversion | PDQ inversion,
public evaluation photos only), ``inversion_corr.png``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

import ncii_hash as nh

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import datasets, harness  # noqa: E402

NAME = "inversion"
EVAL_PACKAGE = "gcompris-qt-data"
METHODS = ("features: gradient", "features: splat", "PDQ hash", "keypoints only", "constant grey",
           "unrelated photo")
EXAMPLES = 4


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
    if metrics_mod is None:
        ctx.note("SSIM not measured: scikit-image is not installed")
    write_report(ctx, results, len(evals))
    draw_examples(ctx, [greys[i] for i in sorted(pick)], examples, [ids[i] for i in sorted(pick)])
    fg, pdq, const = results["features: gradient"], results["PDQ hash"], results["constant grey"]
    ctx.check("feature inversion correlates with the original better than chance (constant grey)",
              fg["corr64"]["mean"] > const["corr64"]["mean"], features=fg["corr64"]["mean"],
              constant=const["corr64"]["mean"])
    ctx.check("PDQ inversion re-hashes to (near) its own hash", pdq["pdq_distance"]["median"] <= nh.PDQ_MATCH_THRESHOLD,
              median_distance=pdq["pdq_distance"]["median"])


def summarise(values: dict[str, list], ranks: np.ndarray) -> dict:
    out: dict = {}
    for k, v in values.items():
        if v:
            a = np.asarray(v, np.float64)
            out[k] = {"mean": float(a.mean()), "median": float(np.median(a)), "q1": float(np.percentile(a, 25)),
                      "q3": float(np.percentile(a, 75))}
    d = np.asarray(values["pdq_distance"])
    out["pdq_match_rate"] = float((d <= nh.PDQ_MATCH_THRESHOLD).mean())
    out["retrieval"] = {"top1": float((ranks <= 1).mean()), "top5": float((ranks <= 5).mean()),
                        "median_rank": float(np.median(ranks)), "candidates": int(len(ranks))}
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
    return "\n".join(lines) + "\n"


def write_report(ctx: harness.Context, results: dict, n: int) -> None:
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / "inversion.md").write_text(markdown(ctx, results, n))
    ctx.note(f"table in {ctx.out / 'inversion.md'}")
    ctx.plot_bars("inversion_corr.png", "Correlation of rebuilt and original luma (mean)",
                  ["32x32", "64x64", "detail"], {m: [results[m][k]["mean"] for k in ("corr32", "corr64", "corr_detail")]
                                       for m in METHODS if m != "constant grey"}, ylabel="Pearson r")


def draw_examples(ctx: harness.Context, originals: list[np.ndarray], examples: dict, ids: list[str]) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        ctx.note("inversion_examples.png not drawn: matplotlib is not installed")
        return None
    cols = (("original", originals), ("from the feature set", examples["features: gradient"]),
            ("from the PDQ hash", examples["PDQ hash"]))
    fig, axes = plt.subplots(len(originals), 3, figsize=(10, 2.6 * len(originals)), squeeze=False)
    for r in range(len(originals)):
        for c, (title, imgs) in enumerate(cols):
            ax = axes[r][c]
            ax.imshow(imgs[r], cmap="gray", vmin=0, vmax=255)
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
