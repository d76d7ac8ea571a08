"""Sharded range search on a local Ray: ShardedIndex with 1 and 2 shards against one
in-process HashIndex, same bank, same queries, radius 31.

Each shard actor searches with one thread (and reserves half a CPU, so that the 1- and 2-shard
indexes are alive together on a 2-core machine and timed interleaved), so ``sharded-1`` against
``HashIndex 1 thread`` is the pure cost of Ray (object store put, actor call, result
transfer, merge), and ``sharded-2`` against ``HashIndex 2 threads`` compares the same two
cores used by two actors or by one process. Check: the sharded CSR arrays equal the
single index's. Without Ray (``pip install 'ncii-hash[distributed]'``) it reports skipped.
"""

from __future__ import annotations

import numpy as np

from benchmarks import harness

NAME = "distributed"


def run(ctx: harness.Context) -> None:
    ray = ctx.peer("ray", dist="'ncii-hash[distributed]'")
    if ray is None:
        ctx.note("Ray is not installed (pip install 'ncii-hash[distributed]'): nothing measured")
        return
    from ncii_hash import HashIndex
    from ncii_hash.scale.sharded import ShardedIndex

    n, nq = ctx.pick(quick=100_000, full=2_000_000), ctx.pick(quick=200, full=2000)
    rng = np.random.default_rng(ctx.seed)
    bank = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    ids = np.arange(n, dtype=np.int64)
    # half the queries are near-copies of banked hashes (a few bits flipped), so merges carry hits
    queries = bank[rng.choice(n, nq, replace=False)].copy()
    queries[: nq // 2, 0] ^= 0x0F
    queries[nq // 2 :] = rng.integers(0, 256, size=(nq - nq // 2, 32), dtype=np.uint8)
    ctx.config.update(bank_size=n, queries=nq, radius=31, seed=ctx.seed,
                      shard_actor={"num_cpus": 0.5, "threads": 1}, ray=ray.__version__)

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, object_store_memory=300 * 1024 * 1024, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    single = HashIndex()
    single.add(bank, ids)
    sharded = {k: ShardedIndex(shards=k, actor_options={"num_cpus": 0.5}, threads=1) for k in (1, 2)}
    try:
        for s in sharded.values():
            s.add(bank, ids)
        expected = single.range_search(queries, 31, threads=1)
        for k, s in sharded.items():
            got = s.range_search(queries, 31)
            same = all(np.array_equal(a, b) for a, b in ((got.lims, expected.lims), (got.ids, expected.ids),
                                                         (got.distances, expected.distances)))
            ctx.check(f"sharded-{k} equals HashIndex", same, matches=int(got.num_matches))
        cases = {
            "HashIndex 1 thread": lambda: single.range_search(queries, 31, threads=1),
            "HashIndex 2 threads": lambda: single.range_search(queries, 31, threads=2),
            "sharded-1": lambda: sharded[1].range_search(queries, 31),
            "sharded-2": lambda: sharded[2].range_search(queries, 31),
        }
        name = f"range_search/r31/{n}"
        ctx.compare(name, cases, items=nq, per="query")
        ctx.ratio(name, "sharded-1", "HashIndex 1 thread", label="sharded-1 vs HashIndex (1 core): Ray overhead")
        ctx.ratio(name, "sharded-2", "HashIndex 2 threads", label="sharded-2 vs HashIndex (2 cores)")
        ctx.ratio(name, "sharded-2", "sharded-1", label="sharded-2 vs sharded-1")
        ctx.note("speed-up < 1 against HashIndex is the cost of fanning out through Ray on one machine; "
                 "shards pay off when the bank does not fit one machine (docs/scale.md)")
    finally:
        for s in sharded.values():
            s.close()
        if started:
            ray.shutdown()


def main(argv=None) -> int:
    return harness.main(run, NAME, argv)


if __name__ == "__main__":
    raise SystemExit(main())
