"""The pytx extension in process: ``ncii_hash.tx.NciiPdqIndex`` against python-threatexchange's
own PDQ indexes (``PDQIndex``: FAISS multi-index hashing, what HMA 2.0 runs; ``PDQIndex2``:
FAISS flat L2 over 256 floats per hash) on the same hashes in the same run.

Bank and queries: bench_match's PDQ-like codes (4096 centres, bits flipped w.p. 1/4, 20 %
uniform), as ``(hex, int)`` entries like HMA's (hash, bank content id); 1000 queries, half
planted near-duplicates (distance 0..31) of bank rows.

Reported per bank size: build time (``Index.build(entries)``), per-query time (``query(hex)``,
one call per query), the pickled size per hash and the unpickle time
(``SignalTypeIndex.deserialize``: what every HMA matcher does at start and on every index
change), matches found vs. ours and recall of the planted matches, and a check that ours equals
a NumPy brute force on the first queries. Our
multi-index backends (``HashIndex(backend="mih"|"auto")``) are measured too where this build has them. Sizes: quick 100k; full 1M and 10M. PDQIndex2 is
measured up to 1M only (it stores 1 KB of floats per hash: 10 GB at 10M).

    python -m benchmarks.bench_tx --quick --out bench-results
"""

from __future__ import annotations

import gc
import io
import os
import sys
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

try:
    from . import harness
    from .bench_match import N_CENTRES, make_bank, make_queries
except ImportError:  # run as a plain script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks import harness
    from benchmarks.bench_match import N_CENTRES, make_bank, make_queries

NAME = "tx"
THRESHOLD = 31
N_QUERIES = 1000
PDQINDEX2_MAX_BANK = 1_000_000
ORACLE_QUERIES = 20
QUERIES_PER_CALL = 20
MULTI_INDEX_BACKENDS = ("mih", "auto")
OURS, PYTX, PYTX2 = "NciiPdqIndex", "pytx PDQIndex", "pytx PDQIndex2"


def label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def query_loop(index: Any, hexes: Sequence[str]) -> Callable[[], object]:
    def call() -> object:
        for h in hexes:
            index.query(h)
        return None
    return call


def pickled(index: Any) -> bytes:
    buf = io.BytesIO()
    index.serialize(buf)
    return buf.getvalue()


def matches_of(index: Any, hexes: Sequence[str]) -> list[set]:
    return [{int(m.metadata) for m in index.query(h)} for h in hexes]


def numpy_matches(bank: np.ndarray, queries: np.ndarray) -> list[set]:
    out = []
    b64 = bank.view(np.uint64)
    for q in queries.view(np.uint64):
        x = b64 ^ q
        d = np.bitwise_count(x).sum(axis=1) if hasattr(np, "bitwise_count") else \
            np.unpackbits(x.view(np.uint8), axis=1).sum(axis=1)
        out.append(set(np.nonzero(d <= THRESHOLD)[0].tolist()))
    return out


def run(ctx: harness.Context) -> None:
    from ncii_hash import _core

    pytx = ctx.peer("threatexchange", dist="threatexchange")
    if pytx is None:
        ctx.note("threatexchange is not installed: nothing to compare (pip install 'ncii-hash[threatexchange]')")
        return
    ctx.peer("faiss", dist="faiss-cpu")
    from threatexchange.signal_type.index import SignalTypeIndex
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex

    from ncii_hash.index import backend_names
    from ncii_hash.tx import NciiPdqIndex
    try:
        from threatexchange.signal_type.pdq.pdq_index2 import PDQIndex2
    except ImportError:  # an older pytx
        PDQIndex2 = None
        ctx.note("this pytx has no PDQIndex2")

    sizes = ctx.pick([100_000], [1_000_000, 10_000_000])
    ctx.config.update(threshold=THRESHOLD, queries=N_QUERIES, sizes=sizes, simd=_core.simd_level(),
                      detected_simd=_core.detected_simd_level(), threatexchange=harness.package_version("threatexchange"),
                      seed=ctx.seed, table={})
    rng = np.random.default_rng(ctx.seed)
    centres = rng.integers(0, 256, (N_CENTRES, 32), dtype=np.uint8)

    for n in sizes:
        lab = label(n)
        row: dict = {}
        ctx.config["table"][lab] = row
        bank = make_bank(rng, n, centres)
        queries, planted = make_queries(rng, bank, centres, N_QUERIES)
        text = bank.tobytes().hex()  # HMA's entries: (hex, bank content id)
        entries = [(text[64 * i:64 * i + 64], i) for i in range(n)]
        del text
        qhex = [q.tobytes().hex() for q in queries]
        classes: dict = {OURS: NciiPdqIndex.build, PYTX: PDQIndex.build}
        for backend in MULTI_INDEX_BACKENDS:  # our multi-index backends, once HashIndex has them
            if backend in backend_names():
                classes[f"{OURS} {backend}"] = (lambda e, b=backend: NciiPdqIndex(e, backend=b))
        if PDQIndex2 is not None and n <= PDQINDEX2_MAX_BANK:
            classes[PYTX2] = PDQIndex2.build
        elif PDQIndex2 is not None:
            ctx.note(f"{lab}: PDQIndex2 not built (1 KB of float32 per hash: {n * 1024 / 1e9:.0f} GB)")

        # Build: Index.build(entries), the indexes kept for the query runs.
        indexes: dict = {}

        def builder(name: str, build: Callable[[list], Any]) -> Callable[[], object]:
            def call() -> object:
                indexes[name] = None  # the previous build (quick mode's second round) goes first
                indexes[name] = build(entries)
                return None
            return call

        bname = f"{lab} build"
        stats = ctx.compare(bname, {k: builder(k, c) for k, c in classes.items()}, items=n, per="hash",
                            repeats=ctx.pick(2, 1), warmup=0)
        for k, st in stats.items():
            row[k] = {"build_s": round(st.median, 3)}
        ratios(ctx, bname, indexes)

        # Correctness: ours equals brute force; what pytx finds of ours and of the planted matches.
        truth = numpy_matches(bank, queries[:ORACLE_QUERIES])
        ours = matches_of(indexes[OURS], qhex)
        ctx.check(f"{lab} {OURS} equals a NumPy brute force ({ORACLE_QUERIES} queries)", ours[:ORACLE_QUERIES] == truth)
        planted_rows = np.nonzero(planted >= 0)[0]
        nq_check = ctx.pick(N_QUERIES, 200)
        for name, ix in indexes.items():
            found = ours if name == OURS else matches_of(ix, qhex[:nq_check])
            total = sum(len(s) for s in ours[:nq_check])
            got = sum(len(found[i] & ours[i]) for i in range(nq_check))
            extra = sum(len(found[i] - ours[i]) for i in range(nq_check))
            rec = np.mean([int(planted[i]) in found[i] for i in planted_rows if i < nq_check])
            row[name].update(matches_found=got, matches_total=total, recall_planted=round(float(rec), 4))
            ctx.check(f"{lab} {name}: finds no match ours misses; share of ours found", extra == 0,
                      found=got, of=total, recall_planted=float(rec))

        # Per-query time: the same queries (half planted) through every index, interleaved.
        qname = f"{lab} query (one hash per call)"
        timed = {k: query_loop(ix, qhex[:QUERIES_PER_CALL]) for k, ix in indexes.items()}
        slow = PYTX2 in timed and n >= 1_000_000
        stats = ctx.compare(qname, timed, items=QUERIES_PER_CALL, per="query", repeats=2 if slow else 5, warmup=1)
        for k, st in stats.items():
            row[k]["query_ms"] = round(1e3 * st.median / QUERIES_PER_CALL, 4)
        ratios(ctx, qname, indexes)

        # Pickled size and unpickle (start) time.
        blobs = {}
        for name, ix in indexes.items():
            blobs[name] = pickled(ix)
            row[name]["pickle_bytes_per_hash"] = round(len(blobs[name]) / n, 1)
        del indexes
        gc.collect()
        uname = f"{lab} unpickle (SignalTypeIndex.deserialize)"
        loads = {k: (lambda b=b: SignalTypeIndex.deserialize(io.BytesIO(b))) for k, b in blobs.items()}
        stats = ctx.compare(uname, loads, items=1, per="index", repeats=ctx.pick(3, 2), warmup=0)
        for k, st in stats.items():
            row[k]["unpickle_s"] = round(st.median, 3)
        ratios(ctx, uname, blobs)

        print_table(lab, row, _core.simd_level())
        del blobs, entries, bank
        gc.collect()


def ratios(ctx: harness.Context, name: str, subjects: dict) -> None:
    for ours in (k for k in subjects if k.startswith(OURS)):
        for theirs in (PYTX, PYTX2):
            ctx.ratio(name, ours, theirs)


def print_table(lab: str, row: dict, simd: str) -> None:
    print(f"\n== bank {lab} (SIMD level {simd}) ==")
    head = ["index", "build s", "query ms", "pickle B/hash", "unpickle s", "matches found", "recall planted"]
    rows = [[k, r.get("build_s"), r.get("query_ms"), r.get("pickle_bytes_per_hash"), r.get("unpickle_s"),
             f"{r.get('matches_found')}/{r.get('matches_total')}", r.get("recall_planted")] for k, r in row.items()]
    print(harness.format_table(head, [[str(c) for c in x] for x in rows]))


def main(argv: Optional[Sequence[str]] = None) -> int:
    return harness.main(run, NAME, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
