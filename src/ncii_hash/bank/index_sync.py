"""HashBank's index lifecycle: the in-memory HashIndex is derived from the ``hashes`` table,
saved as a checksummed snapshot named by the bank's change sequence, loaded and caught up from
the change log on open (any process's writes), or rebuilt from the table. Mixed into
:class:`ncii_hash.bank.HashBank`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from .._util.files import unlink_if_exists
from .schema import codes_from_blobs
from ..index.hash_index import HashIndex


class BankIndexMixin:
    """Uses HashBank's ``path``, ``_db``, ``_lock``, ``_db_seq``, ``_backend``,
    ``_snapshot_enabled`` and ``_drop_feature_snapshots``; owns ``_index``, ``_seq`` and
    ``index_source``."""

    path: Path
    _db: Any
    _lock: Any
    _backend: str
    _snapshot_enabled: bool
    _index: Any
    _seq: int
    index_source: str

    def _snapshot_path(self, seq: int) -> Path:
        return self.path.with_name(f"{self.path.name}.idx.{seq}")

    def _snapshots(self) -> list:
        prefix = self.path.name + ".idx."
        out = []
        for p in self.path.parent.iterdir():
            if p.name.startswith(prefix) and p.name[len(prefix):].isdigit():
                out.append(p)
        return out

    def _open_index(self) -> None:
        """Load the newest snapshot not ahead of the bank and apply the changes since; a
        missing, corrupt or inconsistent snapshot means a rebuild from the table."""
        seq = self._db_seq()
        candidates = []
        if self._snapshot_enabled:
            for p in self._snapshots():
                s = int(p.name.rsplit(".", 1)[1])
                if s <= seq:
                    candidates.append((s, p))
        for s, snap in sorted(candidates, reverse=True):
            try:
                index = HashIndex.load(snap, mmap=False)
            except (ValueError, OSError):
                continue  # corrupt or foreign: try an older one, else rebuild
            self._index, self._seq = index, s
            try:
                self._catch_up()
                count = self._db.execute("SELECT COUNT(*) FROM hashes").fetchone()[0]
                if len(self._index) == count:
                    self.index_source = "snapshot"
                    return
            except (ValueError, KeyError):
                pass
            break
        self._rebuild()

    def _rebuild(self) -> None:
        self._db.execute("BEGIN")
        try:
            seq = self._db_seq()
            rows = self._db.execute("SELECT hash_id, hash FROM hashes ORDER BY hash_id").fetchall()
        finally:
            self._db.execute("COMMIT")
        index = HashIndex(backend=self._backend)
        if rows:
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            codes = codes_from_blobs(r[1] for r in rows)
            index.add(codes, ids)
        self._index, self._seq = index, seq
        self.index_source = "rebuilt" if rows else "empty"

    def _catch_up(self) -> None:
        """Apply changes committed (by any process) since our index's sequence."""
        seq = self._db_seq()
        if seq == self._seq:
            return
        if seq < self._seq:  # the file was replaced under us
            self._rebuild()
            return
        self._db.execute("BEGIN")
        try:
            seq = self._db_seq()
            removed = self._db.execute(
                "SELECT hash_ids FROM changes WHERE op='withdraw' AND seq > ? AND seq <= ?", (self._seq, seq)
            ).fetchall()
            added = self._db.execute(
                "SELECT hash_id, hash FROM hashes WHERE seq > ? AND seq <= ? ORDER BY hash_id", (self._seq, seq)
            ).fetchall()
        finally:
            self._db.execute("COMMIT")
        for (blob,) in removed:
            ids = np.frombuffer(blob, dtype="<i8")
            if ids.size:
                self._index.remove(ids)
        if added:
            ids = np.fromiter((r[0] for r in added), dtype=np.int64, count=len(added))
            codes = codes_from_blobs(r[1] for r in added)
            self._index.add(codes, ids)
        self._seq = seq

    def save_snapshot(self) -> Optional[Path]:
        """Save the index next to the bank so the next open skips the rebuild."""
        if not self._snapshot_enabled:
            return None
        with self._lock:
            self._catch_up()
            path = self._snapshot_path(self._seq)
            self._index.save(path)
            for old in self._snapshots():
                if old != path:
                    unlink_if_exists(old)
            return path

    def _drop_snapshots(self) -> None:
        self._drop_feature_snapshots()
        for p in self._snapshots():
            unlink_if_exists(p)
        # Temp files a crash during save_snapshot may have left behind hold hashes too.
        for p in self.path.parent.glob(f".{self.path.name}.idx.*.tmp"):
            unlink_if_exists(p)
