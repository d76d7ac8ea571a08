"""The bank's local-feature store (issue #8): feature sets stored per case in the
``features`` table, matched through a :class:`~ncii_hash.features.FeatureIndex` derived
from it.

The table is the truth. The index is loaded on the first feature match (not at open: banks
without feature sets pay nothing) from the newest snapshot ``<bank>.fidx.<seq>`` not ahead
of the bank (memory-mapped, checksummed; saved on close), or built from the table, then
kept in step: the bank's own writes are applied directly, other processes' writes are found
by comparing the table's row ids with the index's whenever the bank's change sequence has
moved. Every hit is re-checked against the table, so a withdrawn case's feature set can
never be reported.

Not thread-safe by itself: the bank calls it under its lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from ..features.index import FeatureIndex
from ..features.orb import MAX_FEATURES, FeatureError, FeatureSet
from .db import Database, Write
from .records import BankError, FeatureBankMatch
from .snapshots import SnapshotFiles

SYNC_CHUNK = 10_000  #: feature sets read from the table per statement while catching up


def feature_queries(queries: Any) -> list[FeatureSet]:
    """``HashBank.match_features``' queries: one FeatureSet or a sequence of them."""
    if isinstance(queries, FeatureSet):
        return [queries]
    for q in queries:
        if not isinstance(q, FeatureSet):
            raise TypeError(f"queries must be FeatureSet objects, got {type(q).__name__}")
    return list(queries)


def feature_sets_of(features: Iterable[Any]) -> list[FeatureSet]:
    """Check what a caller wants to bank: FeatureSet objects or their serialized bytes."""
    out = []
    for n, fs in enumerate(features, start=1):
        if isinstance(fs, (bytes, bytearray, memoryview)):
            try:
                fs = FeatureSet.from_bytes(bytes(fs), source=f"feature set {n}")
            except FeatureError as exc:
                raise BankError(str(exc)) from None
        if not isinstance(fs, FeatureSet):
            raise TypeError(f"feature set {n}: expected a FeatureSet or its bytes, got {type(fs).__name__}")
        if len(fs) > MAX_FEATURES:
            raise BankError(f"feature set {n} holds {len(fs)} features; a banked set holds at most "
                            f"{MAX_FEATURES} (extract it with query=False)")
        out.append(fs)
    return out


def _stored_set(feature_id: int, data: bytes) -> FeatureSet:
    return FeatureSet.from_bytes(data, source=f"bank feature set {feature_id}")


class FeatureStore:
    """Owns the features table's rows, the FeatureIndex over them (``index``, None until
    first used), the change sequence it reflects and its snapshots."""

    def __init__(self, db: Database, *, snapshots: bool = True):
        self.db = db
        self.snapshots = SnapshotFiles(db.path, "fidx")
        self.use_snapshots = snapshots
        self.index: Optional[FeatureIndex] = None
        self.seq = -1
        self.source = "not loaded"  #: "snapshot", "table" or "not loaded"

    # ---- rows (inside the bank's write transactions) -----------------------------------------
    def insert(self, case_id: str, sets: Sequence[FeatureSet], now: float) -> list[int]:
        return [self.db.insert("INSERT INTO features (case_id, data, added_at) VALUES (?, ?, ?)",
                               (case_id, fs.to_bytes(), now), id_column="feature_id") for fs in sets]

    def delete_case(self, case_id: str) -> list[int]:
        ids = [r[0] for r in self.db.execute("SELECT feature_id FROM features WHERE case_id=?", (case_id,))]
        self.db.execute("DELETE FROM features WHERE case_id=?", (case_id,))
        return ids

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM features").fetchone()[0])

    def case_features(self, case_id: str) -> list[FeatureSet]:
        rows = self.db.execute("SELECT feature_id, data FROM features WHERE case_id=? ORDER BY feature_id",
                               (case_id,)).fetchall()
        return [_stored_set(r[0], r[1]) for r in rows]

    # ---- the index -----------------------------------------------------------------------------
    def applied(self, write: Write, *, added: Sequence[int] = (), sets: Sequence[FeatureSet] = (),
                removed: Sequence[int] = ()) -> None:
        """After the bank's own ``write`` committed: apply it to the index if the index was
        current, else leave the index to catch up on next use."""
        if self.index is None or self.seq != write.base:
            return
        if removed:
            self.index.remove(removed, missing_ok=True)
        if added:
            self.index.add(added, list(sets))
        self.seq = write.seq

    def sync(self) -> FeatureIndex:
        """Bring the index to the bank's change sequence (loading it first if needed); the index."""
        seq = self.db.seq()
        if self.index is not None and self.seq == seq:
            return self.index
        if self.index is None:
            self._load_snapshot(seq)
        if self.index is None:
            self.index = FeatureIndex()
            self.source = "table"
        index = self.index
        have = set(index.live_ids().tolist())
        table = {r[0] for r in self.db.execute("SELECT feature_id FROM features")}
        gone = have - table
        if gone:
            index.remove(sorted(gone), missing_ok=True)
        new = sorted(table - have)
        for start in range(0, len(new), SYNC_CHUNK):
            rows = self.db.rows_for_ids("SELECT feature_id, data FROM features WHERE feature_id IN ({})",
                                        np.asarray(new[start:start + SYNC_CHUNK], dtype=np.int64))
            index.add([r[0] for r in rows], [_stored_set(r[0], r[1]) for r in rows])
        self.seq = seq
        return index

    def _load_snapshot(self, seq: int) -> None:
        if not self.use_snapshots:
            return
        for s, snap in self.snapshots.not_ahead_of(seq):
            try:
                self.index = FeatureIndex.load(snap, mmap=True)
            except (ValueError, OSError):
                continue  # damaged or foreign: an older one, else the table
            self.seq = s
            self.source = "snapshot"
            return

    def search(self, queries: Sequence[FeatureSet], *, threads: int = 0) -> list[FeatureBankMatch]:
        """Sync, then the banked feature sets each query verifies against (still in the
        table), by query, most inliers first."""
        index = self.sync()
        found = [(qi, h) for qi, q in enumerate(queries) for h in index.search(q, threads=threads)]
        if not found:
            return []
        owner = dict(self.db.rows_for_ids("SELECT feature_id, case_id FROM features WHERE feature_id IN ({})",
                                          np.asarray([h.id for _, h in found], dtype=np.int64)))
        out = []
        for qi, h in found:
            cid = owner.get(h.id)
            if cid is None or h.match is None:
                continue
            out.append(FeatureBankMatch(query=qi, case_id=cid, feature_id=h.id, inliers=h.match.inliers,
                                        spread=round(h.match.spread, 4), scale=round(h.match.scale, 4),
                                        rotation_degrees=round(h.match.rotation_degrees, 2)))
        return out

    # ---- snapshots -----------------------------------------------------------------------------
    def save_snapshot(self) -> Optional[Path]:
        """Save the index next to the bank (only if it was loaded), deleting older ones."""
        if self.index is None or not self.use_snapshots:
            return None
        index = self.sync()
        target = self.snapshots.path(self.seq)
        if not target.exists():
            index.save(target)
        self.snapshots.drop_others(target)
        return target
