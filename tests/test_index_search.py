"""HashIndex search on the flat backend: oracle agreement, result types, k-NN ties, dihedral
sets, bad input, concurrent searches, and the one CSR merge (results.merge_hits)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import ncii_hash
from ncii_hash import HashIndex, Match
from ncii_hash.index import merge_hits

from index_helpers import as_pairs, bank, flip, oracle_range  # noqa: F401


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


# ---- the one CSR merge ----------------------------------------------------------------------
def _merge_oracle(q, ids, dists, var, nq, dedupe):
    """Per query: [(distance, id, variant)] sorted; with dedupe one entry per id, its best
    (distance, variant)."""
    out = [dict() if dedupe else [] for _ in range(nq)]
    for qi, i, d, v in zip(q.tolist(), ids.tolist(), dists.tolist(), var.tolist()):
        if dedupe:
            out[qi][i] = min(out[qi].get(i, (d, v)), (d, v))
        else:
            out[qi].append((d, i, v))
    if dedupe:
        return [sorted((d, i, v) for i, (d, v) in per.items()) for per in out]
    return [sorted(per) for per in out]


@pytest.mark.parametrize("seed", range(6))
def test_merge_hits_against_oracle(seed):
    rng = np.random.default_rng(seed)
    nq, n = int(rng.integers(1, 6)), int(rng.integers(0, 300))
    q = rng.integers(0, nq, n)
    ids = rng.integers(0, 40, n)  # repeated (query, id) pairs with different variants
    dists = rng.integers(0, 32, n).astype(np.int32)
    var = rng.integers(0, 8, n).astype(np.int8)
    r = merge_hits(q, ids, dists, var, nq, dedupe=True)
    assert r.lims.dtype == np.int64 and r.ids.dtype == np.int64 and r.distances.dtype == np.int32
    assert r.variants.dtype == np.int8 and r.lims[-1] == r.ids.size
    got = [[(m.distance, m.id, m.variant) for m in ms] for ms in r]
    assert got == _merge_oracle(q, ids, dists, var, nq, True)
    # Without dedupe (distinct pairs promised), every hit is kept, ordered by (distance, id).
    pairs = np.unique(np.stack([q, ids]), axis=1)
    d2 = rng.integers(0, 32, pairs.shape[1]).astype(np.int32)
    r2 = merge_hits(pairs[0], pairs[1], d2, None, nq, dedupe=False)
    assert r2.variants is None
    want = _merge_oracle(pairs[0], pairs[1], d2, np.zeros_like(d2), nq, False)
    assert as_pairs(r2) == [[(d, i) for d, i, _ in per] for per in want]


def test_merge_hits_with_no_hits_keeps_the_shape():
    r = merge_hits(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int8), 3,
                   dedupe=True)
    assert r.lims.tolist() == [0, 0, 0, 0] and r.variants.shape == (0,) and list(r) == [[], [], []]
