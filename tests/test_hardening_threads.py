"""Hardening (issue 9), thread-safety stress: searches during adds and removes are serializable,
bank readers on other threads during writes, bounded k-NN. See docs/hardening.md."""

from __future__ import annotations

import itertools
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from ncii_hash.bank import HashBank
from ncii_hash.index import HashIndex

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))

from hardening_helpers import RNG_SEED, codes as _codes, photo as _photo, run_cli as _run_cli  # noqa: F401


# ============================================================ thread-safety stress
def test_concurrent_searches_during_add_and_remove_are_serializable():
    """Searches on 4 threads while a writer adds and removes. Every op is stamped from one
    counter before and after it runs. An id may appear in a search only if its add started
    before the search ended and its removal (if any) did not end before the search started;
    an id added before the search started and not touched by a removal until it ended must
    appear, with the right distance. The index starts with 2000 entries."""
    index = HashIndex(compact_fraction=0.25)
    n_total = 6000
    codes = _codes(n_total, 21)
    clock = itertools.count()
    added: dict = {}
    removed: dict = {}
    initial = 2000
    index.add(codes[:initial], np.arange(initial))
    for i in range(initial):
        added[i] = (-2, -1)  # before every search
    query = _codes(1, 99)
    true_dist = np.unpackbits(np.bitwise_xor(codes, query), axis=1).sum(axis=1)
    radius = 128  # about half the bank is in range at any time
    stop = threading.Event()
    errors: list = []
    checked = [0]

    def writer():
        rng = np.random.default_rng(RNG_SEED)
        nxt = initial
        try:
            while nxt < n_total:
                k = int(rng.integers(1, 60))
                ids = np.arange(nxt, min(nxt + k, n_total))
                t0 = next(clock)
                for i in ids:  # stamped before the call, so no search can see it unannounced
                    added[int(i)] = (t0, None)
                index.add(codes[ids], ids)
                t1 = next(clock)
                for i in ids:
                    added[int(i)] = (t0, t1)
                nxt = int(ids[-1]) + 1
                live = [i for i in list(added) if i not in removed]
                victims = rng.choice(live, size=min(len(live), int(rng.integers(1, 50))), replace=False)
                t0 = next(clock)
                for i in victims:
                    removed[int(i)] = (t0, None)
                index.remove(victims)
                t1 = next(clock)
                for i in victims:
                    removed[int(i)] = (t0, t1)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    def searcher():
        try:
            while not stop.is_set():
                snapshot_added = dict(added)
                start = next(clock)
                res = index.range_search(query, radius, threads=2)
                end = next(clock)
                got = dict(zip(res.ids.tolist(), res.distances.tolist()))
                after_added, after_removed = dict(added), dict(removed)
                for i, d in got.items():
                    if d != true_dist[i]:
                        raise AssertionError(f"id {i}: distance {d}, true {true_dist[i]}")
                    a = after_added.get(i)
                    if a is None or a[0] > end:
                        raise AssertionError(f"id {i} found before it was added")
                    r = after_removed.get(i)
                    if r is not None and r[1] is not None and r[1] < start:
                        raise AssertionError(f"id {i} found after its removal had finished")
                for i, (a0, a1) in snapshot_added.items():
                    if a1 is not None and a1 < start and true_dist[i] <= radius:
                        r = after_removed.get(i)
                        if (r is None or r[0] > end) and i not in got:
                            raise AssertionError(f"id {i} missing: added before the search, not removed")
                checked[0] += 1
        except Exception as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=searcher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors, errors[0]
    assert checked[0] >= 4
    final = set(index.ids.tolist())
    assert final == set(added) - set(removed)


@pytest.mark.parametrize("reader", ["export", "changes"])
def test_bank_reader_on_another_thread_during_a_write_is_serialized(tmp_path, reader):
    """Deterministic interleaving: the writer pauses inside its transaction until the reader
    thread has run (or 1 s has passed -- with the lock in place the reader waits for the
    writer instead, and the pause just times out)."""
    bank = HashBank(tmp_path / "b.db", snapshot=False)
    in_txn, reader_done = threading.Event(), threading.Event()
    from ncii_hash.bank import cases as bank_cases  # the bank's rows are written by its cases module

    real_insert = bank_cases.insert_case

    def paused_insert(*args, **kwargs):
        in_txn.set()
        reader_done.wait(timeout=1.0)
        return real_insert(*args, **kwargs)

    bank_cases.insert_case = paused_insert
    errors: list = []
    outcome: dict = {}

    def write():
        try:
            outcome["case"] = bank.add_case(_codes(3, 5))
        except Exception as exc:
            errors.append(exc)

    def read():
        in_txn.wait(timeout=60)
        try:
            bank.export(tmp_path / "out.csv") if reader == "export" else bank.changes()
        except Exception as exc:
            errors.append(exc)
        finally:
            reader_done.set()

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    bank_cases.insert_case = real_insert
    try:
        assert not errors, f"{len(errors)} failures, first: {errors[0]!r}"
        assert bank.case(outcome["case"]).hashes == 3
        bank.verify()
    finally:
        bank.close(save_snapshot=False)


def test_knn_k_is_bounded():
    from ncii_hash.index import MAX_KNN

    idx = HashIndex()
    idx.add(np.zeros((3, 32), np.uint8))
    assert idx.knn(np.zeros((1, 32), np.uint8), MAX_KNN).ids.shape == (1, MAX_KNN)
    with pytest.raises(ValueError, match="between 1 and"):
        idx.knn(np.zeros((1, 32), np.uint8), MAX_KNN + 1)
