"""Matching speed: exact range search (r = 31) over banks of PDQ-like codes, every backend side
by side in the same run.

Bank: codes that mimic PDQ (4096 cluster centres, each code its centre with every bit flipped
with probability 1/4) plus 20 % uniform codes. Queries: 1000, half of them planted
near-duplicates of bank rows (distance 0..31, uniform), half fresh codes from the same
distribution. Dihedral query sets are synthetic: 8 fixed bit permutations of a code, the
planted one at a random variant.

Reported per bank size: build time, bytes per hash (RSS delta of the build), batch queries/s
at 1 and 2 threads, single-query latency p50/p99, recall of the planted matches, agreement
of the exact backends with "flat", the sequential read bandwidth of this machine over the
bank (measured in the same run), and the single-query bound it implies (bank bytes /
bandwidth). Sizes: quick 100k; full 1M and 10M; ``--bank-100m`` (or NCII_HASH_BENCH_100M=1)
adds 100M (flat only, ~4 GB). faiss-hnsw is built up to 1M only (its build is far too slow
beyond on a small machine: noted in the output).

    python -m benchmarks.bench_match --quick --out bench-results
    python -m benchmarks.bench_match --backends=flat,auto,mih --out bench-results   # no FAISS builds
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Callable, Optional, Sequence

import numpy as np

try:
    from . import harness
except ImportError:  # run as a plain script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks import harness

NAME = "match"
RADIUS = 31
N_QUERIES = 1000
N_CENTRES = 4096
UNIFORM_FRACTION = 0.2
HNSW_MAX_BANK = 1_000_000
NUMPY_MAX_BANK = 1_000_000
EXACT = ("flat", "mih", "auto", "faiss-flat", "faiss-mih")
PYTX_MAX_BANK = 10_000_000  # pytx's PDQIndex is built from hex strings: ~2 GB of Python objects at 10M
PHOTO_EDITS = ("jpeg_q50", "resize_0.25", "messaging_1280_q80", "contrast_0.7", "blur_r2", "noise_s10", "rot90")
WITH_100M = os.environ.get("NCII_HASH_BENCH_100M") == "1"
ONLY_BACKENDS: Optional[tuple] = None  # --backends=a,b: measure only these (flat always)


# ---- data ---------------------------------------------------------------------------------
def make_bank(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    out = np.empty((n, 32), dtype=np.uint8)
    step = 1 << 20
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        m = hi - lo
        noise = rng.integers(0, 256, (m, 32), dtype=np.uint8) & rng.integers(0, 256, (m, 32), dtype=np.uint8)
        block = centres[rng.integers(0, len(centres), m)] ^ noise  # each bit flipped w.p. 1/4
        uniform = rng.random(m) < UNIFORM_FRACTION
        block[uniform] = rng.integers(0, 256, (int(uniform.sum()), 32), dtype=np.uint8)
        out[lo:hi] = block
    return out


def flip_bits(rng: np.random.Generator, code: np.ndarray, d: int) -> np.ndarray:
    bits = np.unpackbits(code)
    bits[rng.choice(256, size=d, replace=False)] ^= 1
    return np.packbits(bits)


def make_queries(rng: np.random.Generator, bank: np.ndarray, centres: np.ndarray, nq: int):
    """(queries, planted row per query or -1)."""
    planted = np.full(nq, -1, dtype=np.int64)
    planted[: nq // 2] = rng.integers(0, len(bank), nq // 2)
    fresh = make_bank(rng, nq, centres)
    queries = np.stack([
        flip_bits(rng, bank[r], int(rng.integers(0, RADIUS + 1))) if r >= 0 else fresh[i]
        for i, r in enumerate(planted)
    ])
    return queries, planted


def dihedral_sets(rng: np.random.Generator, queries: np.ndarray) -> np.ndarray:
    perms = [np.arange(256)] + [np.random.default_rng(1000 + v).permutation(256) for v in range(1, 8)]
    inverse = [np.argsort(p) for p in perms]
    bits = np.unpackbits(queries, axis=1)
    sets = np.empty((len(queries), 8, 32), dtype=np.uint8)
    for i, j in enumerate(rng.integers(0, 8, len(queries))):
        base = bits[i][inverse[j]]  # so that variant j is the query itself
        for v in range(8):
            sets[i, v] = np.packbits(base[perms[v]])
    return sets


# ---- helpers ------------------------------------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def recall(result, planted: np.ndarray) -> float:
    rows = np.nonzero(planted >= 0)[0]
    found = sum(int(planted[q]) in set(result.ids[result.lims[q]:result.lims[q + 1]].tolist()) for q in rows)
    return found / max(1, len(rows))


def numpy_range(bank64: np.ndarray, queries: np.ndarray) -> list:
    q64 = queries.view(np.uint64)
    out = []
    for q in q64:
        d = np.bitwise_count(bank64 ^ q).sum(axis=1, dtype=np.int32)
        out.append(np.nonzero(d <= RADIUS)[0])
    return out


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def cycling(fn: Callable[[np.ndarray], object], queries: np.ndarray) -> Callable[[], object]:
    state = {"i": 0}

    def call() -> object:
        i = state["i"] = (state["i"] + 1) % len(queries)
        return fn(queries[i : i + 1])

    return call


# ---- the benchmark ------------------------------------------------------------------------
def run(ctx: harness.Context) -> None:
    import ncii_hash
    from ncii_hash import HashIndex, _core

    faiss = ctx.peer("faiss", dist="faiss-cpu")
    sizes = ctx.pick([100_000], [1_000_000, 10_000_000] + ([100_000_000] if WITH_100M else []))
    threads_list = (1, 2)
    ctx.config.update(radius=RADIUS, queries=N_QUERIES, centres=N_CENTRES, uniform_fraction=UNIFORM_FRACTION,
                      sizes=sizes, threads=list(threads_list), simd=_core.simd_level(), seed=ctx.seed,
                      table={})
    rng = np.random.default_rng(ctx.seed)
    centres = rng.integers(0, 256, (N_CENTRES, 32), dtype=np.uint8)
    photo_codes, photo_queries = photo_hashes(ctx)
    ctx.config.update(photos=len(photo_codes), photo_queries=len(photo_queries), photo_edits=list(PHOTO_EDITS))

    for n in sizes:
        lab = label(n)
        row: dict = {}
        ctx.config["table"][lab] = row
        bank = make_bank(rng, n, centres)
        queries, planted = make_queries(rng, bank, centres, N_QUERIES)
        sets = dihedral_sets(rng, queries)

        plant_photos(ctx, bank, photo_codes)
        backends = ["flat", "mih", "auto"] if n <= 10_000_000 else ["flat", "auto"]
        if faiss is not None and n <= 10_000_000:
            backends += ["faiss-flat", "faiss-mih", "faiss-ivf"] + (["faiss-hnsw"] if n <= HNSW_MAX_BANK else [])
            if n > HNSW_MAX_BANK:
                ctx.note(f"{lab}: faiss-hnsw not built (build time grows far beyond the others on 2 cores)")
        if ONLY_BACKENDS is not None:
            backends = [b for b in backends if b == "flat" or b in ONLY_BACKENDS]
            ctx.note(f"{lab}: backends limited to {', '.join(backends)} (--backends)")
        indexes = {}
        for b in backends:
            gc.collect()
            before = rss_bytes()
            t0 = time.perf_counter()
            ix = HashIndex(b, ivf_nlist=min(1024, max(1, int(np.sqrt(n)))))
            ix.add(bank)
            ix.wait_for_backend()  # mih/auto build their tables in the background above 256k rows
            build = time.perf_counter() - t0
            indexes[b] = ix
            row[b] = {"build_s": round(build, 3), "bytes_per_hash": round((rss_bytes() - before) / n, 2)}
            tables = ix.backend_stats()
            if tables.get("table_bytes"):
                # Steady state: codes + ids (40 B) + tables; a rebuild holds two sets of tables.
                row[b].update(substrings=tables["substrings"], table_bytes_per_hash=round(tables["table_bytes"] / n, 1),
                              peak_bytes_per_hash_rebuild=round(40 + 2 * tables["table_bytes"] / n, 1))

        # Bandwidth over the bank itself, and the single-query bound it implies.
        bw = {}
        for t in threads_list:
            _core.xor_fold(bank, t)
            best = min(harness.time_call(lambda: _core.xor_fold(bank, t)) for _ in range(3))
            bw[t] = bank.nbytes / best
        row["bandwidth_GBps"] = {t: round(v / 1e9, 2) for t, v in bw.items()}
        row["single_query_bound_ms"] = {t: round(1e3 * bank.nbytes / v, 3) for t, v in bw.items()}

        # Correctness: recall of planted matches; exact backends agree with flat.
        ref = indexes["flat"].range_search(queries, RADIUS, threads=2)
        for b, ix in indexes.items():
            res = ix.range_search(queries, RADIUS, threads=2) if b != "flat" else ref
            r = recall(res, planted)
            row[b]["recall"] = r
            if b in EXACT:
                same = np.array_equal(res.lims, ref.lims) and np.array_equal(res.ids, ref.ids)
                ctx.check(f"{lab} {b}: recall of planted matches is 1 and results equal flat", r == 1.0 and same,
                          recall=r, matches=int(res.num_matches))
            else:
                ctx.check(f"{lab} {b} (approximate): recall measured", True, recall=r)
        dref = indexes["flat"].range_search(sets, RADIUS, dihedral=True, threads=2)
        ctx.check(f"{lab} flat dihedral: recall of planted matches", recall(dref, planted) == 1.0,
                  recall=recall(dref, planted))

        # Batch throughput, interleaved, 1 and 2 threads.
        reps = 3 if n <= 1_000_000 else 2
        for t in threads_list:
            name = f"{lab} batch r={RADIUS} {t}t"
            cases = {b: (lambda ix=ix, t=t: ix.range_search(queries, RADIUS, threads=t)) for b, ix in indexes.items()}
            stats = ctx.compare(name, cases, items=N_QUERIES, per="query", repeats=reps,
                                warmup=1 if n <= 1_000_000 else 0)
            for b, s in stats.items():
                row[b][f"batch_qps_{t}t"] = round(N_QUERIES / s.median, 1)
            ctx.ratio(name, "flat", "faiss-flat", target=5.0 if n >= 10_000_000 else None)
            ctx.ratio(name, "flat", "faiss-mih", target=8.0 if n >= 10_000_000 else None)
            ctx.ratio(name, "flat", "faiss-ivf")
            ctx.ratio(name, "flat", "faiss-hnsw")
            ctx.ratio(name, "auto", "flat")  # "auto" may become the default only if never slower

        if n <= NUMPY_MAX_BANK and hasattr(np, "bitwise_count"):
            few = queries[:20]
            bank64 = bank.view(np.uint64)
            name = f"{lab} batch r={RADIUS} 20 queries vs numpy"
            ctx.compare(name, {"flat": lambda: indexes["flat"].range_search(few, RADIUS, threads=1),
                               "numpy": lambda: numpy_range(bank64, few)}, items=len(few), per="query",
                        repeats=3)
            ctx.ratio(name, "flat", "numpy")

        # Dihedral batch (8 variants per query), flat at 1 and 2 threads.
        for t in threads_list:
            name = f"{lab} dihedral r={RADIUS} {t}t"
            s = ctx.compare(name, {"flat": lambda t=t: indexes["flat"].range_search(sets, RADIUS, dihedral=True,
                                                                                      threads=t)},
                            items=N_QUERIES, per="dihedral query", repeats=reps, warmup=1)
            row["flat"][f"dihedral_qps_{t}t"] = round(N_QUERIES / s["flat"].median, 1)

        # Single-query latency (one query per call, cycling through the planted-or-not queries).
        nsingle = ctx.pick(100, 200 if n <= 1_000_000 else 60)
        for t in threads_list:
            name = f"{lab} single query {t}t"
            cases = {b: cycling(lambda q, ix=ix, t=t: ix.range_search(q, RADIUS, threads=t), queries)
                     for b, ix in indexes.items() if b == "flat" or t == 1 or b != "faiss-flat"}
            stats = ctx.compare(name, cases, items=1, per="query", repeats=nsingle, warmup=2)
            for m in ctx.measurements:
                if m["name"] == name:
                    sm = np.array(m["samples"]) * 1e3
                    row[m["subject"]][f"latency_ms_{t}t"] = {"p50": round(float(np.percentile(sm, 50)), 3),
                                                            "p99": round(float(np.percentile(sm, 99)), 3)}
            ctx.ratio(name, "flat", "faiss-mih")
            ctx.ratio(name, "auto", "flat", target=20.0 if n >= 10_000_000 else None)
            ctx.ratio(name, "auto", "faiss-mih", target=10.0 if n >= 10_000_000 else 3.0 if n >= 1_000_000 else None)
        single_lookup_rows(ctx, lab, n, bank, queries, sets, indexes, row, photo_codes, photo_queries)

        print_table(lab, row)
        del indexes, bank
        gc.collect()
    ctx.config["ncii_hash_simd"] = ncii_hash.simd_level()
    plot_growth(ctx)


# ---- single lookups: the multi-index backends against the scan and pytx ------------------------
def photo_hashes(ctx: harness.Context) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """PDQ hashes of the photo dataset (planted in every bank) and of edited copies of them
    ((photo number, hash) queries), from bench_quality's photo loader (generated images in
    quick mode)."""
    from PIL import Image

    from benchmarks.bench_quality import load_photos
    from benchmarks.edits import EDITS
    from ncii_hash import pdq_hash

    pixels = load_photos(ctx)[0]
    rng = np.random.default_rng(ctx.seed + 1)
    codes, queries = [], []
    for i, px in enumerate(pixels):
        codes.append(np.frombuffer(pdq_hash(px).hash, dtype=np.uint8))
        im = Image.fromarray(px)
        for name in PHOTO_EDITS:
            edited = np.asarray(EDITS[name][1](im, rng).convert("RGB"))
            queries.append((i, np.frombuffer(pdq_hash(edited).hash, dtype=np.uint8)))
    return np.array(codes, dtype=np.uint8).reshape(-1, 32), queries


def plant_photos(ctx: harness.Context, bank: np.ndarray, photo_codes: np.ndarray) -> None:
    """Write the photo hashes over evenly spaced bank rows (row i * step holds photo i)."""
    step = bank.shape[0] // max(1, len(photo_codes))
    bank[: step * len(photo_codes) : step] = photo_codes


def single_lookup_rows(ctx: harness.Context, lab: str, n: int, bank: np.ndarray, queries: np.ndarray,
                       sets: np.ndarray, indexes: dict, row: dict, photo_codes: np.ndarray,
                       photo_queries: list) -> None:
    """Photo queries (exactness and latency), dihedral single lookups, two client threads,
    pytx's PDQIndex, and which queries "auto" sent to the scan."""
    import threading

    step = n // max(1, len(photo_codes))
    pq = np.array([q for _, q in photo_queries], dtype=np.uint8).reshape(-1, 32)
    want = np.array([i * step for i, _ in photo_queries], dtype=np.int64)
    ref = indexes["flat"].range_search(pq, RADIUS)
    found = sum(int(w) in set(ref.ids[ref.lims[k]:ref.lims[k + 1]].tolist()) for k, w in enumerate(want))
    row["photo_edit_recall"] = round(found / max(1, len(want)), 3)
    for b in ("mih", "auto"):
        if b in indexes:
            got = indexes[b].range_search(pq, RADIUS)
            ctx.check(f"{lab} {b}: photo-edit queries give exactly flat's results",
                      np.array_equal(got.lims, ref.lims) and np.array_equal(got.ids, ref.ids), queries=len(pq),
                      matches=int(ref.num_matches), recall_of_the_original=row["photo_edit_recall"])
    nsingle = ctx.pick(100, 300)
    subjects = [b for b in ("flat", "mih", "auto", "faiss-mih") if b in indexes]
    name = f"{lab} photo-edit single query 1t"
    ctx.compare(name, {b: cycling(lambda q, ix=indexes[b]: ix.range_search(q, RADIUS, threads=1), pq)
                       for b in subjects}, items=1, per="query", repeats=nsingle, warmup=2)
    ctx.ratio(name, "auto", "flat")
    ctx.ratio(name, "auto", "faiss-mih")

    # Dihedral single lookups (8 variants each).
    name = f"{lab} dihedral single query 1t"
    stats = ctx.compare(name, {b: cycling(lambda q, ix=indexes[b]: ix.range_search(q, RADIUS, dihedral=True, threads=1),
                                          sets) for b in ("flat", "auto") if b in indexes},
                        items=1, per="dihedral query", repeats=ctx.pick(30, 100), warmup=1)
    for b, st in stats.items():
        row[b]["dihedral_single_p50_ms"] = round(st.median * 1e3, 3)
    ctx.ratio(name, "auto", "flat", target=None)

    # Two client threads doing single lookups at once (what a matching service sees).
    per_thread = ctx.pick(100, 400)

    def two_clients(ix) -> Callable[[], object]:
        def call() -> object:
            def worker(offset: int) -> None:
                for i in range(per_thread):
                    k = (offset + i) % len(queries)
                    ix.range_search(queries[k:k + 1], RADIUS, threads=1)
            ts = [threading.Thread(target=worker, args=(o,)) for o in (0, len(queries) // 2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            return None
        return call

    name = f"{lab} single lookups, 2 client threads"
    stats = ctx.compare(name, {b: two_clients(indexes[b]) for b in ("flat", "auto", "mih") if b in indexes},
                        items=2 * per_thread, per="query", repeats=ctx.pick(3, 5), warmup=1)
    for b, st in stats.items():
        row[b]["lookups_per_s_2_clients"] = round(2 * per_thread / st.median, 1)
    ctx.ratio(name, "auto", "flat")

    # pytx's own PDQIndex (FAISS multi-hash, 16 tables, nflip 1), one hex query per call.
    pdq_index = ctx.peer("threatexchange.signal_type.pdq.pdq_index", dist="threatexchange")
    if pdq_index is not None and n <= PYTX_MAX_BANK:
        t0 = time.perf_counter()
        pytx = pdq_index.PDQIndex([(code.tobytes().hex(), i) for i, code in enumerate(bank)])
        row["pytx-PDQIndex"] = {"build_s": round(time.perf_counter() - t0, 1)}
        hexes = [q.tobytes().hex() for q in queries]
        state = {"i": 0}

        def pytx_query() -> object:
            state["i"] = (state["i"] + 1) % len(hexes)
            return pytx.query(hexes[state["i"]])

        name = f"{lab} single query 1t vs pytx"
        stats = ctx.compare(name, {"auto": cycling(lambda q: indexes["auto"].range_search(q, RADIUS, threads=1), queries),
                                   "pytx-PDQIndex": pytx_query}, items=1, per="query",
                            repeats=ctx.pick(100, 300), warmup=2)
        row["pytx-PDQIndex"]["p50_ms"] = round(stats["pytx-PDQIndex"].median * 1e3, 3)
        ctx.ratio(name, "auto", "pytx-PDQIndex", target=10.0 if n >= 10_000_000 else 3.0 if n >= 1_000_000 else None)
        del pytx
    elif n > PYTX_MAX_BANK:
        ctx.note(f"{lab}: pytx's PDQIndex not built (hex strings for every hash: beyond this machine's patience)")

    for b in ("mih", "auto"):
        if b in indexes:
            st = indexes[b].backend_stats()
            row[b]["routing"] = {k: st[k] for k in ("queries", "scanned", "probes", "candidates", "substrings")}
            ctx.note(f"{lab} {b}: {st['scanned']} of {st['queries']} queries went to the scan; "
                     f"{st['candidates'] / max(1, st['queries'] - st['scanned']):.0f} candidates and "
                     f"{st['probes'] / max(1, st['queries'] - st['scanned']):.0f} bucket probes per probed query "
                     f"({st['substrings']} substrings {st['widths']})")


def plot_growth(ctx: harness.Context) -> None:
    table = ctx.config["table"]
    labs = list(table)
    series = {}
    for b in ("flat", "auto", "mih", "faiss-mih"):
        vals = [table[lab].get(b, {}).get("latency_ms_1t", {}).get("p50") for lab in labs]
        if any(v is not None for v in vals):
            series[b] = vals
    if ctx.out is not None and series:
        ctx.plot_bars("match_single_lookup.png", "single lookup p50 (ms, log) by bank size", labs, series,
                      ylabel="ms", log=True)


def print_table(lab: str, row: dict) -> None:
    keys = [k for k in row if isinstance(row[k], dict) and "bytes_per_hash" in row[k]]
    print(f"\n== bank {lab}: bandwidth {row['bandwidth_GBps']} GB/s -> single-query bound "
          f"{row['single_query_bound_ms']} ms")
    head = ["backend", "build s", "B/hash", "recall", "q/s 1t", "q/s 2t", "p50 ms 1t", "p99 ms 1t", "p50 ms 2t",
            "dihedral q/s 2t"]
    rows = []
    for b in keys:
        r = row[b]
        lat1, lat2 = r.get("latency_ms_1t", {}), r.get("latency_ms_2t", {})
        rows.append([b, r["build_s"], r["bytes_per_hash"], r.get("recall"), r.get("batch_qps_1t"),
                     r.get("batch_qps_2t"), lat1.get("p50"), lat1.get("p99"), lat2.get("p50"),
                     r.get("dihedral_qps_2t", "")])
    print(harness.format_table(head, [[str(c) for c in x] for x in rows]))


def main(argv: Optional[Sequence[str]] = None) -> int:
    global WITH_100M, ONLY_BACKENDS
    args = list(sys.argv[1:] if argv is None else argv)
    if "--bank-100m" in args:
        args.remove("--bank-100m")
        WITH_100M = True
    for a in list(args):
        if a.startswith("--backends="):  # e.g. --backends=flat,auto: a shorter run (FAISS builds dominate)
            args.remove(a)
            ONLY_BACKENDS = tuple(b for b in a.split("=", 1)[1].split(",") if b)
    return harness.main(run, NAME, args)


if __name__ == "__main__":
    raise SystemExit(main())
