"""Local-feature index at scale (issue #8): query latency, recall and bytes per image of
:class:`ncii_hash.FeatureIndex` over banks of up to a million images' feature sets.

**Real photos.** The photos of ``benchmarks/datasets.py`` (full mode; quick mode and machines
without the dataset: the photos shipped in scikit-image's ``data`` folder) are split by scene
group into three disjoint parts: *banked originals* (one photo per group, banked with their
real 256-feature sets), *distractors* (other photos, queried unedited, never banked) and the
*pool* (everything else), which only feeds the synthetic images.

**Synthetic feature sets.** Uniform random descriptors would be far too easy: real ORB
descriptors are biased and correlated (some bits are nearly always set, similar corners give
similar descriptors), so real banks have heavy buckets, and the voter's cost is the postings
it reads. Each synthetic image is therefore made of *real* records: the pool holds every
feature of the pool photos (up to 1024 a photo) at full size and at 0.6x; an image draws 256
pool records at random (with their real orientation and pyramid level), places them at
uniform positions in a 512x384 frame, and flips each descriptor bit independently with
probability 1/16 (6.25%, the AND of four random bit streams), so no two synthetic images
share a descriptor exactly (two copies of one pool record differ by ~30 bits, one copy is
~16 bits from its source). A synthetic image has no consistent geometry, as a distinct photo.
Caveat: a pool of P records reused across N images gives each pool descriptor ~256 N / P
noisy near-copies; that *overstates* near-duplicate descriptors compared with N truly distinct
photos (it makes the voter's job harder, not easier), and the size of the pool is in the
output.

**Bank build.** A million sets are ~9.7 GB of records, so they are not built through
``FeatureIndex.add``: the records are written in chunks into a memory-mapped file in the work
directory (``--workdir`` or the system temp dir; removed afterwards), the real originals
appended, and ``FeatureIndex.from_arrays`` builds the bucket tables over them; the index is
saved and the timed searches run on ``FeatureIndex.load(path, mmap=True)``.

**Queries.** Each banked original under six edits of ``benchmarks/edits.py`` (off-centre 10%
crop, rotation +5 and -5 degrees, caption banner, 20% letterbox, phone screenshot), 512 query
features each, plus the distractors. Reported per bank size: search latency p50/p95 (candidates
+ verification, the default ``FeatureIndex.search``) at 1 and 2 threads, the candidate stage
alone, feature extraction of the query (reported apart), postings read per query and how many
query buckets were skipped as too heavy, candidate recall (true original among the
candidates) and match recall (it is a verified match), false matches against synthetic images
and, apart, matches to another banked original (a distinct photo of the same scene whose
grouping the dataset missed counts here), the Hough scores of true and best other
candidates, bytes per image (on disk; and the resident set after the queries), build time per
image and load time (checksum verified). Target (issue #8): <= 100 ms a query on 2 cores at 1M.

    python -m benchmarks.bench_features --quick --out bench-results
    python -m benchmarks.bench_features --out bench-results            # 10k, 100k, 1M
    python -m benchmarks.bench_features --sizes 500000 --workdir /data  # one chosen size

The 1M point needs ~11 GB of disk twice over (records, then the saved index) and ~10 GB of
memory while its tables are built; sizes whose build would not fit in the memory available
are skipped (noted in the output).
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

try:
    from . import harness
except ImportError:  # run as a plain script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks import harness

NAME = "features"
EDIT_NAMES = ("crop_offcentre_10", "rotate_+5", "rotate_-5", "caption_banner_15", "letterbox_black_20",
              "screenshot_phone")
FRAME = (512, 384)  #: synthetic images' frame (width, height)
FLIP_ANDS = 4  #: bit flip probability 2**-FLIP_ANDS
POOL_FEATURES = 1024
POOL_SCALES = (1.0, 0.6)
CHUNK = 4096  #: synthetic images generated at once
SYNTHETIC_ID0 = 1_000_000_000
QUICK_SIZES = [5000]
FULL_SIZES = [10_000, 100_000, 1_000_000]
#: quick mode: photos shipped with scikit-image (one scene group each; motorcycle_right is
#: the stereo partner of motorcycle_left and goes to the pool with it).
SKIMAGE_BANKED = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "camera")
SKIMAGE_DISTRACTORS = ("coins", "page", "moon", "retina", "horse")
SKIMAGE_POOL = ("brick", "grass", "gravel", "cell", "ihc", "microaneurysms", "text", "logo", "color",
                "clock_motion", "hubble_deep_field", "motorcycle_right", "phantom")
FULL_BANKED, FULL_DISTRACTORS = 60, 40
SIZES: Optional[list[int]] = None  # --sizes
WORKDIR: Optional[Path] = None  # --workdir


# ---- photos and pool ----------------------------------------------------------------------
def _skimage_photos() -> tuple[dict[str, np.ndarray], str]:
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    out = {}
    for stem in SKIMAGE_BANKED + SKIMAGE_DISTRACTORS + SKIMAGE_POOL:
        hits = sorted(folder.glob(stem + ".*"))
        if hits:
            out[stem] = np.asarray(Image.open(hits[0]).convert("RGB"))
    return out, f"scikit-image data ({folder})"


def load_split(ctx: harness.Context) -> tuple[dict, dict, list[np.ndarray], str]:
    """(banked {name: pixels}, distractors {name: pixels}, pool photos, source)."""
    from benchmarks import datasets

    manifest = None if ctx.quick else datasets.load_manifest(ctx.cache)
    if manifest is None or len(manifest["photos"]) < FULL_BANKED + FULL_DISTRACTORS + 20:
        if not ctx.quick:
            ctx.note("photo dataset not found (python -m benchmarks.datasets): used scikit-image's photos")
        photos, source = _skimage_photos()
        banked = {k: photos[k] for k in SKIMAGE_BANKED if k in photos}
        distractors = {k: photos[k] for k in SKIMAGE_DISTRACTORS if k in photos}
        pool = [photos[k] for k in SKIMAGE_POOL if k in photos]
        return banked, distractors, pool, source
    folder = ctx.cache / "photos"
    by_group: dict[str, list[dict]] = {}
    for p in manifest["photos"]:
        by_group.setdefault(p["group"], []).append(p)
    groups = sorted(by_group)
    np.random.default_rng(ctx.seed).shuffle(groups)
    photo_groups = [g for g in groups if by_group[g][0]["domain"] == "photo"]
    banked_g = photo_groups[:FULL_BANKED]
    distract_g = photo_groups[FULL_BANKED:FULL_BANKED + FULL_DISTRACTORS]
    used = set(banked_g) | set(distract_g)

    def px(p: dict) -> np.ndarray:
        return np.asarray(Image.open(folder / p["file"]).convert("RGB"))

    banked = {by_group[g][0]["id"]: px(by_group[g][0]) for g in banked_g}
    distractors = {by_group[g][0]["id"]: px(by_group[g][0]) for g in distract_g}
    pool = [px(p) for g in groups if g not in used for p in by_group[g]]
    return banked, distractors, pool, str(folder / "manifest.json")


def record_rows(fs) -> np.ndarray:
    """The (n, 38) uint8 serialized records of a feature set."""
    from ncii_hash.features.orb import _HEADER

    return np.frombuffer(fs.to_bytes()[_HEADER.size:], np.uint8).reshape(len(fs), -1)


def build_pool(photos: list[np.ndarray]) -> np.ndarray:
    from ncii_hash.features import extract_features

    rows = []
    for im in photos:
        for s in POOL_SCALES:
            pic = im if s == 1.0 else np.asarray(Image.fromarray(im).resize(
                (max(1, round(im.shape[1] * s)), max(1, round(im.shape[0] * s))), Image.BILINEAR))
            fs = extract_features(pic, max_features=POOL_FEATURES)
            if len(fs):
                rows.append(record_rows(fs))
    return np.ascontiguousarray(np.concatenate(rows))


def synthetic_records(rng: np.random.Generator, pool: np.ndarray, m: int) -> np.ndarray:
    """(m, 256, 38) records of m synthetic images (see the module docstring)."""
    rec = pool[rng.integers(0, len(pool), (m, 256))]
    xy = np.empty((m, 256, 2), np.uint16)
    xy[..., 0] = rng.integers(0, FRAME[0] * 8, (m, 256))
    xy[..., 1] = rng.integers(0, FRAME[1] * 8, (m, 256))
    rec[..., 0:4] = xy.astype("<u2").view(np.uint8).reshape(m, 256, 4)
    noise = rng.integers(0, 1 << 64, (m, 256, 4), dtype=np.uint64, endpoint=False)
    for _ in range(FLIP_ANDS - 1):
        noise &= rng.integers(0, 1 << 64, (m, 256, 4), dtype=np.uint64, endpoint=False)
    rec[..., 6:] ^= noise.view(np.uint8).reshape(m, 256, 32)
    return rec


# ---- measurement helpers ------------------------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def label(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n // 1000}k"


def pct(samples: Sequence[float], q: float) -> float:
    return round(1e3 * float(np.percentile(np.asarray(samples), q)), 2)


def record_timing(ctx: harness.Context, name: str, samples: list[float]) -> None:
    st = harness.summarize(samples)
    ctx.measurements.append({"name": name, "subject": "ncii_hash", "unit": "s", "per": "query", "items": 1,
                             "stats": st.as_dict(), "per_item_s": st.median,
                             "throughput_per_s": 1 / st.median if st.median > 0 else None,
                             "samples": samples})


def bucket_profile(seg, queries: list) -> dict:
    """Postings a query reads (all its sets), and table lookups skipped as heavier than the stop
    size, computed from the tables (the C++ voter reads exactly these)."""
    pos = seg.positions.astype(np.int64)
    kb = pos.shape[1]
    sizes = np.diff(seg.offsets.astype(np.int64), axis=1)  # (tables, buckets)
    read, skipped, heavy_read = [], [], []
    for sets in queries:  # a query is searched with all its sets (query_features): sum them
        r = k = h = 0
        for q in sets:
            bits = np.unpackbits(q.descriptors, axis=1, bitorder="little")
            sz = np.stack([sizes[t][(bits[:, pos[t]].astype(np.int64) << np.arange(kb)).sum(1)]
                           for t in range(len(pos))])
            ok = sz <= seg.max_bucket
            r += int(sz[ok].sum())
            k += int((~ok).sum())
            h += int(sz[ok & (sz > 16 * sizes.mean())].sum())
        read.append(r)
        skipped.append(k)
        heavy_read.append(h)
    flat = np.sort(sizes.ravel())
    nonempty = flat[flat > 0]
    return {
        "key_bits": int(kb), "tables": int(len(pos)), "stop_size": int(seg.max_bucket),
        "bucket_mean": round(float(sizes.mean()), 2),
        "bucket_p99_nonempty": int(np.percentile(nonempty, 99)) if len(nonempty) else 0,
        "bucket_max": int(flat[-1]) if len(flat) else 0,
        "postings_in_skipped_buckets": round(float(flat[flat > seg.max_bucket].sum() / max(1, flat.sum())), 4),
        "read_per_query_mean": round(float(np.mean(read)), 1),
        "read_per_query_p95": int(np.percentile(read, 95)),
        "read_from_buckets_over_16x_mean": round(float(np.sum(heavy_read) / max(1, np.sum(read))), 3),
        "skipped_lookups_per_query_mean": round(float(np.mean(skipped)), 1),
    }


# ---- the benchmark ------------------------------------------------------------------------
def prepare(ctx: harness.Context) -> dict:
    """Photos, pool, banked sets and the query feature sets (extraction timed per query)."""
    from ncii_hash.features import extract_features, query_features

    from benchmarks.edits import EDITS

    t0 = time.perf_counter()
    banked, distractors, pool_photos, source = load_split(ctx)
    pool = build_pool(pool_photos)
    bank_sets = {k: extract_features(v) for k, v in banked.items()}
    # queries: (true row or -1, edit, FeatureSet)
    names = list(banked)
    queries, extract_s = [], []
    for i, k in enumerate(names):
        for e in EDIT_NAMES:
            im = EDITS[e][1](Image.fromarray(banked[k]), np.random.default_rng([ctx.seed, i, len(e)]))
            px = np.asarray(im.convert("RGB"))
            t = time.perf_counter()
            fs = query_features(px)  # every frame a query is searched in
            extract_s.append(time.perf_counter() - t)
            queries.append((i, e, fs))
    for k, v in distractors.items():
        queries.append((-1, f"distractor {k}", query_features(v)))
    return {"pool": pool, "names": names, "bank_sets": bank_sets, "queries": queries, "extract_s": extract_s,
            "source": source, "distractors": len(distractors), "pool_photos": len(pool_photos),
            "setup_s": round(time.perf_counter() - t0, 1)}


def write_bank(path: Path, n: int, rng: np.random.Generator, pool: np.ndarray, names: list,
               bank_sets: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """records (memmap at ``path``), counts, frames, ids of n synthetic images then the
    banked originals (ids 0..len(names)-1)."""
    from ncii_hash.features import MAX_FEATURES

    total = n + len(names)
    records = np.memmap(path, dtype=np.uint8, mode="w+", shape=(total, MAX_FEATURES, 38))
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        records[lo:hi] = synthetic_records(rng, pool, hi - lo)
    counts = np.full(total, MAX_FEATURES, np.uint16)
    frames = np.tile(np.array(FRAME, np.uint16), (total, 1))
    for i, k in enumerate(names):
        fs = bank_sets[k]
        records[n + i] = 0
        records[n + i, : len(fs)] = record_rows(fs)
        counts[n + i] = len(fs)
        frames[n + i] = (fs.width, fs.height)
    ids = np.concatenate([np.arange(SYNTHETIC_ID0, SYNTHETIC_ID0 + n, dtype=np.int64),
                          np.arange(len(names), dtype=np.int64)])
    records.flush()
    return records, counts, frames, ids


def run(ctx: harness.Context) -> None:
    import ncii_hash
    from ncii_hash.features import index as FI

    sizes = SIZES or ctx.pick(QUICK_SIZES, FULL_SIZES)
    rng = np.random.default_rng(ctx.seed)
    setup = prepare(ctx)
    pool, names, bank_sets, queries, extract_s = (setup[k] for k in ("pool", "names", "bank_sets", "queries",
                                                                       "extract_s"))
    record_timing(ctx, "query feature extraction (512 features)", extract_s)

    ctx.config.update(
        sizes=sizes, photos=setup["source"], banked=len(names), distractors=setup["distractors"],
        pool_photos=setup["pool_photos"], pool_records=int(len(pool)), pool_scales=list(POOL_SCALES),
        flip_probability=2.0 ** -FLIP_ANDS, frame=list(FRAME), edits=list(EDIT_NAMES),
        queries=len(queries), setup_s=setup["setup_s"],
        extract_ms={"p50": pct(extract_s, 50), "p95": pct(extract_s, 95)},
        knobs={k: getattr(FI, k) for k in ("TABLES", "MAX_KEY_BITS", "VOTE_DISTANCE", "MIN_SCORE", "CANDIDATES",
                                           "STOP_FACTOR")},
        table={})
    unusable = sum(1 for t, _, q in queries if t >= 0 and not any(s.usable for s in q))
    if unusable:
        ctx.note(f"{unusable} edited queries have too few features to match (count against recall)")

    work_root = Path(tempfile.mkdtemp(prefix="ncii-bench-features-", dir=WORKDIR))
    try:
        for n in sizes:
            row = measure_size(ctx, n, rng, pool, names, bank_sets, queries, work_root)
            if row is not None:
                ctx.config["table"][label(n)] = row
                print(markdown_table(ctx.config["table"]), flush=True)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / f"{NAME}.md").write_text(markdown_table(ctx.config["table"]) + "\n")
    ctx.config["ncii_hash_simd"] = ncii_hash.simd_level()


def time_queries(index, queries: list, threads: int) -> tuple[list[float], list[float], list[list]]:
    """Per query: seconds of the candidate stage alone, seconds of the full search, its hits."""
    cand_t, full_t, results = [], [], []
    for _, _, q in queries:
        cand_t.append(harness.time_call(partial(index.search, q, verify_candidates=False, threads=threads)))
        out: list = []
        full_t.append(harness.time_call(lambda q=q, out=out: out.extend(index.search(q, threads=threads))))
        results.append(out)
    return cand_t, full_t, results


def measure_size(ctx, n, rng, pool, names, bank_sets, queries, work_root) -> Optional[dict]:
    from ncii_hash.features.index import CANDIDATES, FeatureIndex
    from ncii_hash.features import MAX_FEATURES

    lab = label(n)
    total = n + len(names)
    # bytes needed while the tables are built: keys + postings in C++ and their numpy copy,
    # all uint32 per feature, plus the page cache the records are read through (not counted)
    need = total * MAX_FEATURES * 4 * 9 + (1 << 30)
    if available_bytes() < need:
        ctx.note(f"{lab}: skipped, building its tables needs ~{need / 2**30:.1f} GiB and only "
                 f"{available_bytes() / 2**30:.1f} GiB are available")
        return None
    row: dict = {"images": total, "synthetic": n, "originals": len(names)}
    path_rec = work_root / f"records-{n}.u8"
    t = time.perf_counter()
    records, counts, frames, ids = write_bank(path_rec, n, rng, pool, names, bank_sets)
    row["generate_s"] = round(time.perf_counter() - t, 1)

    gc.collect()
    rss0 = rss_bytes()
    t = time.perf_counter()
    index = FeatureIndex.from_arrays(records, counts, frames, ids)
    row["build_s"] = round(time.perf_counter() - t, 2)
    row["build_us_per_image"] = round(1e6 * row["build_s"] / total, 1)
    row["build_rss_gib"] = round((rss_bytes() - rss0) / 2**30, 2)
    path = work_root / f"index-{n}.fidx"
    t = time.perf_counter()
    index.save(path)
    row["save_s"] = round(time.perf_counter() - t, 1)
    del index, records
    gc.collect()
    path_rec.unlink()

    rss0 = rss_bytes()
    t = time.perf_counter()
    index = FeatureIndex.load(path, mmap=True)
    row["load_s"] = round(time.perf_counter() - t, 2)
    seg = index._segments[0]  # one segment: the bench reads its tables for the profile below
    disk = path.stat().st_size
    n_feat = int(seg.postings.shape[1])
    row["bytes_per_image"] = {
        "file": round(disk / total, 1), "records": seg.records.shape[1] * seg.records.shape[2],
        "postings": round(seg.postings.nbytes / total, 1), "offsets": round(seg.offsets.nbytes / total, 1),
        "ids_counts_frames": 8 + 2 + 4}
    row["features"] = n_feat
    prof = bucket_profile(seg, [q for _, _, q in queries])
    row["buckets"] = prof

    # candidate pass (also warms the page cache): recall and the candidate list lengths
    cand_hit, n_cands, true_scores, other_scores = [], [], [], []
    for tid, _, q in queries:
        hits = index.search(q, verify_candidates=False, threads=2)
        n_cands.append(len(hits))
        other_scores.append(max((h.score for h in hits if h.id != tid), default=0))
        if tid >= 0:
            cand_hit.append(any(h.id == tid for h in hits))
            true_scores.append(next((h.score for h in hits if h.id == tid), 0))
    edited = [(tid, e, q) for tid, e, q in queries if tid >= 0]
    row["candidate_recall"] = round(float(np.mean(cand_hit)), 3)
    row["candidates_per_query"] = {"mean": round(float(np.mean(n_cands)), 1), "max": int(np.max(n_cands)),
                                   "limit": CANDIDATES}
    # Hough scores: the true original's (0 when not a candidate) against the best other image's
    row["scores"] = {"true_p5": float(np.percentile(true_scores, 5)), "true_p50": float(np.median(true_scores)),
                     "best_other_p50": float(np.median(other_scores)),
                     "best_other_p95": float(np.percentile(other_scores, 95)), "best_other_max": max(other_scores)}

    # timed passes: candidates alone and the full search, 1 and 2 threads
    matched, false_synthetic, false_real, per_edit, false_list = [], 0, 0, {}, []
    for threads in (1, 2):
        cand_t, full_t, results = time_queries(index, queries, threads)
        if threads == 1:
            for (tid, e, _), out in zip(queries, results, strict=True):
                for h in out:
                    if h.id != tid:
                        false_synthetic += h.id >= SYNTHETIC_ID0
                        false_real += h.id < SYNTHETIC_ID0
                        false_list.append({"query": names[tid] if tid >= 0 else e, "edit": e,
                                           "matched": h.id, "inliers": h.inliers,
                                           "spread": round(h.match.spread, 3) if h.match else None})
                if tid >= 0:
                    ok = any(h.id == tid for h in out)
                    matched.append(ok)
                    per_edit.setdefault(e, []).append(ok)
        record_timing(ctx, f"{lab} candidates {threads}t", cand_t)
        record_timing(ctx, f"{lab} search {threads}t", full_t)
        row[f"candidates_ms_{threads}t"] = {"p50": pct(cand_t, 50), "p95": pct(cand_t, 95)}
        row[f"search_ms_{threads}t"] = {"p50": pct(full_t, 50), "p95": pct(full_t, 95)}
        verify_t = np.asarray(full_t) - np.asarray(cand_t)
        row[f"verify_ms_{threads}t"] = {"p50": pct(verify_t, 50), "p95": pct(verify_t, 95)}
    row["match_recall"] = round(float(np.mean(matched)), 3)
    row["match_recall_by_edit"] = {e: round(float(np.mean(v)), 3) for e, v in per_edit.items()}
    row["false_matches_synthetic"] = false_synthetic
    row["matches_to_other_originals"] = false_real  # distinct real photos (or a missed scene grouping)
    row["false_match_details"] = false_list[:20]
    row["edited_queries"] = len(edited)
    row["distractor_queries"] = len(queries) - len(edited)
    row["rss_after_queries_gib"] = round((rss_bytes() - rss0) / 2**30, 2)
    ctx.check(f"{lab}: no false matches against synthetic images", false_synthetic == 0,
              false_matches=false_synthetic)
    ctx.check(f"{lab}: no query matched another banked original", false_real == 0,
              matches=false_real, details=false_list[:5])
    target_ms = 100.0
    if n >= 1_000_000:
        p50 = row["search_ms_2t"]["p50"]
        ctx.check(f"{lab}: search p50 <= {target_ms:g} ms on 2 threads (issue #8; a timing, never a failure)",
                  True, met=p50 <= target_ms, p50_ms=p50, p95_ms=row["search_ms_2t"]["p95"])
    del index, seg
    gc.collect()
    path.unlink()
    return row


def markdown_table(table: dict) -> str:
    head = ["N (+ originals)", "search p50/p95 ms 1t", "search p50/p95 ms 2t", "candidates p50/p95 ms 2t",
            "postings read/query", "cand. recall", "match recall", "false (synthetic / other original)",
            "B/image (file)",
            "build us/image", "load s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lab, r in table.items():
        lines.append("| " + " | ".join(str(c) for c in [
            f"{lab} (+{r['originals']})",
            f"{r['search_ms_1t']['p50']} / {r['search_ms_1t']['p95']}",
            f"{r['search_ms_2t']['p50']} / {r['search_ms_2t']['p95']}",
            f"{r['candidates_ms_2t']['p50']} / {r['candidates_ms_2t']['p95']}",
            f"{r['buckets']['read_per_query_mean']:.0f}", r["candidate_recall"], r["match_recall"],
            f"{r['false_matches_synthetic']} / {r['matches_to_other_originals']}", r["bytes_per_image"]["file"], r["build_us_per_image"], r["load_s"]]) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    global SIZES, WORKDIR
    args = list(sys.argv[1:] if argv is None else argv)
    for flag in ("--sizes", "--workdir"):
        if flag in args:
            i = args.index(flag)
            if i + 1 >= len(args):
                print(f"{flag} needs a value", file=sys.stderr)
                return 2
            value = args[i + 1]
            del args[i:i + 2]
            if flag == "--sizes":
                SIZES = [int(float(x)) for x in value.split(",") if x]
            else:
                WORKDIR = Path(value)
    return harness.main(run, NAME, args)


if __name__ == "__main__":
    raise SystemExit(main())
