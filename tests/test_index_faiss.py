"""HashIndex's FAISS backends against the flat kernel."""

from __future__ import annotations

import numpy as np
import pytest

from ncii_hash import HashIndex

from index_helpers import as_pairs, bank, flip, needs_faiss


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
