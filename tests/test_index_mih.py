"""The multi-index backends ("mih", "auto") give exactly the flat scan's results: every radius
the split supports and beyond, plain and dihedral queries, after adds (a scanned tail) and
removals (tombstones), at every SIMD level; "auto" routes skewed queries to the scan."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ncii_hash import HashIndex, _core
from ncii_hash.index import mih

from index_helpers import as_pairs, dist, flip, oracle_range

RADII = (0, 8, 16, 31, 48)


def clustered(rng: np.random.Generator, n: int, centres: int, bits: float) -> np.ndarray:
    """n codes, each a random centre with about `bits` of its 256 bits flipped."""
    base = rng.integers(0, 256, size=(centres, 32), dtype=np.uint8)[rng.integers(0, centres, n)]
    noise = np.packbits(rng.random((n, 256)) < bits / 256, axis=1)
    return base ^ noise


def skewed(rng: np.random.Generator, n: int) -> np.ndarray:
    """Near-constant codes (what flat, low-quality images hash to): most bits zero."""
    return np.packbits(rng.random((n, 256)) < 0.02, axis=1)


def same(a, b) -> None:
    assert np.array_equal(a.lims, b.lims)
    assert np.array_equal(a.ids, b.ids)
    assert np.array_equal(a.distances, b.distances)
    assert (a.variants is None) == (b.variants is None)
    if a.variants is not None:
        assert np.array_equal(a.variants, b.variants)


@pytest.fixture
def eager(monkeypatch):
    """Tables for any size, rebuilt once the unindexed tail passes 2,000 rows."""
    monkeypatch.setattr(mih, "AUTO_MIN_ROWS", 1)
    monkeypatch.setattr(mih, "TAIL_MIN_ROWS", 2000)


def build_pair(backend: str, seed: int, **options):
    """A flat index and a `backend` index with the same history: a bulk add, a tail of adds,
    removals. Returns (flat, other, rng, codes)."""
    rng = np.random.default_rng(seed)
    codes = np.concatenate([clustered(rng, 12_000, 300, 12), skewed(rng, 2_000)])
    codes = codes[rng.permutation(codes.shape[0])]
    tail = clustered(rng, 1_500, 40, 10)
    gone = rng.choice(12_000, 700, replace=False)
    pair = []
    for b in ("flat", backend):
        ix = HashIndex(b, compact_fraction=None, **options)
        ix.add(codes)
        ix.add(tail)  # below the rebuild threshold: scanned
        ix.remove(gone)
        pair.append(ix)
    return pair[0], pair[1], rng, np.concatenate([codes, tail])


def queries_near(rng, codes, n):
    picks = codes[rng.integers(0, codes.shape[0], n)]
    return np.array([flip(rng, c, int(rng.integers(0, 40))) for c in picks], dtype=np.uint8)


@pytest.mark.parametrize("backend", ["mih", "auto"])
def test_same_results_as_flat_at_every_simd_level(simd, eager, backend):
    flat, other, rng, codes = build_pair(backend, 7)
    stats = other.backend_stats()
    assert stats["indexed_rows"] == 14_000 and stats["substrings"] >= 10  # tables plus a tail
    plain = np.concatenate([queries_near(rng, codes, 40), skewed(rng, 10)])
    dihedral = np.stack([queries_near(rng, codes, 8) for _ in range(6)])  # (6, 8, 32)
    dihedral[0, 4:] = dihedral[0, :4]  # symmetric pictures repeat variants: probed once
    dihedral[1, :] = dihedral[1, 5]
    for radius in RADII:
        same(other.range_search(plain, radius), flat.range_search(plain, radius))
        same(other.range_search(dihedral, radius, dihedral=True), flat.range_search(dihedral, radius, dihedral=True))
    for threads in (1, 2, 3):
        same(other.range_search(plain, 31, threads=threads), flat.range_search(plain, 31))


def test_results_equal_a_brute_force_oracle(eager):
    _, index, rng, codes = build_pair("mih", 11)
    live = dict(zip(index.ids.tolist(), codes[index.ids]))
    queries = queries_near(rng, codes, 12)
    for radius in (0, 16, 31, 64):
        assert as_pairs(index.range_search(queries, radius)) == oracle_range(live, queries, radius)


@pytest.mark.parametrize("substrings", [10, 16, 32])
def test_every_split_is_exact(eager, substrings):
    flat, other, rng, codes = build_pair("mih", 3, mih_substrings=substrings)
    assert other.backend_stats()["substrings"] == substrings
    queries = queries_near(rng, codes, 30)
    for radius in (0, 9, 31, 40):
        same(other.range_search(queries, radius), flat.range_search(queries, radius))


def test_auto_routes_full_buckets_to_the_scan_and_mih_does_not(eager):
    _, auto, rng, _ = build_pair("auto", 5)
    _, probe, _, _ = build_pair("mih", 5)
    near_constant = skewed(rng, 20)  # thousands of banked codes share their substrings
    auto.range_search(near_constant, 31)
    probe.range_search(near_constant, 31)
    assert auto.backend_stats()["scanned"] > 0
    assert probe.backend_stats()["scanned"] == 0 and probe.backend_stats()["probes"] > 0
    before = auto.backend_stats()
    auto.range_search(np.zeros((0, 32), np.uint8), 31)
    auto.range_search(clustered(rng, 5, 3, 0)[:1], 2)  # a tiny radius over spread codes: probed
    after = auto.backend_stats()
    assert after["probes"] > before["probes"] and after["scanned"] == before["scanned"]


def test_auto_builds_no_tables_for_small_indexes():
    index = HashIndex("auto")
    index.add(np.random.default_rng(0).integers(0, 256, (5_000, 32), dtype=np.uint8))
    assert index.backend_stats()["indexed_rows"] == 0 and index.backend_stats()["table_bytes"] == 0


def test_background_rebuild_keeps_searches_exact(monkeypatch):
    monkeypatch.setattr(mih, "SYNC_BUILD_ROWS", 1_000)  # anything larger builds in a thread
    monkeypatch.setattr(mih, "TAIL_MIN_ROWS", 1_000)
    rng = np.random.default_rng(21)
    codes = clustered(rng, 60_000, 500, 12)
    before, after, index = HashIndex(), HashIndex(), HashIndex("mih")
    before.add(codes[:30_000])
    after.add(codes)
    index.add(codes[:30_000])  # built in the background
    queries = queries_near(rng, codes, 30)
    want = [before.range_search(queries, 31), after.range_search(queries, 31)]
    errors: list[BaseException] = []
    seen = set()

    def search() -> None:
        try:
            for _ in range(30):
                got = index.range_search(queries, 31)
                match = [k for k, w in enumerate(want) if np.array_equal(got.lims, w.lims)
                         and np.array_equal(got.ids, w.ids) and np.array_equal(got.distances, w.distances)]
                assert match, "a search saw neither the state before the add nor after it"
                seen.add(match[0])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=search)
    worker.start()
    index.add(codes[30_000:])  # a tail past the threshold: another rebuild once the first ends
    worker.join(timeout=120)
    assert not errors and seen
    assert index.wait_for_backend(timeout=120)
    index.add(codes[:1] ^ 1)  # starts the rebuild a running one held back, if any
    assert index.wait_for_backend(timeout=120)
    stats = index.backend_stats()
    assert stats["indexed_rows"] >= 60_000 and not stats["building"]  # the tail is 0 or 1 rows
    after.add(codes[:1] ^ 1)
    same(index.range_search(queries, 31), after.range_search(queries, 31))


def test_compaction_and_reload_rebuild_the_tables(tmp_path, eager):
    flat, index, rng, codes = build_pair("mih", 9)
    index.compact()
    flat.compact()
    queries = queries_near(rng, codes, 20)
    same(index.range_search(queries, 31), flat.range_search(queries, 31))
    index.save(tmp_path / "mih.idx")
    loaded = HashIndex.load(tmp_path / "mih.idx")
    assert loaded.backend == "mih" and loaded.wait_for_backend(timeout=120)
    assert loaded.backend_stats()["indexed_rows"] == len(flat)
    same(loaded.range_search(queries, 31), flat.range_search(queries, 31))


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="mih_substrings"):
        HashIndex("mih", mih_substrings=9)
    with pytest.raises(ValueError, match="between 10 and 32"):
        _core.MihTables(np.zeros((4, 32), np.uint8), 40)
    tables = _core.MihTables(np.zeros((4, 32), np.uint8), 16)
    with pytest.raises(ValueError, match="more rows than the bank"):
        _core.mih_range_search(tables, np.zeros((2, 32), np.uint8), np.zeros((1, 32), np.uint8), 3)
    assert dist(np.zeros(32, np.uint8), np.zeros(32, np.uint8)) == 0
