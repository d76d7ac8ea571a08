"""Matching quality on real photos: what PDQ catches and what it confuses (project issue #7).

For every photo of the dataset (``benchmarks/datasets.py``; quick mode: a small generated
sample) and every edit of ``benchmarks/edits.py``, the edited copy is hashed and compared with
every original, by each hasher:

* ``pdq`` -- ncii_hash PDQ, plain hash against plain hash;
* ``pdq+dihedral`` -- the query's 8 rotations/flips against the banked hash (the platform rule);
* ``pdq+dihedral+borders`` -- also the hash of the content box inside near-uniform borders, on
  both sides, any-to-any (``ncii_hash.image.borders``);
* ``pdq+borders`` -- the border option without dihedral queries;
* ``phash``, ``dhash``, ``ahash``, ``whash`` -- imagehash's 64-bit hashes, for context.

Metrics, per hasher (distances are bit counts; thresholds inclusive):

* recall per edit at the nominal threshold (PDQ: 31 of 256 bits; 64-bit hashes: 7, the same
  share of bits) and at the threshold giving 99.99% precision, where precision counts every
  (edited copy, original of another group) pair within the threshold as a false match;
* the false-match rate over all ordered pairs of originals from different groups at the
  nominal threshold, with a bootstrap interval over images (pairs share images), the whole
  distribution of those distances (histogram plot), and the largest threshold at which that
  rate is still zero ("zero-FP threshold") with recall per edit there;
* ROC curves: recall over all edits vs the distinct-pair false-match rate, per hasher.

The local-feature stage of issue #8 (``features`` alone and ``pdq+dihedral+borders | features``)
is scored on the same originals and edited copies by ``benchmarks/quality_features.py``.

Output: ``quality.json`` (harness schema; results under ``config.results`` and
``config.features``), ``quality.md`` (the tables), ``quality_roc.png``,
``quality_distinct_hist.png``, ``quality_recall.png``, ``quality_features_inliers.png`` and the
raw verifications ``quality_features_pairs.npz``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

import ncii_hash as nh

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import datasets, harness, quality_features  # noqa: E402
from benchmarks.edits import EDITS  # noqa: E402

NAME = "quality"
TARGET_PRECISION = 0.9999
#: The cached photos (longest side 1024) are halved once more for the benchmark: PDQ and the
#: imagehash peers look at 64x64 or smaller grids, and the peers' PIL resizes dominate the
#: run time on large images. Every edit then works on this size.
BENCH_MAX_SIDE = 512
BOOTSTRAP_ROUNDS = 200
#: Published by Thorn (perception benchmark, PDQ at its 99.99%-precision threshold), as quoted
#: in issue #7, with the edit of ours that comes closest.
THORN_PDQ = (("JPEG q95", 99.9, "jpeg_q90"), ("rotate 4 degrees", 54.49, "rotate_+5"),
             ("crop 5%", 9.03, "crop_centre_5"), ("pad 20%", 1.35, "pad_colour_20"))


# --------------------------------------------------------------------------------------------
# hashers: an image becomes a *set* of hashes on the query side and on the bank side


@dataclass(frozen=True)
class Hasher:
    name: str
    bits: int
    nominal: int  #: the usual match threshold (inclusive)
    #: RGB uint8 pixels -> (query set (Kq, B), bank set (Kb, B)) of packed hashes
    hash_sets: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _pdq_sets(pixels: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    r = nh.pdq_hash(pixels, dihedral=True, trim_borders=True)
    plain = r.hash[None]
    return {
        "pdq": (plain, plain),
        "pdq+dihedral": (r.dihedral, plain),
        "pdq+borders": (r.hashes, r.hashes),
        "pdq+dihedral+borders": (r.dihedral_sets.reshape(-1, 32), r.hashes),
    }


def make_hashers(imagehash) -> list[Hasher]:
    pdq_names = ("pdq", "pdq+dihedral", "pdq+borders", "pdq+dihedral+borders")
    hashers = [Hasher(n, 256, nh.PDQ_MATCH_THRESHOLD, (lambda px, n=n: _pdq_sets(px)[n])) for n in pdq_names]
    if imagehash is not None:
        for n in ("phash", "dhash", "ahash", "whash"):
            fn = getattr(imagehash, {"ahash": "average_hash"}.get(n, n))

            def sets(px, fn=fn):
                h = np.packbits(np.asarray(fn(Image.fromarray(px)).hash, dtype=np.uint8).ravel())[None]
                return h, h
            hashers.append(Hasher(n, 64, round(nh.PDQ_MATCH_THRESHOLD * 64 / 256) - 1, sets))
    return hashers


def hash_all(hashers: Sequence[Hasher], pixels: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every hasher's (query set, bank set) of one image; the PDQ family shares one hashing."""
    out = {}
    pdq = _pdq_sets(pixels) if any(h.name.startswith("pdq") for h in hashers) else {}
    for h in hashers:
        out[h.name] = pdq[h.name] if h.name in pdq else h.hash_sets(pixels)
    return out


# --------------------------------------------------------------------------------------------
# distances between hash sets


def stack_sets(sets: Sequence[np.ndarray]) -> np.ndarray:
    """(n, K, B) from sets of different sizes: short sets are padded by repeating their first
    hash, which leaves every set-to-set minimum unchanged."""
    k = max(s.shape[0] for s in sets)
    out = np.empty((len(sets), k, sets[0].shape[1]), dtype=np.uint8)
    for i, s in enumerate(sets):
        out[i, : s.shape[0]] = s
        out[i, s.shape[0]:] = s[0]
    return out


def set_distances(queries: np.ndarray, bank: np.ndarray, chunk: int = 256) -> np.ndarray:
    """(Q, N) int32: min Hamming distance between query set q (Kq, B) and bank set n (Kb, B)."""
    if queries.shape[-1] % 8 or bank.shape[-1] != queries.shape[-1]:
        raise ValueError("hash widths must match and be a multiple of 8 bytes")
    q = np.ascontiguousarray(queries).view(np.uint64)  # (Q, Kq, W)
    b = np.ascontiguousarray(bank).view(np.uint64)  # (N, Kb, W)
    out = np.empty((q.shape[0], b.shape[0]), dtype=np.int32)
    for s in range(0, q.shape[0], chunk):
        x = q[s:s + chunk, None, :, None, :] ^ b[None, :, None, :, :]  # (c, N, Kq, Kb, W)
        d = np.bitwise_count(x).sum(axis=-1, dtype=np.int32)
        out[s:s + chunk] = d.min(axis=(2, 3))
    return out


# --------------------------------------------------------------------------------------------
# metrics (pure functions of distances, tested in tests/test_quality_bench.py)


def distinct_mask(groups: Sequence[str]) -> np.ndarray:
    """(N, N) bool: ordered pairs of originals from different groups."""
    g = np.asarray(groups)
    return g[:, None] != g[None, :]


def pair_fpr(d_orig: np.ndarray, distinct: np.ndarray, t: int) -> float:
    n = int(distinct.sum())
    return float(((d_orig <= t) & distinct).sum() / n) if n else float("nan")


def bootstrap_fpr(d_orig: np.ndarray, distinct: np.ndarray, t: int, *, rounds: int, seed: int
                  ) -> tuple[float, float]:
    """95% interval of the pair false-match rate, resampling images (not pairs) with replacement."""
    rng = np.random.default_rng(seed)
    n = d_orig.shape[0]
    hit = ((d_orig <= t) & distinct).astype(np.float64)
    den = distinct.astype(np.float64)
    rates = []
    for _ in range(rounds):
        w = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        total = w @ den @ w
        rates.append((w @ hit @ w) / total if total else np.nan)
    lo, hi = np.nanpercentile(rates, [2.5, 97.5])
    return float(lo), float(hi)


def recall_by_edit(d_true: np.ndarray, edit_of: Sequence[str], t: int) -> dict[str, float]:
    e = np.asarray(edit_of)
    return {name: float((d_true[e == name] <= t).mean()) for name in dict.fromkeys(edit_of)}


def precision_threshold(d_true: np.ndarray, d_false_counts: np.ndarray, bits: int,
                        target: float = TARGET_PRECISION) -> Optional[int]:
    """Largest threshold t whose precision TP(t) / (TP(t) + FP(t)) is at least ``target``.

    ``d_false_counts[d]`` is the number of false (query, original) pairs at distance d.
    """
    tp = np.cumsum(np.bincount(d_true, minlength=bits + 1)[: bits + 1])
    fp = np.cumsum(d_false_counts[: bits + 1])
    ok = [t for t in range(bits + 1) if tp[t] > 0 and tp[t] / (tp[t] + fp[t]) >= target]
    return max(ok) if ok else None


def zero_fp_threshold(d_orig: np.ndarray, distinct: np.ndarray) -> int:
    """Largest threshold at which no distinct pair of originals matches (closest pair - 1)."""
    return int(d_orig[distinct].min()) - 1 if distinct.any() else -1


# --------------------------------------------------------------------------------------------
# the benchmark


def load_photos(ctx: harness.Context) -> tuple[list[np.ndarray], list[str], list[str], list[str], str]:
    """(pixels, ids, groups, domains, source description)."""
    if ctx.quick:
        n = 6
        imgs = datasets.synthetic_photos(n, ctx.seed)
        return imgs, [f"synthetic-{i}" for i in range(n)], [f"g{i}" for i in range(n)], ["photo"] * n, "synthetic"
    manifest = datasets.load_manifest(ctx.cache) or datasets.gather(ctx.cache, log=lambda s: None)
    photos = manifest["photos"]
    if not photos:
        ctx.note("no photo packages installed: fell back to generated images (run "
                 "python -m benchmarks.datasets --install)")
        n = 40
        return (datasets.synthetic_photos(n, ctx.seed), [f"synthetic-{i}" for i in range(n)],
                [f"g{i}" for i in range(n)], ["photo"] * n, "synthetic (fallback)")
    folder = ctx.cache / "photos"
    pixels = [np.asarray(datasets.normalise(Image.open(folder / p["file"]), BENCH_MAX_SIDE)) for p in photos]
    return (pixels, [p["id"] for p in photos], [p["group"] for p in photos],
            [p["domain"] for p in photos], str(folder / "manifest.json"))


def run(ctx: harness.Context) -> None:
    imagehash = ctx.peer("imagehash", dist="ImageHash")
    hashers = make_hashers(imagehash)
    pixels, ids, groups, domains, source = load_photos(ctx)
    edit_names = list(EDITS)
    ctx.config.update(seed=ctx.seed, photos=len(pixels), groups=len(set(groups)), source=source,
                      domains={d: domains.count(d) for d in set(domains)}, edits=edit_names,
                      hashers={h.name: {"bits": h.bits, "nominal_threshold": h.nominal} for h in hashers},
                      target_precision=TARGET_PRECISION,
                      photo_max_side=None if ctx.quick else BENCH_MAX_SIDE)

    stage = quality_features.FeatureStage(ctx, edit_names)
    t0 = time.perf_counter()
    bank = {h.name: [] for h in hashers}
    for px in pixels:
        for k, v in hash_all(hashers, px).items():
            bank[k].append(v[1])
    queries = {h.name: [] for h in hashers}
    qrys_orig = {h.name: [] for h in hashers}
    src, edit_of = [], []
    for i, px in enumerate(pixels):
        for k, v in hash_all(hashers, px).items():
            qrys_orig[k].append(v[0])
        if stage.enabled:
            stage.add_original(px)
        im = Image.fromarray(px)
        for j, name in enumerate(edit_names):
            rng = np.random.default_rng([ctx.seed, i, j])
            edited = np.asarray(EDITS[name][1](im, rng).convert("RGB"))
            for k, v in hash_all(hashers, edited).items():
                queries[k].append(v[0])
            if stage.wants(name):
                stage.add_edited(len(src), edited)
            src.append(i)
            edit_of.append(name)
        if (i + 1) % 25 == 0:
            print(f"[quality] {i + 1}/{len(pixels)} photos, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    ctx.config["hashing_s"] = round(time.perf_counter() - t0, 1)

    results = {}
    for domain in sorted(set(domains)):
        keep = np.array([d == domain for d in domains])
        if keep.sum() < 2:
            continue
        results[domain] = evaluate(ctx, hashers, bank, qrys_orig, queries, np.array(src), edit_of,
                                   groups, keep)
    ctx.config["results"] = results
    try:  # the local-feature stage (issue 8) on the same originals and edited copies
        ctx.config["features"] = quality_features.evaluate(
            ctx, stage, bank[quality_features.PDQ_STAGE], qrys_orig[quality_features.PDQ_STAGE],
            queries[quality_features.PDQ_STAGE], src, edit_of, groups, domains, ids,
            pdq_threshold=nh.PDQ_MATCH_THRESHOLD,
            bootstrap=lambda hit, dk: bootstrap_fpr(np.where(hit, 0, 1), dk, 0, rounds=BOOTSTRAP_ROUNDS, seed=ctx.seed))
    finally:
        stage.close()
    main_domain = "photo" if "photo" in results else next(iter(results))
    write_report(ctx, hashers, results, main_domain, edit_names)


def evaluate(ctx, hashers, bank, qrys_orig, queries, src, edit_of, groups, keep) -> dict:
    """All metrics for the originals selected by ``keep`` and their edited copies."""
    idx = np.flatnonzero(keep)
    remap = -np.ones(len(keep), dtype=np.int64)
    remap[idx] = np.arange(len(idx))
    qsel = np.flatnonzero(keep[src])
    qsrc = remap[src[qsel]]
    qedit = [edit_of[i] for i in qsel]
    g = [groups[i] for i in idx]
    distinct = distinct_mask(g)
    same_group = np.asarray(g)[qsrc][:, None] == np.asarray(g)[None, :]
    out = {"photos": int(len(idx)), "groups": len(set(g)), "queries": int(len(qsel)),
           "distinct_pairs": int(distinct.sum()), "hashers": {}}
    for h in hashers:
        b = stack_sets([bank[h.name][i] for i in idx])
        d_orig = set_distances(stack_sets([qrys_orig[h.name][i] for i in idx]), b)
        d_edit = set_distances(stack_sets([queries[h.name][i] for i in qsel]), b)
        d_true = d_edit[np.arange(len(qsel)), qsrc]
        false_counts = np.bincount(d_edit[~same_group], minlength=h.bits + 1)
        t_prec = precision_threshold(d_true, false_counts, h.bits)
        t_zero = zero_fp_threshold(d_orig, distinct)
        dd = d_orig[distinct]
        fpr = pair_fpr(d_orig, distinct, h.nominal)
        ts = list(range(h.bits + 1))
        out["hashers"][h.name] = {
            "bits": h.bits, "nominal_threshold": h.nominal,
            "recall_nominal": recall_by_edit(d_true, qedit, h.nominal),
            "threshold_precision": t_prec,
            "recall_precision": recall_by_edit(d_true, qedit, t_prec) if t_prec is not None else None,
            "threshold_zero_fp": t_zero,
            "recall_zero_fp": recall_by_edit(d_true, qedit, t_zero),
            "pair_fpr_nominal": fpr,
            "pair_fpr_nominal_ci95": bootstrap_fpr(d_orig, distinct, h.nominal, rounds=BOOTSTRAP_ROUNDS, seed=ctx.seed),
            "pair_matches_nominal": int(((d_orig <= h.nominal) & distinct).sum()),
            "query_false_matches_nominal": int(false_counts[: h.nominal + 1].sum()),
            "distinct_distance": {"min": int(dd.min()), "p01": float(np.percentile(dd, 1)),
                                  "p50": float(np.median(dd)), "mean": float(dd.mean()),
                                  "histogram": np.bincount(dd, minlength=h.bits + 1).tolist()},
            "true_distance_median_by_edit": {e: float(np.median(d_true[np.asarray(qedit) == e])) for e in dict.fromkeys(qedit)},
            "roc": {"threshold": ts,
                    "recall": [float((d_true <= t).mean()) for t in ts],
                    "pair_fpr": np.cumsum(np.bincount(dd, minlength=h.bits + 1))[: h.bits + 1].astype(float) / max(1, dd.size)},
        }
        out["hashers"][h.name]["roc"]["pair_fpr"] = out["hashers"][h.name]["roc"]["pair_fpr"].tolist()
    return out


# --------------------------------------------------------------------------------------------
# report: markdown tables and plots


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def markdown(ctx, hashers, results, domain, edit_names) -> str:
    r = results[domain]
    hs = r["hashers"]
    names = [h.name for h in hashers]
    lines = [f"Dataset: {r['photos']} {domain} images in {r['groups']} groups, {r['queries']} edited "
             f"copies, {r['distinct_pairs']} ordered distinct pairs ({ctx.mode} run, seed {ctx.seed}).", ""]
    lines += ["| hasher | bits | nominal t | pair FPR at t [95% CI] | closest distinct | distinct median | "
              "zero-FP t | 99.99%-precision t | recall all edits at t / zero-FP t / 99.99% t |",
              "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |"]
    for n in names:
        x = hs[n]
        lo, hi = x["pair_fpr_nominal_ci95"]
        mean = lambda rec: None if rec is None else float(np.mean(list(rec.values())))
        lines.append(f"| {n} | {x['bits']} | {x['nominal_threshold']} | {x['pair_fpr_nominal']:.2e} "
                     f"[{lo:.1e}, {hi:.1e}] | {x['distinct_distance']['min']} | {x['distinct_distance']['p50']:.0f} | "
                     f"{x['threshold_zero_fp']} | {x['threshold_precision']} | {_pct(mean(x['recall_nominal']))} / "
                     f"{_pct(mean(x['recall_zero_fp']))} / {_pct(mean(x['recall_precision']))} |")
    for title, key, tkey in (("Recall (%) per edit at the nominal threshold (PDQ d <= 31; 64-bit hashes d <= 7)", "recall_nominal", "nominal_threshold"),
                             ("Recall (%) per edit at the 99.99%-precision threshold", "recall_precision", "threshold_precision"),
                             ("Recall (%) per edit at the zero-FP threshold (closest distinct pair - 1)", "recall_zero_fp", "threshold_zero_fp")):
        lines += ["", f"**{title}**", "",
                  "| edit | " + " | ".join(f"{n} (t={hs[n][tkey]})" for n in names) + " |",
                  "| --- | " + " | ".join("---:" for _ in names) + " |"]
        for e in edit_names:
            cells = [_pct(hs[n][key][e]) if hs[n][key] else "-" for n in names]
            lines.append(f"| {e} | " + " | ".join(cells) + " |")
    p = hs["pdq"]
    lines += ["", "**Thorn's published PDQ recall (at its 99.99%-precision threshold) beside ours**", "",
              f"| Thorn edit | Thorn recall % | our closest edit | pdq at t={p['threshold_precision']} | "
              f"pdq+dihedral+borders at t={hs['pdq+dihedral+borders']['threshold_precision']} |",
              "| --- | ---: | --- | ---: | ---: |"]
    for label, value, ours in THORN_PDQ:
        lines.append(f"| {label} | {value} | {ours} | {_pct((p['recall_precision'] or {}).get(ours))} | "
                     f"{_pct((hs['pdq+dihedral+borders']['recall_precision'] or {}).get(ours))} |")
    return "\n".join(lines) + "\n"


def write_report(ctx, hashers, results, domain, edit_names) -> None:
    md = [f"# Matching quality ({ctx.mode} run)", "", f"Command: `{ctx.command}`", ""]
    for d in results:
        md += [f"## {d}", "", markdown(ctx, hashers, results, d, edit_names),
               quality_features.markdown(ctx, ctx.config.get("features"), d)]
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / "quality.md").write_text("\n".join(md))
    ctx.note(f"tables in {ctx.out / 'quality.md'}")
    r = results[domain]["hashers"]
    pdq = r["pdq+dihedral"]
    ctx.check("no distinct pair of originals within PDQ d <= 31 (pdq+dihedral)",
              pdq["pair_matches_nominal"] == 0, pairs=pdq["pair_matches_nominal"],
              closest=pdq["distinct_distance"]["min"])
    ctx.check("identity-like edits (jpeg_q90) recalled at d <= 31", pdq["recall_nominal"]["jpeg_q90"] >= 0.99,
              recall=pdq["recall_nominal"]["jpeg_q90"])
    plots(ctx, hashers, results[domain], edit_names)
    quality_features.report(ctx, ctx.config.get("features"), domain)


def plots(ctx, hashers, res, edit_names) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        ctx.note("plots not drawn: matplotlib is not installed")
        return
    hs = res["hashers"]
    ctx.out.mkdir(parents=True, exist_ok=True)
    # ROC: recall over all edits vs distinct-pair FPR, thresholds as fractions of bits
    fig, ax = plt.subplots(figsize=(7, 5))
    floor = 0.5 / max(1, res["distinct_pairs"])
    for h in hashers:
        roc = hs[h.name]["roc"]
        ax.plot([max(f, floor) for f in roc["pair_fpr"]], roc["recall"], label=h.name,
                marker="." if h.bits == 64 else None)
    ax.set_xscale("log")
    ax.set_xlabel(f"false-match rate over distinct pairs of originals (0 drawn at {floor:.1e})")
    ax.set_ylabel("recall over all edits")
    ax.set_title(f"ROC per hasher ({ctx.mode} run)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ctx.out / "quality_roc.png", dpi=110)
    plt.close(fig)
    ctx.plots.append("quality_roc.png")
    # distinct-pair distance histogram for PDQ
    fig, ax = plt.subplots(figsize=(7, 4))
    for n in ("pdq", "pdq+dihedral", "pdq+dihedral+borders"):
        ax.step(range(257), hs[n]["distinct_distance"]["histogram"], where="mid", label=f"{n} (closest {hs[n]['distinct_distance']['min']})")
    ax.axvline(nh.PDQ_MATCH_THRESHOLD, color="red", linestyle="--", label="match threshold 31")
    ax.set_xlabel("PDQ distance between originals of different groups")
    ax.set_ylabel("ordered pairs")
    ax.set_title(f"Distinct-pair distances ({ctx.mode} run)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ctx.out / "quality_distinct_hist.png", dpi=110)
    plt.close(fig)
    ctx.plots.append("quality_distinct_hist.png")
    names = ["pdq", "pdq+dihedral", "pdq+dihedral+borders"]
    ctx.plot_bars("quality_recall.png", "PDQ recall per edit at d <= 31", edit_names,
                  {n: [100 * hs[n]["recall_nominal"][e] for e in edit_names] for n in names}, ylabel="recall %")


def main(argv=None) -> int:
    return harness.main(run, NAME, argv)


if __name__ == "__main__":
    raise SystemExit(main())
