"""The checksummed container (ncii_hash._util.container) and HashIndex's bytes form: pickling
round-trips for every backend, the bytes are the file, damage is refused, old files still load."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from ncii_hash import HashIndex
from ncii_hash._util.container import ContainerKind, container_bytes, parse_container, read_container, write_container
from ncii_hash.errors import IndexFileError
from ncii_hash.index.file import KIND

from index_helpers import ALL_BACKENDS, as_pairs, bank, flip

LEGACY = Path(__file__).parent / "data" / "legacy"
TEST_KIND = ContainerKind(b"NCIITEST", 3, "a test container", "make it again")


# ---- the container ------------------------------------------------------------------------
def _arrays(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "a": rng.integers(0, 256, (7, 32), dtype=np.uint8),
        "b": rng.integers(-(2**62), 2**62, 5, dtype=np.int64),
        "empty": np.zeros((0, 4), np.uint16),
        "f": rng.random((3, 3, 3)).astype(np.float32),
        "odd": rng.integers(0, 2**31, 13, dtype=np.uint32),
    }


@pytest.mark.parametrize("mmap", [True, False])
def test_container_round_trip_aligned_and_private(tmp_path, mmap):
    arrays, meta = _arrays(1), {"x": 1, "nested": {"y": [1, 2]}}
    path = tmp_path / "c.bin"
    write_container(path, TEST_KIND, arrays, meta)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert path.read_bytes() == container_bytes(TEST_KIND, arrays, meta)
    box = read_container(path, TEST_KIND, mmap=mmap)
    assert box.meta == meta and list(box.arrays) == list(arrays)
    for name, a in arrays.items():
        got = box.arrays[name]
        assert got.dtype == a.dtype and np.array_equal(got, a)
        assert got.ctypes.data % 64 == 0 or got.size == 0  # 64-byte aligned, in a mapping and in memory
        assert got.flags.writeable == (not mmap)
    from_bytes = parse_container(path.read_bytes(), TEST_KIND, "mem")
    assert all(np.array_equal(from_bytes.arrays[n], a) for n, a in arrays.items())


def test_container_refuses_damage_foreign_and_newer_files(tmp_path):
    data = container_bytes(TEST_KIND, _arrays(2), {"k": "v"})
    for pos in range(0, len(data), 7):  # every flipped byte (sampled) is caught before use
        bad = bytearray(data)
        bad[pos] ^= 0x10
        with pytest.raises(IndexFileError, match="mem"):
            parse_container(bytes(bad), TEST_KIND, "mem")
    for cut in (0, 5, 12, 19, 20, 64, len(data) - 32, len(data) - 1):
        with pytest.raises(IndexFileError, match="truncated|bad magic"):
            parse_container(data[:cut], TEST_KIND, "mem")
    with pytest.raises(IndexFileError, match="truncated or corrupt"):
        parse_container(data + b"\0" * 64, TEST_KIND, "mem")
    with pytest.raises(IndexFileError, match="not a test container.*make it again"):
        parse_container(b"PK\x03\x04" + data[4:], TEST_KIND, "mem")
    newer = ContainerKind(TEST_KIND.magic, 4, TEST_KIND.what, TEST_KIND.rebuild)
    with pytest.raises(IndexFileError, match="version 4 is not supported .*newer.*reads version 3"):
        parse_container(container_bytes(newer, {}, {}), TEST_KIND, "mem")
    assert issubclass(IndexFileError, ValueError)


def test_old_feature_index_file_is_a_version_1_container():
    from ncii_hash.features.index import _KIND as FEATURE_KIND  # the kind, read by the container reader

    box = read_container(LEGACY / "feature-index-v1.fidx", FEATURE_KIND, mmap=True)
    assert set(box.arrays) == {"records", "counts", "frames", "ids", "positions", "offsets", "postings"}
    assert box.meta == {}
    assert container_bytes(FEATURE_KIND, box.arrays, {}) == (LEGACY / "feature-index-v1.fidx").read_bytes()


# ---- the bytes form and pickling ------------------------------------------------------------
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_pickle_round_trips_every_backend_exactly(backend):
    codes, rng = bank(21, 1200, dups=200)
    index = HashIndex(backend, compact_fraction=0.5, hnsw_k=48, ivf_nprobe=8)
    index.add(codes, ids=rng.permutation(50_000)[: len(codes)])
    index.remove(index.ids[::9])
    again = pickle.loads(pickle.dumps(index))
    assert type(again) is HashIndex and again.backend == backend
    assert again._options == index._options and again._compact_fraction == 0.5
    assert np.array_equal(again.ids, index.ids) and len(again) == len(index)
    queries = np.stack([flip(rng, codes[i], int(rng.integers(0, 20))) for i in range(0, 1400, 17)])
    for radius in (0, 16, 31):
        a, b = index.range_search(queries, radius), again.range_search(queries, radius)
        assert np.array_equal(a.lims, b.lims) and np.array_equal(a.ids, b.ids)
        assert np.array_equal(a.distances, b.distances)
    sets = np.stack([np.stack([flip(rng, codes[i], 3 * v) for v in range(8)]) for i in range(0, 1400, 140)])
    a, b = index.range_search(sets, dihedral=True), again.range_search(sets, dihedral=True)
    assert as_pairs(a) == as_pairs(b) and np.array_equal(a.variants, b.variants)
    if backend in ("flat", "faiss-flat"):
        assert np.array_equal(index.knn(queries, 4).distances, again.knn(queries, 4).distances)
    # Fresh ids continue where the original's would; the copy is independent and writable.
    assert again.add(codes[:2]).tolist() == index.add(codes[:2]).tolist()
    again.remove(again.ids[:5])
    assert len(again) == len(index) - 5


def test_bytes_form_is_the_file_and_is_checked(tmp_path):
    codes, _ = bank(22, 300)
    index = HashIndex()
    index.add(codes, ids=np.arange(300) * 3)
    index.remove([0, 3])
    data = index.to_bytes()
    index.save(tmp_path / "x.idx")
    assert (tmp_path / "x.idx").read_bytes() == data
    assert HashIndex.from_bytes(bytearray(data)).ids.tolist() == index.ids.tolist()
    mapped = HashIndex.from_bytes(memoryview(data))
    assert mapped.add(codes[:1]).tolist() == [898]  # read-only bytes: rows are copied before a write
    assert HashIndex.from_bytes(data).ids.tolist() == index.ids.tolist()  # the bytes were not written through
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 4
    with pytest.raises(IndexFileError, match="HashIndex bytes.*checksum"):
        HashIndex.from_bytes(bytes(bad))
    with pytest.raises(TypeError, match="to_bytes"):
        HashIndex.from_bytes("not bytes")  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(HashIndex())).ids.tolist() == []


# ---- HashIndex files: version 2 (container) and version 1 ----------------------------------
def _forge(path: Path, meta: dict, *, codes=None, ids=None, arrays=None) -> Path:
    arrays = arrays if arrays is not None else {"codes": codes if codes is not None else np.zeros((0, 32), np.uint8),
                                                "ids": ids if ids is not None else np.zeros(0, np.int64)}
    write_container(path, KIND, arrays, meta)
    return path


_SETTINGS = {"backend": "flat", "compact_fraction": 0.25,
             "options": {"ivf_nlist": None, "ivf_nprobe": 16, "hnsw_m": 32, "hnsw_ef_search": 128, "hnsw_k": 64}}


@pytest.mark.parametrize("meta, arrays, pattern", [
    ({**_SETTINGS, "next_id": 2**63 + 1}, None, "does not fit in int64"),
    ({**_SETTINGS, "next_id": True}, None, "wrong type"),
    ({**_SETTINGS, "next_id": -1}, None, "wrong type"),
    (_SETTINGS, None, "wrong type"),  # no next id
    ({**_SETTINGS, "next_id": 0, "backend": "annoy"}, None, "no known backend"),
    ({**_SETTINGS, "next_id": 0, "options": [1, 2]}, None, "metadata is invalid"),
    ({**_SETTINGS, "next_id": 0, "compact_fraction": "x"}, None, "metadata is invalid"),
    ({**_SETTINGS, "next_id": 5}, {"codes": np.zeros((2, 32), np.uint8), "ids": np.array([3, 1])}, "increasing"),
    ({**_SETTINGS, "next_id": 5}, {"codes": np.zeros((2, 32), np.uint8), "ids": np.array([1, 3], np.int32)},
     "wrong type"),
    ({**_SETTINGS, "next_id": 5}, {"codes": np.zeros((2, 16), np.uint8), "ids": np.array([1, 3])}, "wrong type"),
    ({**_SETTINGS, "next_id": 5}, {"codes": np.zeros((2, 32), np.uint8)}, "not codes and ids"),
])
def test_hostile_index_files_are_refused_by_name(tmp_path, meta, arrays, pattern):
    path = _forge(tmp_path / "bad.idx", meta, arrays=arrays)
    for mmap in (True, False):
        with pytest.raises(IndexFileError, match=pattern) as info:
            HashIndex.load(path, mmap=mmap)
        assert str(path) in str(info.value)


def test_a_version_1_file_loads_and_is_saved_as_version_2(tmp_path):
    exp = json.loads((LEGACY / "expected.json").read_text())["index"]
    old = tmp_path / "old.idx"
    shutil.copy(LEGACY / "index-v1.idx", old)
    index = HashIndex.load(old)
    assert old.read_bytes()[8:12] == (1).to_bytes(4, "little")
    index.save(tmp_path / "new.idx")
    assert (tmp_path / "new.idx").read_bytes()[:12] == KIND.magic + (2).to_bytes(4, "little")
    again = HashIndex.load(tmp_path / "new.idx")
    from ncii_hash import from_hex

    r = again.range_search(from_hex(exp["queries"]), 31)
    assert r.lims.tolist() == exp["lims"] and r.ids.tolist() == exp["ids"]
    assert again.add(np.zeros((1, 32), np.uint8)).tolist() == index.add(np.zeros((1, 32), np.uint8)).tolist()
