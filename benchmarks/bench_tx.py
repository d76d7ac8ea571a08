"""The pytx extension in process: ``ncii_hash.tx.NciiPdqIndex`` against python-threatexchange's
own PDQ indexes (``PDQIndex``: FAISS multi-index hashing, what HMA 2.0 runs; ``PDQIndex2``:
FAISS flat L2 over 256 floats per hash) on the same hashes in the same run.

Bank and queries: bench_match's PDQ-like codes (4096 centres, bits flipped w.p. 1/4, 20 %
uniform), as ``(hex, int)`` entries like HMA's (hash, bank content id); 1000 queries, half
planted near-duplicates (distance 0..31) of bank rows.

Reported per bank size: build time (``Index.build(entries)``), per-query time (``query(hex)``,
one call per query), the pickled size per hash and the unpickle time
(``SignalTypeIndex.deserialize`` of a pickle file, page cache warm: what every HMA matcher does
at start and on every index change), matches found vs. ours and recall of the planted matches,
and a check that ours equals a NumPy brute force on the first queries. Ours is the default
backend (``"auto"``); ``"flat"`` and ``"mih"`` are measured too. Our build and unpickle times
run until the multi-index tables are built (lookups are exact before that, through the scan,
so a matcher could serve sooner). Indexes are
measured one after the other (build, check, query, pickle, unpickle, free), because at 10M
pytx's indexes and pickles take several GB each. Sizes: quick 100k; full 1M and 10M. PDQIndex2
is measured up to 1M only (it stores 1 KB of floats per hash: 10 GB at 10M).

    python -m benchmarks.bench_tx --quick --out bench-results
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
from typing import Any, Callable, Optional, Sequence

import numpy as np

try:
    from . import harness
    from .bench_match import N_CENTRES, label, make_bank, make_queries
except ImportError:  # run as a plain script
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks import harness
    from benchmarks.bench_match import N_CENTRES, label, make_bank, make_queries

NAME = "tx"
THRESHOLD = 31
N_QUERIES = 1000
PDQINDEX2_MAX_BANK = 1_000_000
ORACLE_QUERIES = 20
QUERIES_PER_CALL = 20
CHECKED_QUERIES = 200  #: queries whose matches are compared across the indexes
OTHER_BACKENDS = ("flat", "mih")  # ours by default is "auto"
OURS, PYTX, PYTX2 = "NciiPdqIndex", "pytx PDQIndex", "pytx PDQIndex2"


def query_loop(index: Any, hexes: Sequence[str]) -> Callable[[], object]:
    def call() -> object:
        for h in hexes:
            index.query(h)
        return None
    return call


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
        order = rng.permutation(N_QUERIES)  # planted and fresh queries mixed: any prefix has both
        queries, planted = queries[order], planted[order]
        text = bank.tobytes().hex()  # HMA's entries: (hex, bank content id)
        entries = [(text[64 * i:64 * i + 64], i) for i in range(n)]
        del text
        qhex = [q.tobytes().hex() for q in queries]
        classes: dict = {OURS: NciiPdqIndex.build, PYTX: PDQIndex.build}
        for backend in OTHER_BACKENDS:  # our other exact backends
            if backend in backend_names():
                classes[f"{OURS} {backend}"] = (lambda e, b=backend: NciiPdqIndex(e, backend=b))
        if PDQIndex2 is not None and n <= PDQINDEX2_MAX_BANK:
            classes[PYTX2] = PDQIndex2.build
        elif PDQIndex2 is not None:
            ctx.note(f"{lab}: PDQIndex2 not built (1 KB of float32 per hash: {n * 1024 / 1e9:.0f} GB)")

        # One index at a time (build, check, query, pickle, unpickle, free): at 10M hashes pytx's
        # indexes and their pickles take several GB each, more than a shared machine can hold at once.
        truth = numpy_matches(bank, queries[:ORACLE_QUERIES])
        ours: list = []
        bname, qname = f"{lab} build", f"{lab} query (one hash per call)"
        uname = f"{lab} unpickle (SignalTypeIndex.deserialize)"
        with tempfile.TemporaryDirectory() as tmp:
            for name, build in classes.items():
                row[name] = measure_index(ctx, name, build, entries, qhex, planted, ours, truth,
                                          os.path.join(tmp, "index.pickle"), (bname, qname, uname), n)
        for measurement in (bname, qname, uname):
            ratios(ctx, measurement, row)

        print_table(lab, row, _core.simd_level())
        del entries, bank
        gc.collect()


def measure_index(ctx: harness.Context, name: str, build: Callable[[list], Any], entries: list, qhex: list,
                  planted: np.ndarray, ours: list, truth: list, path: str, names: tuple, n: int) -> dict:
    """Build, check, query, pickle and unpickle one index; ``ours`` is filled by the first
    (our flat index) and is what the others are compared with."""
    from threatexchange.signal_type.index import SignalTypeIndex

    bname, qname, uname = names
    lab = bname.split()[0]
    out: dict = {}
    held: dict = {}

    def build_once() -> object:
        held.pop("index", None)  # the previous round's index goes first
        held["index"] = build(entries)
        wait = getattr(held["index"], "wait_for_backend", None)
        if wait is not None:  # ours: until the multi-index tables are built, not just usable
            wait()
        return None

    gc.collect()
    out["build_s"] = round(ctx.compare(bname, {name: build_once}, items=n, per="hash", repeats=1,
                                       warmup=0)[name].median, 3)  # one build: each is seconds to minutes
    index = held.pop("index")

    # Correctness: ours equals brute force; the others find nothing ours misses.
    found = matches_of(index, qhex[:CHECKED_QUERIES])
    if not ours:
        ours.extend(found)
        ctx.check(f"{lab} {name} equals a NumPy brute force ({ORACLE_QUERIES} queries)",
                  ours[:ORACLE_QUERIES] == truth)
    total = sum(len(s) for s in ours)
    got = sum(len(f & o) for f, o in zip(found, ours))
    extra = sum(len(f - o) for f, o in zip(found, ours))
    rows = [i for i in range(len(found)) if planted[i] >= 0]
    rec = float(np.mean([int(planted[i]) in found[i] for i in rows])) if rows else float("nan")
    out.update(matches_found=got, matches_total=total, recall_planted=round(rec, 4))
    ctx.check(f"{lab} {name}: finds no match ours misses; share of ours found", extra == 0, found=got, of=total,
              recall_planted=rec)

    # Per-query time (the same queries for every index; planted and fresh mixed).
    slow = name == PYTX2 and n >= 1_000_000
    st = ctx.compare(qname, {name: query_loop(index, qhex[:QUERIES_PER_CALL])}, items=QUERIES_PER_CALL,
                     per="query", repeats=2 if slow else 5, warmup=1)[name]
    out["query_ms"] = round(1e3 * st.median / QUERIES_PER_CALL, 4)

    # Pickle to a file (as HMA stores a large object), then time loading it back.
    with open(path, "wb") as f:
        index.serialize(f)
    out["pickle_bytes_per_hash"] = round(os.path.getsize(path) / n, 1)
    del index
    gc.collect()

    def load() -> object:
        with open(path, "rb") as f:
            loaded = SignalTypeIndex.deserialize(f)
        wait = getattr(loaded, "wait_for_backend", None)
        if wait is not None:  # ours answers at once (through the scan); timed until its tables are built
            wait()
        return loaded

    load()  # warm the page cache: the timing is the unpickle, not the disk
    out["unpickle_s"] = round(ctx.compare(uname, {name: load}, items=1, per="index", repeats=ctx.pick(3, 2),
                                          warmup=0)[name].median, 3)
    os.unlink(path)
    return out


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
