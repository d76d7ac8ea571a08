"""HashIndex mutation: ids and tombstones, compaction, searches during writes, and a stateful
model test against a dict oracle."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ncii_hash import HashIndex
from ncii_hash.index import mih

from index_helpers import as_pairs, dist, flip, bank, oracle_range


def test_add_search_remove_against_oracle():
    codes, rng = bank(1, 300, dups=60)
    index = HashIndex()
    ids = index.add(codes)
    assert ids.dtype == np.int64 and ids.tolist() == list(range(len(codes)))
    entries = dict(zip(ids.tolist(), codes))
    queries = np.stack([flip(rng, codes[i], 5) for i in range(0, 360, 7)])
    for radius in (0, 10, 31, 100):
        assert as_pairs(index.range_search(queries, radius)) == oracle_range(entries, queries, radius)
    gone = ids[::3]
    assert index.remove(gone) == len(gone)
    assert index.remove(gone) == 0  # already removed
    assert index.remove([10**12]) == 0  # unknown
    for i in gone.tolist():
        del entries[i]
    assert len(index) == len(entries)
    assert index.ids.tolist() == sorted(entries)
    assert as_pairs(index.range_search(queries)) == oracle_range(entries, queries, 31)
    index.compact()
    assert as_pairs(index.range_search(queries)) == oracle_range(entries, queries, 31)
    assert int(gone[0]) not in index and int(ids[1]) in index


def test_ids_rules():
    codes, _ = bank(3, 20)
    index = HashIndex()
    assert index.add(codes[:5], ids=[50, 40, 30, 20, 10]).tolist() == [50, 40, 30, 20, 10]
    assert index.add(codes[5:7]).tolist() == [51, 52]  # auto ids continue above the largest
    with pytest.raises(ValueError, match="duplicates"):
        index.add(codes[7:9], ids=[100, 100])
    with pytest.raises(ValueError, match="already in the index"):
        index.add(codes[7:9], ids=[100, 40])
    with pytest.raises(ValueError, match="non-negative"):
        index.add(codes[7:8], ids=[-1])
    with pytest.raises(ValueError, match="one entry per hash"):
        index.add(codes[7:9], ids=[1])
    with pytest.raises(TypeError, match="integers"):
        index.add(codes[7:8], ids=[1.5])
    assert len(index) == 7  # failed calls changed nothing
    # Ids below the current maximum take the re-sort path; a removed id can be reused.
    index.add(codes[7:9], ids=[15, 5])
    assert index.remove([40]) == 1
    index.add(codes[9:10], ids=[40])
    got = index.range_search(codes[[9, 4, 8, 1]], radius=0)
    assert [m.id for m in got[0]] == [40] and [m.id for m in got[1]] == [10]
    assert [m.id for m in got[2]] == [5] and got[3] == []  # codes[1] had id 40, now removed
    assert index.ids.tolist() == [5, 10, 15, 20, 30, 40, 50, 51, 52]


def test_auto_compaction_keeps_results():
    codes, rng = bank(4, 3000)
    index = HashIndex(compact_fraction=0.3)
    ids = index.add(codes)
    entries = dict(zip(ids.tolist(), codes))
    victims = rng.choice(ids, 1200, replace=False)
    queries = codes[victims[:20]]
    removed = 0
    for chunk in np.array_split(victims, 6):
        removed += index.remove(chunk)
        for i in chunk.tolist():
            del entries[i]
        assert as_pairs(index.range_search(queries, 0)) == oracle_range(entries, queries, 0)
    assert removed == 1200 and len(index) == 1800
    assert "tombstones=0" in repr(index)  # 1200 > 0.3 * 3000 triggered a compaction


def test_searches_during_writes_see_whole_states():
    codes, rng = bank(15, 5000)
    index = HashIndex(compact_fraction=None)
    ids = index.add(codes)
    probe = codes[:200]  # each probe matches exactly its own id at distance 0
    seen, errors = [], []
    stop = threading.Event()

    def searcher() -> None:
        try:
            while not stop.is_set():
                r = index.range_search(probe, 0)
                seen.append(sorted(r.ids.tolist()))
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    workers = [threading.Thread(target=searcher) for _ in range(2)]
    for w in workers:
        w.start()
    for chunk in np.array_split(ids[:200], 20):  # removals in order: states are prefixes
        index.remove(chunk)
    index.compact()
    stop.set()
    for w in workers:
        w.join(timeout=120)
    assert not errors and seen
    valid = {tuple(ids[k:200].tolist()) for k in range(0, 201)}
    assert all(tuple(s) in valid for s in seen)
    assert index.range_search(probe, 0).num_matches == 0


class IndexModel(RuleBasedStateMachine):
    """Random add/remove/search/compact/save-load sequences against a dict {id: code}."""

    backend = "flat"

    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng(0)
        self.model: dict[int, np.ndarray] = {}
        self.index = HashIndex(self.backend, compact_fraction=0.5)
        self.counter = 0

    @initialize(seed=st.integers(0, 2**32 - 1))
    def seed(self, seed):
        self.rng = np.random.default_rng(seed)

    def _codes(self, n: int) -> np.ndarray:
        base = list(self.model.values())
        out = []
        for _ in range(n):
            if base and self.rng.random() < 0.6:  # near-duplicates make searches hit
                out.append(flip(self.rng, base[self.rng.integers(len(base))], int(self.rng.integers(0, 40))))
            else:
                out.append(self.rng.integers(0, 256, 32, dtype=np.uint8))
        return np.array(out, dtype=np.uint8).reshape(-1, 32)

    @rule(n=st.integers(0, 40))
    def add_auto(self, n):
        codes = self._codes(n)
        ids = self.index.add(codes)
        assert len(set(ids.tolist()) & set(self.model)) == 0
        self.model.update(zip(ids.tolist(), codes))

    @rule(n=st.integers(1, 20), data=st.data())
    def add_explicit(self, n, data):
        ids = data.draw(st.lists(st.integers(0, 300), min_size=n, max_size=n, unique=True))
        codes = self._codes(n)
        if set(ids) & set(self.model):
            with pytest.raises(ValueError):
                self.index.add(codes, ids=ids)
        else:
            assert self.index.add(codes, ids=ids).tolist() == ids
            self.model.update(zip(ids, codes))

    @rule(data=st.data())
    def remove(self, data):
        known = sorted(self.model)
        pick = data.draw(st.lists(st.sampled_from(known), max_size=10)) if known else []
        pick += data.draw(st.lists(st.integers(301, 400), max_size=2))  # unknown (auto ids may exist)
        expected = len({i for i in pick if i in self.model})
        assert self.index.remove(pick) == expected
        for i in pick:
            self.model.pop(i, None)

    @rule(radius=st.integers(0, 256), nq=st.integers(0, 5))
    def search(self, radius, nq):
        queries = self._codes(nq)
        assert as_pairs(self.index.range_search(queries, radius)) == oracle_range(self.model, queries, radius)

    @rule(k=st.integers(1, 6))
    def knn(self, k):
        queries = self._codes(2)
        got = self.index.knn(queries, k)
        for qi, q in enumerate(queries):
            want = sorted((dist(q, c), i) for i, c in self.model.items())[:k]
            assert [(m.distance, m.id) for m in got[qi]] == want

    @rule()
    def compact(self):
        self.index.compact()

    @rule(mmap=st.booleans())
    def save_load(self, mmap):
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "model.idx")
            self.index.save(path)
            self.index = HashIndex.load(path, mmap=mmap)

    @invariant()
    def sizes_agree(self):
        assert len(self.index) == len(self.model)
        assert self.index.ids.tolist() == sorted(self.model)


IndexModel.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestIndexModel = IndexModel.TestCase


class MihIndexModel(IndexModel):
    """The same sequences on the multi-index backend, its tables rebuilt after every few added
    rows (so searches mix probed tables, a scanned tail and tombstones)."""

    backend = "mih"

    def __init__(self) -> None:
        self._saved = (mih.TAIL_MIN_ROWS, mih.TAIL_FRACTION)
        mih.TAIL_MIN_ROWS, mih.TAIL_FRACTION = 6, 2
        super().__init__()

    def teardown(self) -> None:
        mih.TAIL_MIN_ROWS, mih.TAIL_FRACTION = self._saved


MihIndexModel.TestCase.settings = IndexModel.TestCase.settings
TestMihIndexModel = MihIndexModel.TestCase
