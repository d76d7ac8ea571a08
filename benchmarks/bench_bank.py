"""HashBank: import rate, open time (valid snapshot vs rebuild from the table), withdrawal
latency of one case in a large bank, and match throughput through the bank against the bare
HashIndex on the same hashes (the bank's overhead: change-sequence check and the table
re-check of every hit).

Full: 1M banked hashes (10M with --bank-10m); quick: 20k. 1,000 queries, half of them
planted near-duplicates (distance 0..31) of banked hashes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import harness

NAME = "bank"
HASHES_PER_CASE = 10


def _flip(codes: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = codes.copy()
    for row, n in zip(out, counts):
        for b in rng.choice(256, size=int(n), replace=False):
            row[b // 8] ^= np.uint8(1 << (b % 8))
    return out


def _write_csv(path: Path, codes: np.ndarray) -> None:
    with open(path, "w") as f:
        f.write("pdq,quality,case_id,kind\n")
        for i, h in enumerate(codes):
            f.write(f"{h.tobytes().hex()},90,c{i // HASHES_PER_CASE},image\n")


def run(ctx: harness.Context) -> None:
    from ncii_hash import HashIndex
    from ncii_hash.bank import HashBank

    big = os.environ.get("NCII_HASH_BENCH_10M") == "1"
    n = ctx.pick(20_000, 10_000_000 if big else 1_000_000)
    nq = 1000
    rng = np.random.default_rng(ctx.seed)
    # clustered like real PDQ: a few thousand centres, ~25% of bits flipped
    centres = rng.integers(0, 256, size=(2000, 32), dtype=np.uint8)
    codes = np.empty((n, 32), dtype=np.uint8)
    for start in range(0, n, 1_000_000):  # in chunks: a 10M x 256 bool array would be 2.5 GB
        m = min(1_000_000, n - start)
        bits = rng.random((m, 256)) < 0.25
        codes[start:start + m] = centres[rng.integers(0, 2000, size=m)] ^ np.packbits(bits, axis=1)
    planted_src = rng.integers(0, n, size=nq // 2)
    queries = np.concatenate([
        _flip(codes[planted_src], rng.integers(0, 32, size=nq // 2), rng),
        rng.integers(0, 256, size=(nq - nq // 2, 32), dtype=np.uint8),
    ])
    ctx.config.update(bank_hashes=n, hashes_per_case=HASHES_PER_CASE, queries=nq, planted=nq // 2,
                      radius=31, seed=ctx.seed)

    work = Path(tempfile.mkdtemp(prefix="ncii-bench-bank-"))
    try:
        csv_path = work / "bank.csv"
        _write_csv(csv_path, codes)
        counter = iter(range(10**9))

        def import_fresh() -> None:
            k = next(counter)
            path = work / f"import-{k}.db"
            with HashBank(path, snapshot=False) as bank:
                bank.import_(csv_path)
            for p in work.glob(f"import-{k}.db*"):
                p.unlink()

        ctx.compare("import/csv", {"HashBank.import_": import_fresh}, items=n, per="hash",
                    repeats=ctx.pick(2, 1), warmup=0)

        main_path = work / "main.db"
        bank = HashBank(main_path)
        bank.import_(csv_path)
        small_cases = [bank.add_case(rng.integers(0, 256, size=(HASHES_PER_CASE, 32), dtype=np.uint8))
                       for _ in range(40)]
        bank.close()  # saves the snapshot

        def open_with_snapshot() -> None:
            b = HashBank(main_path)
            assert b.index_source == "snapshot"
            b.close(save_snapshot=False)

        def open_rebuild() -> None:
            b = HashBank(main_path, snapshot=False)
            b.close(save_snapshot=False)

        ctx.compare("open", {"snapshot": open_with_snapshot, "rebuild from table": open_rebuild},
                    items=1, per="open", repeats=ctx.pick(3, 3))
        ctx.ratio("open", "snapshot", "rebuild from table")

        bank = HashBank(main_path)
        pending = list(small_cases)

        def withdraw_one() -> None:
            bank.withdraw(pending.pop())

        ctx.compare("withdraw/one case", {"HashBank.withdraw": withdraw_one}, items=1, per="case",
                    repeats=ctx.pick(5, 15))

        index = HashIndex()
        index.add(codes)
        ctx.compare("match/r31", {
            "HashBank.match": lambda: bank.match(queries, 31, dihedral=False),
            "HashIndex.range_search": lambda: index.range_search(queries, 31),
        }, items=nq, per="query")
        ctx.ratio("match/r31", "HashBank.match", "HashIndex.range_search", label="match/r31 bank vs bare index")
        found = {m.query for m in bank.match(queries, 31, dihedral=False)}
        ctx.check("every planted near-duplicate found through the bank",
                  all(i in found for i in range(nq // 2)), found=len(found))
        st = bank.stats()
        ctx.config.update(bank_file_bytes=st.file_bytes, bytes_per_hash_on_disk=round(st.file_bytes / max(st.hashes, 1), 1))
        bank.close(save_snapshot=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--bank-10m" in args:
        args.remove("--bank-10m")
        os.environ["NCII_HASH_BENCH_10M"] = "1"
    return harness.main(run, NAME, args)


if __name__ == "__main__":
    raise SystemExit(main())
