"""The bank's shared-window hashes (submission version 3, issue 20): a survivor's opt-in PDQ
hash of a fixed re-framing of an image (``centre70``), one index per window name, each kept in
step with the ``windows`` table exactly as the whole pictures' index follows ``hashes``.

Like for like: a window cut from an upload is compared with the same banked window only
(docs/accuracy.md, "Robustness options"), never with whole pictures. A window row is keyed by
the hash id of its image, so a window match names the image it belongs to and every reader
resolves it as that image's match; withdrawing a case deletes its window rows in the same
transaction as its image rows, and the change log's withdrawn ids -- the images' -- are the
window indexes' ids too.

Not thread-safe by itself: the bank calls it under its lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..submission import SHARED_WINDOWS
from .db import Database, Write
from .index_sync import IndexedRows, IndexSync
from .records import codes_from_blobs


class WindowIndexes:
    """One :class:`~.index_sync.IndexSync` per shared window name."""

    def __init__(self, db: Database, *, backend: str, snapshots: bool, snapshot_base: Optional[Path]):
        self.db = db
        self.syncs = {name: IndexSync(db, backend=backend, snapshots=snapshots, snapshot_base=snapshot_base,
                                      rows=IndexedRows.window(name)) for name in SHARED_WINDOWS}

    def __len__(self) -> int:
        return sum(len(s) for s in self.syncs.values())

    def open(self) -> None:
        for s in self.syncs.values():
            s.open()

    def catch_up(self, seq: Optional[int] = None) -> None:
        """Apply the change log; ``seq``: the store's change sequence as just read (by the
        whole pictures' index), so an index already there costs no second read."""
        for s in self.syncs.values():
            if seq is None or s.seq != seq:
                s.catch_up()

    def insert(self, rows: Sequence[tuple[int, str, bytes, int, int]]) -> dict:
        """Bank window rows ``(image's hash id, name, hash, quality, change seq)``;
        ``{name: (codes, ids)}`` for :meth:`applied`."""
        self.db.executemany("INSERT INTO windows (hash_id, window_name, hash, quality, seq) VALUES (?, ?, ?, ?, ?)",
                            rows)
        added: dict[str, tuple[list, list]] = {}
        for hid, name, code, _, _ in rows:
            codes, ids = added.setdefault(name, ([], []))
            codes.append(code)
            ids.append(hid)
        return {name: (codes_from_blobs(codes), ids) for name, (codes, ids) in added.items()}

    def applied(self, write: Write, *, added: Optional[dict] = None, removed: Sequence[int] = ()) -> None:
        """After the bank's own ``write``: what it added (:meth:`insert`) and the image ids it withdrew."""
        for name, sync in self.syncs.items():
            codes, ids = (added or {}).get(name, (None, ()))
            sync.applied(write, codes=codes, ids=ids, removed=removed)

    def sync(self, name: str) -> IndexSync:
        """The index of window ``name``."""
        if name not in self.syncs:
            raise ValueError(f"unknown window {name!r} (known: {', '.join(SHARED_WINDOWS)})")
        return self.syncs[name]

    def range_search(self, name: str, queries: np.ndarray, radius: int, *, dihedral: bool, threads: int) -> Any:
        """Caught up, the image ids whose window ``name`` lies within ``radius`` of each query."""
        return self.sync(name).range_search(queries, radius, dihedral=dihedral, threads=threads)

    def disagreement(self) -> Optional[str]:
        for name, sync in self.syncs.items():
            if problem := sync.disagreement():
                return f"window {name}: {problem}"
        return None

    def drop_snapshots(self) -> None:
        for s in self.syncs.values():
            s.snapshots.drop_all()

    def save_snapshots(self) -> None:
        """Save each non-empty window index (an empty one is rebuilt from nothing at open)."""
        for s in self.syncs.values():
            if len(s):
                s.save_snapshot()
            else:
                s.snapshots.drop_all()
