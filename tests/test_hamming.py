"""The C++ Hamming kernels at every SIMD level against a NumPy oracle.

Oracle: distance(a, b) = np.unpackbits(a ^ b).sum(). Data is seeded; bank sizes cover the
empty bank, a single row, sizes around the 4- and 8-row groups, the 256-row sub-blocks and
the 4096-row thread blocks, so that every tail path runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from ncii_hash import _core

SIZES = [0, 1, 3, 7, 8, 9, 31, 255, 257, 4097, 8200]


def oracle_matrix(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    if len(queries) == 0 or len(codes) == 0:
        return np.zeros((len(queries), len(codes)), dtype=np.int64)
    return np.unpackbits(queries[:, None, :] ^ codes[None, :, :], axis=2).sum(axis=2).astype(np.int64)


def near(rng: np.random.Generator, base: np.ndarray, flips: int) -> np.ndarray:
    """A copy of the 32-byte code `base` with exactly `flips` distinct bits flipped."""
    bits = np.unpackbits(base.copy())
    idx = rng.choice(256, size=flips, replace=False)
    bits[idx] ^= 1
    return np.packbits(bits)


def make_bank(seed: int, n: int, nq: int):
    """Uniform codes plus queries planted at distances 0..40 of bank rows (and some far ones)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(nq, 32), dtype=np.uint8)
    if n:
        for i in range(0, nq, 2):
            queries[i] = near(rng, codes[rng.integers(n)], int(rng.integers(0, 41)))
    return codes, queries


def expected_range(D: np.ndarray, radius: int, ids: np.ndarray | None = None, removed=()):
    ids = np.arange(D.shape[1]) if ids is None else ids
    keep = np.ones(D.shape[1], dtype=bool)
    keep[list(removed)] = False
    out = []
    for row in D:
        hit = np.nonzero((row <= radius) & keep)[0]
        out.append(sorted((int(row[h]), int(ids[h])) for h in hit))
    return out


def as_lists(lims, ids, dists):
    return [
        [(int(d), int(i)) for i, d in zip(ids[lims[q] : lims[q + 1]], dists[lims[q] : lims[q + 1]])]
        for q in range(len(lims) - 1)
    ]


@pytest.mark.parametrize("n", SIZES)
def test_range_search_matches_oracle(simd, n):
    codes, queries = make_bank(n, n, 13)
    D = oracle_matrix(queries, codes)
    for radius in (0, 1, 16, 31, 32, 63, 64, 120, 128, 256):
        lims, ids, dists, variants = _core.hamming_range_search(codes, queries, radius)
        assert variants is None
        assert lims.dtype == np.int64 and ids.dtype == np.int64 and dists.dtype == np.int32
        assert lims.shape == (len(queries) + 1,)
        # Hits come ordered by (distance, id), so the lists compare directly.
        assert as_lists(lims, ids, dists) == expected_range(D, radius)


def test_every_radius(simd):
    codes, queries = make_bank(7, 45, 6)
    # Codes at every distance 0..256 from query 0, so each radius changes the answer.
    rng = np.random.default_rng(70)
    ring = np.stack([near(rng, queries[0], d) for d in range(257)])
    codes = np.concatenate([codes, ring])
    D = oracle_matrix(queries, codes)
    for radius in range(257):
        got = as_lists(*_core.hamming_range_search(codes, queries, radius)[:3])
        assert got == expected_range(D, radius), radius


def test_duplicates_removed_rows_and_ids(simd):
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, size=(50, 32), dtype=np.uint8)
    codes = np.concatenate([base, base, base[:9]])  # every code at least twice
    ids = rng.permutation(10_000)[: len(codes)].astype(np.int64) * 7 + 1
    removed = np.array(sorted(rng.choice(len(codes), 30, replace=False)), dtype=np.int64)
    queries = np.concatenate([base[:5], rng.integers(0, 256, size=(4, 32), dtype=np.uint8)])
    D = oracle_matrix(queries, codes)
    for radius in (0, 31, 130, 256):
        lims, got_ids, dists, _ = _core.hamming_range_search(codes, queries, radius, ids=ids, removed=removed)
        assert as_lists(lims, got_ids, dists) == expected_range(D, radius, ids, removed)
    # Exact duplicates of query 0 are all found.
    lims, got_ids, dists, _ = _core.hamming_range_search(codes, queries[:1], 0)
    assert sorted(got_ids) == sorted(np.nonzero(D[0] == 0)[0])
    assert len(got_ids) >= 2


@pytest.mark.parametrize("n", [0, 1, 9, 300, 4100])
def test_knn_matches_oracle(simd, n):
    codes, queries = make_bank(100 + n, n, 11)
    D = oracle_matrix(queries, codes)
    for k in (1, 5, 20):
        ids, dists = _core.hamming_knn(codes, queries, k)
        assert ids.shape == (len(queries), k) and ids.dtype == np.int64 and dists.dtype == np.int32
        for q in range(len(queries)):
            order = np.lexsort((np.arange(n), D[q]))[:k]  # by distance, then id
            m = len(order)
            assert ids[q, :m].tolist() == order.tolist()
            assert dists[q, :m].tolist() == D[q, order].tolist()
            assert (ids[q, m:] == -1).all() and (dists[q, m:] == 2**31 - 1).all()


def test_knn_ties_go_to_smaller_id(simd):
    rng = np.random.default_rng(5)
    query = rng.integers(0, 256, size=(1, 32), dtype=np.uint8)
    # 40 codes all at distance 3, 10 at distance 2, in shuffled id order.
    codes = np.stack([near(rng, query[0], 3) for _ in range(40)] + [near(rng, query[0], 2) for _ in range(10)])
    ids = rng.permutation(1000)[:50].astype(np.int64)
    removed = np.array([0, 45], dtype=np.int64)
    got, dists = _core.hamming_knn(codes, query, 15, ids=ids, removed=removed)
    live = [r for r in range(50) if r not in (0, 45)]
    D = oracle_matrix(query, codes)[0]
    want = sorted((int(D[r]), int(ids[r])) for r in live)[:15]
    assert list(zip(dists[0].tolist(), got[0].tolist())) == want
    for threads in (1, 2, 3):
        again = _core.hamming_knn(codes, query, 15, ids=ids, removed=removed, threads=threads)
        assert (again[0] == got).all()


def test_variants_keep_smallest_distance_and_lowest_variant(simd):
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 256, size=(600, 32), dtype=np.uint8)
    nq = 5
    sets = rng.integers(0, 256, size=(nq, 8, 32), dtype=np.uint8)
    # Plant variants near bank rows, some reaching the same row at equal distance.
    sets[0, 2] = near(rng, codes[10], 4)
    sets[0, 5] = near(rng, codes[10], 4)
    sets[0, 7] = near(rng, codes[10], 1)
    sets[1, 3] = near(rng, codes[20], 6)
    sets[1, 6] = near(rng, codes[20], 6)
    sets[2, 0] = codes[30]
    sets[2, 1] = codes[30]
    flat = sets.reshape(-1, 32)
    D = oracle_matrix(flat, codes).reshape(nq, 8, -1)
    for radius in (0, 6, 31, 115):
        lims, ids, dists, variants = _core.hamming_range_search(codes, flat, radius, variants=8)
        assert variants.dtype == np.int8
        for q in range(nq):
            best = D[q].min(axis=0)
            rows = np.nonzero(best <= radius)[0]
            want = sorted((int(best[r]), int(r), int(np.argmin(D[q][:, r]))) for r in rows)
            got = list(
                zip(dists[lims[q] : lims[q + 1]].tolist(), ids[lims[q] : lims[q + 1]].tolist(),
                    variants[lims[q] : lims[q + 1]].tolist())
            )
            assert got == want


def test_thread_counts_agree(simd):
    codes, queries = make_bank(21, 20_000, 40)
    ref = _core.hamming_range_search(codes, queries, 31, threads=1)
    for threads in (0, 2, 3):
        got = _core.hamming_range_search(codes, queries, 31, threads=threads)
        for a, b in zip(ref[:3], got[:3]):
            assert np.array_equal(a, b)
    assert _core.hamming_threads(0) >= 1


def test_bad_arguments_raise():
    codes = np.zeros((4, 32), dtype=np.uint8)
    with pytest.raises(ValueError, match="radius"):
        _core.hamming_range_search(codes, codes, 257)
    with pytest.raises(ValueError, match="radius"):
        _core.hamming_range_search(codes, codes, -1)
    with pytest.raises(TypeError, match=r"\(N, 32\)"):
        _core.hamming_range_search(codes.astype(np.int16), codes, 3)
    with pytest.raises(TypeError, match=r"\(N, 32\)"):
        _core.hamming_range_search(codes[:, :16], codes, 3)
    with pytest.raises(ValueError, match="sorted"):
        _core.hamming_range_search(codes, codes, 3, removed=np.array([2, 1], dtype=np.int64))
    with pytest.raises(ValueError, match="one entry per bank row"):
        _core.hamming_range_search(codes, codes, 3, ids=np.arange(3, dtype=np.int64))
    with pytest.raises(ValueError, match="multiple of variants"):
        _core.hamming_range_search(codes, codes[:3], 3, variants=8)
    with pytest.raises(ValueError, match="k must"):
        _core.hamming_knn(codes, codes, 0)


@pytest.mark.parametrize("words", [0, 1, 7, 8, 9, 40_001])
def test_xor_fold_bandwidth_probe(words):
    data = np.random.default_rng(words).integers(0, 2**63, words, dtype=np.uint64)
    want = int(np.bitwise_xor.reduce(data)) if words else 0
    for threads in (1, 2, 3):
        assert _core.xor_fold(data, threads) == want
    with pytest.raises(ValueError, match="multiple of 8"):
        _core.xor_fold(np.zeros(3, np.uint8), 1)
