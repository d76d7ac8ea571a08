"""HashIndex files: save/load round trips, atomic owner-only replacement, damage refused."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ncii_hash import HashIndex

from index_helpers import as_pairs, bank, needs_faiss


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
