"""HashIndex behaviour: oracle agreement, ids and tombstones, dihedral sets, FAISS backends,
save/load integrity, thread safety, and a stateful model test against a dict oracle."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import ncii_hash
from ncii_hash import HashIndex, Match, RangeResult

try:
    import faiss  # noqa: F401

    HAVE_FAISS = True
except ImportError:  # pragma: no cover
    HAVE_FAISS = False
needs_faiss = pytest.mark.skipif(not HAVE_FAISS, reason="faiss not installed")


def dist(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(a ^ b).sum())


def flip(rng: np.random.Generator, code: np.ndarray, n: int) -> np.ndarray:
    bits = np.unpackbits(code.copy())
    bits[rng.choice(256, size=n, replace=False)] ^= 1
    return np.packbits(bits)


def bank(seed: int, n: int, dups: int = 0):
    """n uniform codes plus `dups` near-duplicates (0..31 bits away) of random ones."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    extra = [flip(rng, codes[rng.integers(n)], int(rng.integers(0, 32))) for _ in range(dups)]
    return np.concatenate([codes, np.array(extra, dtype=np.uint8).reshape(-1, 32)]), rng


def oracle_range(entries: dict[int, np.ndarray], queries: np.ndarray, radius: int):
    """Per query: sorted [(distance, id)] of entries within radius."""
    out = []
    for q in queries:
        out.append(sorted((dist(q, c), i) for i, c in entries.items() if dist(q, c) <= radius))
    return out


def as_pairs(result: RangeResult):
    return [[(m.distance, m.id) for m in result[i]] for i in range(len(result))]


# ---- the flat backend ---------------------------------------------------------------------
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


def test_result_types_and_access():
    codes, _ = bank(2, 50)
    index = HashIndex()
    index.add(codes, ids=np.arange(50) * 10 + 5)
    r = index.range_search(codes[[3, 4]], radius=0)
    assert r.lims.dtype == np.int64 and r.ids.dtype == np.int64 and r.distances.dtype == np.int32
    assert r.lims.tolist() == [0, 1, 2] and r.variants is None
    assert r[0] == [Match(id=35, distance=0)] and r[-1] == [Match(id=45, distance=0)]
    assert len(r) == 2 and r.num_matches == 2 and list(r) == [r[0], r[1]]
    with pytest.raises(IndexError):
        r[2]
    single = index.range_search(codes[7])  # a single (32,) hash is one query
    assert len(single) == 1 and single[0][0].id == 75


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


def test_knn_against_oracle_with_ties():
    rng = np.random.default_rng(5)
    q = rng.integers(0, 256, size=32, dtype=np.uint8)
    codes = np.stack([flip(rng, q, d) for d in [4, 2, 2, 2, 7, 2, 9, 4, 1, 30]])
    index = HashIndex()
    index.add(codes, ids=[90, 80, 70, 60, 50, 40, 30, 20, 10, 0])
    index.remove([60])
    r = index.knn(q, 4)
    assert r.ids.tolist() == [[10, 40, 70, 80]] and r.distances.tolist() == [[1, 2, 2, 2]]
    big = index.knn(np.stack([q, q]), 12)
    assert big.ids[0, 9:].tolist() == [-1, -1, -1] and big.distances[0, 9] == 2**31 - 1
    assert big[1][-1] == Match(id=0, distance=30)
    assert HashIndex().knn(q, 2).ids.tolist() == [[-1, -1]]


def test_dihedral_sets():
    codes, rng = bank(6, 400)
    index = HashIndex()
    index.add(codes)
    sets = rng.integers(0, 256, size=(3, 8, 32), dtype=np.uint8)
    sets[0, 3] = flip(rng, codes[17], 9)
    sets[0, 6] = flip(rng, codes[17], 2)  # the better variant
    sets[1, 4] = flip(rng, codes[5], 3)
    sets[1, 5] = flip(rng, codes[5], 3)  # tie: the lower variant (4) wins
    r = index.range_search(sets, dihedral=True)
    assert r.variants.dtype == np.int8
    assert r[0] == [Match(17, 2, 6)] and r[1] == [Match(5, 3, 4)] and r[2] == []
    one = index.range_search(sets[0], dihedral=True)  # a single (8, 32) set
    assert len(one) == 1 and one[0] == r[0]
    with pytest.raises(ValueError, match=r"pdq_hash\(image, dihedral=True\)\.dihedral"):
        index.range_search(codes[:2], dihedral=True)
    with pytest.raises(ValueError, match="dihedral=True"):
        index.range_search(sets)


def test_dihedral_with_real_pdq_variants():
    rng = np.random.default_rng(7)
    img = (rng.random((96, 80)) * 255).astype(np.uint8)
    res = ncii_hash.pdq_hash(img, dihedral=True)
    index = HashIndex()
    index.add(res.dihedral[[2, 5]], ids=[102, 105])
    r = index.range_search(res.dihedral, dihedral=True, radius=0)
    assert r[0] == [Match(102, 0, 2), Match(105, 0, 5)]


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda ix: ix.range_search(np.zeros((2, 32), np.int64)), TypeError, "uint8"),
        (lambda ix: ix.range_search(np.zeros((2, 31), np.uint8)), ValueError, r"\(N, 32\)"),
        (lambda ix: ix.range_search(np.zeros((2, 32), np.uint8), radius=257), ValueError, "radius"),
        (lambda ix: ix.range_search(np.zeros((2, 32), np.uint8), radius=-1), ValueError, "radius"),
        (lambda ix: ix.range_search(np.zeros((2, 32), np.uint8), radius=True), TypeError, "radius"),
        (lambda ix: ix.range_search(np.zeros((2, 32), np.uint8), threads=-1), ValueError, "threads"),
        (lambda ix: ix.knn(np.zeros((2, 32), np.uint8), 0), ValueError, "k must"),
        (lambda ix: ix.add(np.zeros((2, 32), np.float32)), TypeError, "hashes"),
        (lambda ix: ix.remove(["a"]), TypeError, "ids"),
        (lambda ix: HashIndex("annoy"), ValueError, "backend"),
        (lambda ix: HashIndex(compact_fraction=0), ValueError, "compact_fraction"),
    ],
)
def test_bad_input_is_named(call, exc, pattern):
    index = HashIndex()
    index.add(np.zeros((3, 32), np.uint8))
    with pytest.raises(exc, match=pattern):
        call(index)


# ---- FAISS backends -----------------------------------------------------------------------
@needs_faiss
@pytest.mark.parametrize("backend", ["faiss-flat", "faiss-mih"])
def test_exact_faiss_backends_agree_with_flat(backend):
    codes, rng = bank(8, 2000, dups=300)
    queries = np.stack([flip(rng, codes[i], int(rng.integers(0, 40))) for i in rng.integers(0, 2300, 60)])
    sets = np.stack([np.stack([flip(rng, codes[i], int(v * 4)) for v in range(8)]) for i in range(0, 2300, 230)])
    ref, other = HashIndex(), HashIndex(backend)
    for ix in (ref, other):
        ix.add(codes, ids=np.arange(len(codes)) * 3)
        ix.remove(np.arange(0, 2000, 7) * 3)
    for radius in (0, 8, 15, 16, 31):
        a, b = ref.range_search(queries, radius), other.range_search(queries, radius)
        assert np.array_equal(a.lims, b.lims) and np.array_equal(a.ids, b.ids)
        assert np.array_equal(a.distances, b.distances)
        a, b = ref.range_search(sets, radius, dihedral=True), other.range_search(sets, radius, dihedral=True)
        assert as_pairs(a) == as_pairs(b) and np.array_equal(a.variants, b.variants)
    if backend == "faiss-flat":  # exact k-NN (ties may be cut differently: compare distances)
        assert np.array_equal(ref.knn(queries, 5).distances, other.knn(queries, 5).distances)


@needs_faiss
@pytest.mark.parametrize("backend", ["faiss-ivf", "faiss-hnsw"])
def test_approximate_backends_report_only_true_matches(backend):
    codes, rng = bank(9, 3000, dups=200)
    queries = codes[rng.integers(0, 3200, 50)]
    ref, approx = HashIndex(), HashIndex(backend)
    for ix in (ref, approx):
        ix.add(codes)
    assert not approx.exact and ref.exact
    exact = {(q, m.id, m.distance) for q, ms in enumerate(ref.range_search(queries)) for m in ms}
    got = {(q, m.id, m.distance) for q, ms in enumerate(approx.range_search(queries)) for m in ms}
    assert got <= exact  # approximate: may miss, never invents
    assert all(m.distance == 0 for q in range(50) for m in approx.range_search(queries, 0)[q])


# ---- save / load --------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["flat", pytest.param("faiss-mih", marks=needs_faiss)])
@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path, backend, mmap):
    codes, rng = bank(10, 500, dups=50)
    index = HashIndex(backend)
    index.add(codes, ids=rng.permutation(10_000)[:550])
    index.remove(index.ids[:40])
    path = tmp_path / "bank.idx"
    index.save(path)
    assert (os.stat(path).st_mode & 0o777) == 0o600
    assert os.listdir(tmp_path) == ["bank.idx"]  # no temp file left behind
    loaded = HashIndex.load(path, mmap=mmap)
    assert loaded.backend == backend and len(loaded) == len(index)
    assert np.array_equal(loaded.ids, index.ids)
    queries = codes[::5]
    assert as_pairs(loaded.range_search(queries)) == as_pairs(index.range_search(queries))
    # A mapped index stays usable for every operation; the file is never written through.
    before = path.read_bytes()
    assert loaded.remove(loaded.ids[:3]) == 3
    new = loaded.add(codes[:2])
    assert new.tolist() == [int(index.ids.max()) + 1, int(index.ids.max()) + 2]
    loaded.compact()
    assert path.read_bytes() == before
    assert [m.id for m in loaded.range_search(codes[:1], 0)[0]][-1] == new[0]


def test_save_replaces_atomically(tmp_path):
    codes, _ = bank(11, 30)
    path = tmp_path / "bank.idx"
    a = HashIndex()
    a.add(codes[:10])
    a.save(path)
    a.add(codes[10:])
    a.save(path)
    assert len(HashIndex.load(path)) == 30 and os.listdir(tmp_path) == ["bank.idx"]
    with pytest.raises(FileNotFoundError):
        a.save(tmp_path / "missing-dir" / "x.idx")
    with pytest.raises(FileNotFoundError):
        HashIndex.load(tmp_path / "nothing.idx")


def test_every_flipped_byte_is_refused(tmp_path):
    codes, _ = bank(12, 6)
    index = HashIndex()
    index.add(codes, ids=[3, 1, 4, 15, 9, 2])
    good = tmp_path / "good.idx"
    index.save(good)
    data = good.read_bytes()
    bad = tmp_path / "bad.idx"
    for pos in range(len(data)):
        corrupt = bytearray(data)
        corrupt[pos] ^= 0x01 << (pos % 8)
        bad.write_bytes(bytes(corrupt))
        for mmap in (True, False):
            with pytest.raises(ValueError, match=str(bad)):
                HashIndex.load(bad, mmap=mmap)


def test_truncated_and_foreign_files_are_refused(tmp_path):
    codes, _ = bank(13, 40)
    index = HashIndex()
    index.add(codes)
    good = tmp_path / "good.idx"
    index.save(good)
    data = good.read_bytes()
    bad = tmp_path / "bad.idx"
    for cut in (0, 1, 8, 63, 64, 200, len(data) - 33, len(data) - 1):
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated|not a ncii_hash index"):
            HashIndex.load(bad)
    bad.write_bytes(data + b"\0")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        HashIndex.load(bad)
    bad.write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(ValueError, match="not a ncii_hash index"):
        HashIndex.load(bad)
    bad.write_bytes(data[:8] + (99).to_bytes(4, "little") + data[12:])
    with pytest.raises(ValueError, match="version 99"):
        HashIndex.load(bad)


# ---- threads --------------------------------------------------------------------------------
def test_concurrent_searches_are_identical():
    codes, rng = bank(14, 20_000, dups=500)
    index = HashIndex()
    index.add(codes)
    queries = codes[rng.integers(0, 20_500, 64)]
    expected = index.range_search(queries, threads=1)
    results, errors = [], []

    def worker(seed: int) -> None:
        try:
            for t in (1, 2, 0):
                results.append(index.range_search(queries, threads=t))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 12
    for r in results:
        assert np.array_equal(r.lims, expected.lims) and np.array_equal(r.ids, expected.ids)
        assert np.array_equal(r.distances, expected.distances)


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


# ---- stateful model test ------------------------------------------------------------------
class IndexModel(RuleBasedStateMachine):
    """Random add/remove/search/compact/save-load sequences against a dict {id: code}."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng(0)
        self.model: dict[int, np.ndarray] = {}
        self.index = HashIndex(compact_fraction=0.5)
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
