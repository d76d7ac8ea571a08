"""HashIndex backends as objects: the registry, a backend added by registering one class, every
backend behind the same interface, and FAISS imported only when a FAISS backend is made."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ncii_hash import HashIndex
from ncii_hash.index import BACKENDS, EXACT_BACKENDS, KnnResult, merge_hits, register_backend

from index_helpers import ALL_BACKENDS, as_pairs, bank, flip


class NumpySearcher:
    """A brute-force backend written only against the Searcher interface (unpackbits oracle)."""

    name = "numpy-test"
    exact = True

    def __init__(self, options):
        self.rebuilds, self.appends = 0, []

    def rebuild(self, codes):
        self.rebuilds += 1

    def append(self, codes, start):
        self.appends.append((start, codes.shape[0]))

    def _distances(self, table, queries):
        x = queries[:, None, :] ^ table.codes[None, :, :]
        d = np.unpackbits(x, axis=2).sum(axis=2).astype(np.int32)
        if table.removed_rows is not None:
            d[:, table.removed_rows] = 1 << 20
        return d

    def range_search(self, table, queries, radius, variants, threads):
        d = self._distances(table, queries)
        qflat, rows = np.nonzero(d <= radius)
        var = (qflat % variants).astype(np.int8) if variants > 1 else None
        return merge_hits(qflat // variants, table.ids[rows], d[qflat, rows], var, queries.shape[0] // variants,
                          dedupe=variants > 1)

    def knn(self, table, queries, k, threads):
        d = self._distances(table, queries)
        ids = np.full((len(queries), k), -1, np.int64)
        out = np.full((len(queries), k), 2**31 - 1, np.int32)
        for qi in range(len(queries)):
            order = np.lexsort((table.ids, d[qi]))[:k]
            order = order[d[qi][order] <= 256]
            ids[qi, : order.size], out[qi, : order.size] = table.ids[order], d[qi][order]
        return KnnResult(ids, out)


register_backend(NumpySearcher)


def test_builtin_registry():
    assert BACKENDS == ("flat", "mih", "auto", "faiss-flat", "faiss-mih", "faiss-ivf", "faiss-hnsw")
    assert EXACT_BACKENDS == {"flat", "mih", "auto", "faiss-flat", "faiss-mih"}
    with pytest.raises(ValueError, match="already registered"):
        register_backend(type("Other", (NumpySearcher,), {}))
    with pytest.raises(TypeError, match="name"):
        register_backend(type("Nameless", (), {"exact": True}))
    with pytest.raises(ValueError, match="'numpy-test'"):  # the message lists registered backends
        HashIndex("annoy")


def test_a_registered_backend_slots_in_and_round_trips(tmp_path):
    codes, rng = bank(31, 400, dups=80)
    ref, other = HashIndex(), HashIndex("numpy-test")
    for ix in (ref, other):
        ix.add(codes[:300], ids=np.arange(300) * 2)  # into an empty table: a rebuild
        ix.add(codes[300:400], ids=np.arange(1000, 1100))  # larger ids: appended rows
        ix.add(codes[400:], ids=np.arange(80) * 2 + 1)  # smaller ids: re-sorted, so rebuilt
        ix.remove(np.arange(0, 300, 4))
    assert other._searcher.rebuilds == 2 and other._searcher.appends == [(300, 400)]
    queries = np.stack([flip(rng, codes[i], 6) for i in range(0, 480, 9)])
    sets = rng.integers(0, 256, (4, 8, 32), dtype=np.uint8)
    sets[:, 5] = queries[:4]
    for radius in (0, 12, 31):
        assert as_pairs(other.range_search(queries, radius)) == as_pairs(ref.range_search(queries, radius))
        a, b = ref.range_search(sets, radius, dihedral=True), other.range_search(sets, radius, dihedral=True)
        assert as_pairs(a) == as_pairs(b) and np.array_equal(a.variants, b.variants)
    assert np.array_equal(other.knn(queries, 3).ids, ref.knn(queries, 3).ids)
    other.save(tmp_path / "x.idx")
    again = HashIndex.load(tmp_path / "x.idx")
    assert again.backend == "numpy-test" and as_pairs(again.range_search(queries)) == as_pairs(ref.range_search(queries))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_every_backend_answers_through_the_same_interface(backend):
    codes, rng = bank(32, 1500, dups=100)
    index = HashIndex(backend)
    ids = index.add(codes)
    index.remove(ids[::5])
    assert index.backend == backend and index.exact == (backend in EXACT_BACKENDS)
    queries = codes[rng.integers(0, 1600, 30)]
    r = index.range_search(queries, 0)
    assert all(m.id % 5 != 0 and m.distance == 0 for ms in r for m in ms)
    k = index.knn(queries, 2)
    assert k.ids.shape == (30, 2) and k.distances.dtype == np.int32
    assert len(HashIndex(backend).range_search(queries)) == 30  # an empty index


def test_the_flat_backend_never_imports_faiss():
    code = ("import sys, numpy as np\nfrom ncii_hash import HashIndex\nix = HashIndex()\n"
            "ix.add(np.zeros((3, 32), np.uint8))\nix.range_search(np.zeros((1, 32), np.uint8))\n"
            "ix.knn(np.zeros((1, 32), np.uint8), 1)\nprint('faiss' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
