"""One shard of a :class:`~.sharded.ShardedIndex`: a HashIndex with its snapshot file and its
write-ahead log, run as a Ray actor (one method at a time, so it needs no lock).

Log records, little-endian: magic ``b"NCW1"``, op (1 add, 2 remove), count (u64), CRC-32 of
the payload (u32), then the payload: ``count`` int64 ids, and for adds ``count`` 32-byte codes.
A torn tail (a call that never returned) is dropped on replay; replay is idempotent.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from .._util.files import open_private
from ..hashes import PDQ_HASH_BYTES
from ..index import HashIndex

_WAL_HEADER = struct.Struct("<4sBQI")  # magic, op, count, crc32 of the payload
_WAL_MAGIC = b"NCW1"
_OP_ADD, _OP_REMOVE = 1, 2


class Shard:
    """One shard: a HashIndex, its snapshot file and its write-ahead log. Runs as a Ray actor
    (one method at a time), so it needs no lock of its own."""

    def __init__(self, number: int, shards: int, folder: str, backend: str, wal_bytes: int) -> None:
        self.number = number
        base = Path(folder) / f"shard-{number:04d}-of-{shards:04d}"
        self.snapshot_path, self.wal_path = base.with_suffix(".idx"), base.with_suffix(".wal")
        self.wal_bytes = wal_bytes
        self.index = HashIndex.load(self.snapshot_path, mmap=True) if self.snapshot_path.exists() else HashIndex(backend)
        self.replayed = self._replay()
        self.wal_fd = open_private(self.wal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def _replay(self) -> int:
        """Apply the logged mutations since the snapshot; drop a torn tail (its call never
        returned). Replay is idempotent: a snapshot may already contain the whole log."""
        if not self.wal_path.exists():
            return 0
        data, pos, records = self.wal_path.read_bytes(), 0, 0
        while pos + _WAL_HEADER.size <= len(data):
            magic, op, n, crc = _WAL_HEADER.unpack_from(data, pos)
            size = n * 8 + (n * PDQ_HASH_BYTES if op == _OP_ADD else 0)
            payload = data[pos + _WAL_HEADER.size : pos + _WAL_HEADER.size + size]
            if magic != _WAL_MAGIC or op not in (_OP_ADD, _OP_REMOVE) or len(payload) != size or zlib.crc32(payload) != crc:
                break
            ids = np.frombuffer(payload, dtype="<i8", count=n).astype(np.int64)
            if op == _OP_ADD:
                codes = np.frombuffer(payload, dtype=np.uint8, offset=n * 8).reshape(n, PDQ_HASH_BYTES)
                fresh = ~self._present(ids)
                self.index.add(codes[fresh], ids[fresh])
            else:
                self.index.remove(ids)
            pos += _WAL_HEADER.size + size
            records += 1
        if pos != len(data):
            with open(self.wal_path, "r+b") as f:
                f.truncate(pos)
                os.fsync(f.fileno())
        return records

    def _log(self, op: int, ids: np.ndarray, codes: Optional[np.ndarray] = None) -> None:
        payload = ids.astype("<i8").tobytes() + (codes.tobytes() if codes is not None else b"")
        os.write(self.wal_fd, _WAL_HEADER.pack(_WAL_MAGIC, op, ids.shape[0], zlib.crc32(payload)) + payload)
        os.fsync(self.wal_fd)
        if os.fstat(self.wal_fd).st_size > self.wal_bytes:
            self.snapshot()

    def snapshot(self) -> int:
        """Fold the log into the snapshot (atomic rename), then empty the log."""
        self.index.save(self.snapshot_path)
        os.ftruncate(self.wal_fd, 0)
        os.fsync(self.wal_fd)
        return len(self.index)

    def _present(self, ids: np.ndarray) -> np.ndarray:
        if ids.size * 64 < len(self.index):  # a few ids: binary searches, no copy of the shard's ids
            return np.fromiter((int(x) in self.index for x in ids), dtype=bool, count=ids.size)
        return np.isin(ids, self.index.ids)

    def check_absent(self, ids: np.ndarray) -> list:
        return [int(x) for x in ids[self._present(ids)][:5]]

    def count_present(self, ids: np.ndarray) -> int:
        return int(self._present(np.unique(ids)).sum())

    def add(self, hashes: np.ndarray, ids: np.ndarray, retry: bool) -> int:
        if retry:  # an earlier attempt may have been logged before the actor died
            fresh = ~self._present(ids)
            hashes, ids = hashes[fresh], ids[fresh]
        if ids.size:
            self.index.add(hashes, ids)  # validates before changing anything
            self._log(_OP_ADD, ids, hashes)
        return int(ids.size)

    def remove(self, ids: np.ndarray) -> int:
        removed = self.index.remove(ids)
        if removed:
            self._log(_OP_REMOVE, ids)
        return removed

    def range_search(self, queries: np.ndarray, radius: int, dihedral: bool, threads: int) -> tuple:
        r = self.index.range_search(queries, radius, dihedral=dihedral, threads=threads)
        return r.lims, r.ids, r.distances, r.variants

    def info(self) -> dict:
        return {"shard": self.number, "size": len(self.index), "replayed_records": self.replayed, "pid": os.getpid()}

    def ids(self) -> np.ndarray:
        return self.index.ids


_ACTOR_CLASS = None
