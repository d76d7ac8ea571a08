"""The bank's hash index: an in-memory :class:`~ncii_hash.index.HashIndex` derived from the
``hashes`` table and kept in step with it.

On open it loads the newest snapshot not ahead of the bank and applies the change log since
(any process's writes: new hashes in, withdrawn hashes out); a missing, corrupt or
inconsistent snapshot means a rebuild from the table. Applying another process's withdrawal
deletes this index's snapshots (none may hold a withdrawn hash). The bank's own writes are applied
directly when the index was current, else the index catches up from the log. ``seq`` is the
change sequence the index reflects; ``source`` says where it came from.

Not thread-safe by itself: the bank calls it under its lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..index.hash_index import DEFAULT_BACKEND, HashIndex
from .db import Database, Write
from .records import codes_from_blobs
from ..submission import SHARED_WINDOWS
from .snapshots import SnapshotFiles, window_snapshot_kind


@dataclass(frozen=True)
class IndexedRows:
    """The rows an index holds: every ``hash_id, hash`` of ``table`` meeting ``condition`` (a
    fixed SQL condition, never user text), snapshots saved as ``kind``. Rows are keyed by
    ``hash_id``; the change log's withdrawals name those ids."""

    table: str = "hashes"
    condition: str = "1=1"
    kind: str = "idx"

    @classmethod
    def window(cls, name: str) -> "IndexedRows":
        """One shared window's hashes (``windows`` rows, keyed by their image's hash id)."""
        if name not in SHARED_WINDOWS:
            raise ValueError(f"unknown window {name!r}")
        return cls("windows", f"window_name='{name}'", window_snapshot_kind(name))

    def select(self, where: str = "") -> str:
        extra = f" AND {where}" if where else ""
        return f"SELECT hash_id, hash FROM {self.table} WHERE {self.condition}{extra} ORDER BY hash_id"

    def count(self) -> str:
        return f"SELECT COUNT(*) FROM {self.table} WHERE {self.condition}"


WHOLE_PICTURES = IndexedRows()


class IndexSync:
    """Owns the HashIndex, the sequence it reflects and where it came from (``source``:
    ``"snapshot"``, ``"rebuilt"`` or ``"empty"``); ``rows`` says which rows it indexes (every
    hash of the ``hashes`` table by default, or one shared window's)."""

    def __init__(self, db: Database, *, backend: str = DEFAULT_BACKEND, snapshots: bool = True,
                 snapshot_base: Optional[Path] = None, rows: IndexedRows = WHOLE_PICTURES):
        self.db = db
        self.backend = backend
        self.rows = rows
        # next to the bank file, or (a bank in a database server) under a directory of this host
        self.snapshots = SnapshotFiles(snapshot_base if snapshot_base is not None else db.path, rows.kind)
        self.use_snapshots = snapshots
        self.index = HashIndex(backend=backend)
        self.seq = 0
        self.source = "empty"

    def __len__(self) -> int:
        return len(self.index)

    def open(self) -> None:
        """Load the newest usable snapshot and catch up, else rebuild from the table."""
        if self.use_snapshots:
            for s, snap in self.snapshots.not_ahead_of(self.db.seq()):
                try:
                    index = HashIndex.load(snap, mmap=False)
                except (ValueError, OSError):
                    continue  # corrupt or foreign: try an older one, else rebuild
                self.index, self.seq = index, s
                try:
                    self.catch_up()
                    count = self.db.execute(self.rows.count()).fetchone()[0]
                    if len(self.index) == count:
                        self.source = "snapshot"
                        return
                except (ValueError, KeyError):
                    pass
                break
        self.rebuild()

    def rebuild(self) -> None:
        """A fresh index from the whole table."""
        with self.db.read() as seq:
            rows = self.db.execute(self.rows.select()).fetchall()
        index = HashIndex(backend=self.backend)
        if rows:
            index.add(codes_from_blobs(r[1] for r in rows),
                      np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
        self.index, self.seq = index, seq
        self.source = "rebuilt" if rows else "empty"

    def catch_up(self) -> None:
        """Apply the changes committed (by any process) since ``seq``."""
        seq = self.db.seq()
        if seq == self.seq:
            return
        if seq < self.seq:  # the file was replaced under us
            self.rebuild()
            return
        with self.db.read() as seq:
            removed = self.db.execute(
                "SELECT hash_ids FROM changes WHERE op='withdraw' AND seq > ? AND seq <= ?", (self.seq, seq)
            ).fetchall()
            added = self.db.execute(self.rows.select("seq > ? AND seq <= ?"), (self.seq, seq)).fetchall()
        for (blob,) in removed:
            ids = np.frombuffer(blob, dtype="<i8")
            if ids.size:
                self.index.remove(ids)
        if removed and self.use_snapshots:
            # Another process withdrew: no snapshot older than that may stay (a bank file's were
            # deleted by the withdrawing process; a server bank's live on each matcher's host).
            self.snapshots.drop_all()
        if added:
            self.index.add(codes_from_blobs(r[1] for r in added),
                           np.fromiter((r[0] for r in added), dtype=np.int64, count=len(added)))
        self.seq = seq

    def disagreement(self) -> Optional[str]:
        """Caught up, how the index differs from the table (None when they agree exactly)."""
        self.catch_up()
        rows = self.db.execute(self.rows.select()).fetchall()
        if len(self.index) != len(rows):
            return f"the index holds {len(self.index)} hashes, the table {len(rows)}"
        if not rows:
            return None
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        res = self.index.range_search(codes_from_blobs(r[1] for r in rows), 0)
        for i in range(len(rows)):
            if ids[i] not in res.ids[res.lims[i]:res.lims[i + 1]]:
                return f"hash id {int(ids[i])} is in the table but not in the index"
        return None

    def applied(self, write: Write, *, codes: Optional[np.ndarray] = None, ids: Sequence[int] = (),
                removed: Sequence[int] = ()) -> None:
        """After the bank's own ``write`` committed: apply it (``codes``/``ids`` added,
        ``removed`` ids withdrawn) if the index was current, else catch up from the log."""
        if write.base != self.seq:  # another process wrote in between: take it all from the log
            self.catch_up()
            return
        if len(removed):
            self.index.remove(np.asarray(removed, dtype=np.int64))
        if len(ids):
            self.index.add(codes, np.asarray(ids, dtype=np.int64))
        self.seq = write.seq

    def range_search(self, queries: np.ndarray, radius: int, *, dihedral: bool = False, threads: int = 0) -> Any:
        """Catch up, then every indexed hash within ``radius`` of each query."""
        self.catch_up()
        return self.index.range_search(queries, radius, dihedral=dihedral, threads=threads)

    def save_snapshot(self) -> Optional[Path]:
        """Catch up and save the index as ``<bank>.idx.<seq>``, deleting older snapshots."""
        if not self.use_snapshots:
            return None
        self.catch_up()
        path = self.snapshots.path(self.seq)
        if not path.exists():  # the name is the change sequence: an existing file already holds it
            self.index.save(path)
        self.snapshots.drop_others(path)
        return path
