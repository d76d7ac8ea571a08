"""ShardedIndex and backfill on a local Ray instance (2 CPUs, small object store).

The oracle is one HashIndex over the same data: the sharded results must be the same CSR
arrays. Skipped as a whole when Ray is not installed (``pip install 'ncii-hash[distributed]'``).
"""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from ncii_hash import HashIndex, to_hex  # noqa: E402
from ncii_hash.bank import HashBank  # noqa: E402
from ncii_hash.scale.backfill import backfill  # noqa: E402
from ncii_hash.scale.sharded import (  # noqa: E402
    ShardedIndex,
    ShardUnavailableError,
    merge_range_results,
    shard_of,
)

SHARD_OPTIONS = {"num_cpus": 0.25}  # leaves CPUs for the Ray Data matchers on a 2-core runner


@pytest.fixture(scope="session")
def local_ray():
    if ray.is_initialized():  # pragma: no cover - another test started it
        yield ray
        return
    ray.init(num_cpus=2, object_store_memory=300 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    ray.shutdown()


def random_hashes(rng, n):
    return rng.integers(0, 256, size=(n, 32), dtype=np.uint8)


def flip_bits(rng, centre, n, max_flips):
    """``n`` copies of ``centre`` with 0..max_flips random bits flipped each."""
    bits = np.unpackbits(np.broadcast_to(centre, (n, 32)), axis=1)
    for row in bits:
        k = rng.integers(0, max_flips + 1)
        row[rng.choice(256, size=k, replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def clustered(rng, centres, per_centre, max_flips=24):
    c = random_hashes(rng, centres)
    return np.concatenate([flip_bits(rng, c[i], per_centre, max_flips) for i in range(centres)]), c


def assert_same(a, b):
    np.testing.assert_array_equal(a.lims, b.lims)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)
    if b.variants is None:
        assert a.variants is None
    else:
        np.testing.assert_array_equal(a.variants, b.variants)
    assert a.ids.dtype == np.int64 and a.distances.dtype == np.int32 and a.lims.dtype == np.int64


@pytest.fixture(scope="module")
def clustered_pair(local_ray):
    """A 3-shard index and the single-index oracle over the same clustered + random data."""
    rng = np.random.default_rng(101)
    dense, centres = clustered(rng, centres=6, per_centre=300)
    codes = np.concatenate([dense, random_hashes(rng, 1500)])
    ids = rng.permutation(10 * codes.shape[0])[: codes.shape[0]].astype(np.int64)  # sparse, unordered
    single = HashIndex()
    single.add(codes, ids)
    sharded = ShardedIndex(shards=3, actor_options=SHARD_OPTIONS)
    sharded.add(codes[:2000], ids[:2000])
    sharded.add(codes[2000:], ids[2000:])  # two batches: ids interleave within shards
    yield sharded, single, codes, ids, centres
    sharded.close()


# ---------------------------------------------------------------------- routing and merge
def test_routing_is_stable_known_answers_and_balanced():
    # a scalar reference of the documented function (Python ints, masked to 64 bits)
    def reference(i, k):
        m = (1 << 64) - 1
        z = (i + 0x9E3779B97F4A7C15) & m
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        return (z ^ (z >> 31)) % k
    sample = [0, 1, 2, 3, 12345, 2**40 + 7, 2**63 - 1]
    for k in (1, 2, 3, 7, 64):
        assert shard_of(sample, k).tolist() == [reference(i, k) for i in sample]
    counts = np.bincount(shard_of(np.arange(100_000), 4), minlength=4)
    assert counts.min() > 24_000  # sequential ids spread evenly


def test_merge_of_disjoint_parts_orders_by_distance_then_id():
    a = (np.array([0, 2, 2]), np.array([9, 4]), np.array([3, 5], np.int32), None)
    b = (np.array([0, 1, 1]), np.array([1]), np.array([3], np.int32), np.zeros(0, np.int8))
    r = merge_range_results([a, b], 2, False)
    assert r.lims.tolist() == [0, 3, 3] and r.ids.tolist() == [1, 9, 4] and r.distances.tolist() == [3, 3, 5]


# ---------------------------------------------------------------------- exact equality
def test_range_search_equals_single_index_on_clustered_data(clustered_pair):
    sharded, single, codes, ids, centres = clustered_pair
    rng = np.random.default_rng(7)
    queries = np.concatenate([centres, flip_bits(rng, centres[0], 20, 10), random_hashes(rng, 30), codes[:50]])
    for radius in (0, 8, 31, 60):
        expected = single.range_search(queries, radius)
        got = sharded.range_search(queries, radius)
        assert_same(got, expected)
    assert single.range_search(centres, 31).num_matches > 1000  # the clustered case really has many hits
    assert len(sharded) == len(single) and sharded.ids.tolist() == single.ids.tolist()


def test_dihedral_search_equals_single_index(clustered_pair):
    sharded, single, codes, _, _ = clustered_pair
    rng = np.random.default_rng(8)
    sets = np.stack([codes[rng.choice(codes.shape[0], 8, replace=False)] for _ in range(25)])  # (25, 8, 32)
    expected = single.range_search(sets, 31, dihedral=True)
    got = sharded.range_search(sets, 31, dihedral=True)
    assert got.variants is not None and (got.variants > 0).any()
    assert_same(got, expected)


def test_random_data_and_empty_results(local_ray):
    rng = np.random.default_rng(202)
    codes = random_hashes(rng, 3000)
    single = HashIndex()
    single.add(codes, np.arange(3000))
    with ShardedIndex(shards=2, actor_options=SHARD_OPTIONS) as sharded:
        sharded.add(codes, np.arange(3000))
        queries = np.concatenate([codes[::100], random_hashes(rng, 40)])
        assert_same(sharded.range_search(queries, 31), single.range_search(queries, 31))
        assert_same(sharded.range_search(queries, 100), single.range_search(queries, 100))
        empty = sharded.range_search(np.zeros((0, 32), np.uint8))
        assert empty.lims.tolist() == [0] and empty.ids.size == 0
        with pytest.raises(ValueError, match="already in the index"):
            sharded.add(codes[:2], [5, 999_999])
        assert 999_999 not in sharded.ids  # nothing of a refused batch was added
        with pytest.raises(ValueError, match="dihedral"):
            sharded.range_search(np.zeros((2, 8, 32), np.uint8))


def test_removal_across_shards(clustered_pair):
    sharded, single, codes, ids, centres = clustered_pair
    victims = ids[::7]
    assert len(set(shard_of(victims, 3).tolist())) == 3  # the removal touches every shard
    assert sharded.remove(np.concatenate([victims, [10**12]])) == victims.size  # unknown ids ignored
    single.remove(victims)
    assert_same(sharded.range_search(centres, 31), single.range_search(centres, 31))
    assert not np.isin(victims, sharded.range_search(codes, 31).ids).any()
    assert sharded.remove(victims) == 0
    sharded.add(codes[::7][:10], victims[:10])  # ids can come back after removal
    single.add(codes[::7][:10], victims[:10])
    assert_same(sharded.range_search(centres, 31), single.range_search(centres, 31))


# ---------------------------------------------------------------------- failures
def test_killed_actor_is_restarted_from_snapshot_and_log(local_ray, tmp_path):
    rng = np.random.default_rng(303)
    codes = random_hashes(rng, 2000)
    # a small wal_bytes forces a snapshot mid-way, so recovery uses snapshot + log
    sharded = ShardedIndex(shards=2, snapshot_dir=tmp_path, actor_options=SHARD_OPTIONS, wal_bytes=20_000)
    try:
        sharded.add(codes[:1000], np.arange(1000))
        sharded.add(codes[1000:], np.arange(1000, 2000))
        sharded.remove(np.arange(0, 2000, 3))
        oracle = HashIndex()
        oracle.add(codes, np.arange(2000))
        oracle.remove(np.arange(0, 2000, 3))
        before = sharded.shard_info()
        assert list(tmp_path.glob("shard-*.idx"))  # a snapshot exists
        ray.kill(sharded.actor(1), no_restart=True)
        got = sharded.range_search(codes[::5], 31)  # meets the dead shard, restarts it, retries
        assert_same(got, oracle.range_search(codes[::5], 31))
        after = sharded.shard_info()
        assert after[1]["pid"] != before[1]["pid"] and after[1]["size"] == before[1]["size"]
        assert after[0]["pid"] == before[0]["pid"]
        assert after[1]["replayed_records"] >= 1  # the log since the snapshot was replayed

        ray.kill(sharded.actor(0), no_restart=True)  # a write also recovers
        sharded.add(codes[:1], [5000])
        oracle.add(codes[:1], [5000])
        assert_same(sharded.range_search(codes[:20], 31), oracle.range_search(codes[:20], 31))
    finally:
        sharded.close()
    # the whole set of actors can go: a new ShardedIndex over the same folder restores the data
    reopened = ShardedIndex(shards=2, snapshot_dir=tmp_path, actor_options=SHARD_OPTIONS)
    try:
        assert_same(reopened.range_search(codes[::5], 31), oracle.range_search(codes[::5], 31))
        with pytest.raises(ValueError, match="same shards"):
            ShardedIndex(shards=3, snapshot_dir=tmp_path, actor_options=SHARD_OPTIONS)
    finally:
        reopened.close()


def test_unrecoverable_shard_fails_loudly(local_ray, tmp_path):
    sharded = ShardedIndex(shards=2, snapshot_dir=tmp_path, actor_options=SHARD_OPTIONS, max_retries=1)
    try:
        sharded.add(np.zeros((4, 32), np.uint8), np.arange(4))
        sharded.snapshot()
        (tmp_path / "shard-0001-of-0002.idx").write_bytes(b"garbage")  # the shard's durable state is corrupt
        ray.kill(sharded.actor(1), no_restart=True)
        with pytest.raises(ShardUnavailableError, match="shard 1"):
            sharded.range_search(np.zeros((1, 32), np.uint8))
    finally:
        sharded.close()


# ---------------------------------------------------------------------- backfill
def write_catalogue(path, ids, codes, hex_hashes=False, row_group_size=None):
    col = pa.array([to_hex(c) for c in codes]) if hex_hashes else pa.array([c.tobytes() for c in codes], pa.binary())
    pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "hash": col}), path, row_group_size=row_group_size)


def read_matches(out):
    t = pq.read_table(out)
    return sorted(zip(*(t.column(c).to_pylist() for c in ("catalogue_id", "hash_id", "distance"))))


@pytest.fixture(scope="module")
def catalogue_setup(local_ray, tmp_path_factory):
    rng = np.random.default_rng(404)
    root = tmp_path_factory.mktemp("backfill")
    banked, centres = clustered(rng, centres=5, per_centre=40, max_flips=10)
    uploads = np.concatenate([flip_bits(rng, centres[i % 5], 1, 12) for i in range(150)] + [random_hashes(rng, 450)])
    order = rng.permutation(uploads.shape[0])
    uploads = uploads[order]
    cat_ids = np.arange(uploads.shape[0], dtype=np.int64) * 3 + 100
    folder = root / "catalogue"
    folder.mkdir()
    write_catalogue(folder / "a.parquet", cat_ids[:350], uploads[:350], row_group_size=100)
    write_catalogue(folder / "b.parquet", cat_ids[350:], uploads[350:], hex_hashes=True)
    index = HashIndex()
    index.add(banked, np.arange(banked.shape[0]) + 10_000)
    res = index.range_search(uploads, 31)
    expected = sorted(zip(np.repeat(cat_ids, np.diff(res.lims)).tolist(), res.ids.tolist(), res.distances.tolist()))
    assert len(expected) > 150
    return root, folder, index, banked, expected


def test_backfill_against_index_and_resume(catalogue_setup):
    root, folder, index, _, expected = catalogue_setup
    out = root / "out-index"
    report = backfill(folder, index, out, rows_per_partition=128, num_cpus=0.5)
    assert (report.partitions, report.processed, report.skipped, report.rows) == (5, 5, 0, 600)  # 350 rows -> 3 partitions, 250 -> 2
    assert report.matches == len(expected) and report.invalid_rows == 0
    assert read_matches(out) == expected
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in out.glob("part-*.parquet"))

    # an interruption lost two partitions: the rerun redoes only those, with the same result
    (out / "part-000001.parquet").unlink()
    (out / "part-000004.parquet").unlink()
    again = backfill(folder, index, out, rows_per_partition=128, num_cpus=0.5)
    assert (again.processed, again.skipped) == (2, 3)
    assert read_matches(out) == expected
    with pytest.raises(ValueError, match="another catalogue or with other settings"):
        backfill(folder, index, out, rows_per_partition=64)


def test_backfill_against_bank_and_sharded_index(catalogue_setup, tmp_path):
    root, folder, index, banked, expected = catalogue_setup
    with HashBank(tmp_path / "bank.db") as bank:
        case = bank.add_case(banked, np.full(banked.shape[0], 90), case_id="case-1")
        hash_ids = bank._index.ids  # bank hash ids in insertion order
    remap = dict(zip((np.arange(banked.shape[0]) + 10_000).tolist(), hash_ids.tolist()))
    out = tmp_path / "out-bank"
    report = backfill(folder, str(tmp_path / "bank.db"), out, rows_per_partition=300, num_cpus=0.5)
    assert report.matches == len(expected)
    t = pq.read_table(out)
    assert set(t.column("case_id").to_pylist()) == {case}
    assert read_matches(out) == sorted((c, remap[h], d) for c, h, d in expected)

    with ShardedIndex(shards=2, actor_options=SHARD_OPTIONS) as sharded:
        sharded.add(banked, np.arange(banked.shape[0]) + 10_000)
        out2 = tmp_path / "out-sharded"
        backfill(folder, sharded, out2, rows_per_partition=200, num_cpus=0.5)
        assert read_matches(out2) == expected


def test_backfill_bad_inputs(local_ray, tmp_path):
    index = HashIndex()
    with pytest.raises(FileNotFoundError):
        backfill(tmp_path / "missing", index, tmp_path / "o")
    pq.write_table(pa.table({"id": [1], "pdq": ["00"]}), tmp_path / "c.parquet")
    with pytest.raises(ValueError, match="columns 'id'"):
        backfill(tmp_path / "c.parquet", index, tmp_path / "o")
    # bad hashes are counted and skipped, the rest of the partition goes on
    good = np.full(32, 7, np.uint8)
    pq.write_table(pa.table({"id": pa.array([1, 2, 3, 4], pa.int64()),
                             "hash": pa.array([good.tobytes(), b"short", None, good.tobytes()], pa.binary())}),
                   tmp_path / "d.parquet")
    index.add(good[None], [77])
    report = backfill(tmp_path / "d.parquet", index, tmp_path / "o2", num_cpus=0.5)
    assert report.invalid_rows == 2 and report.matches == 2
    assert read_matches(tmp_path / "o2") == [(1, 77, 0), (4, 77, 0)]
    with pytest.raises(TypeError, match="bank must be"):
        backfill(tmp_path / "d.parquet", object(), tmp_path / "o3")


def test_import_ncii_hash_does_not_import_ray():
    import subprocess
    import sys

    code = "import sys, ncii_hash; ncii_hash.ShardedIndex; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
