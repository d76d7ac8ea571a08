"""HashBank's local-feature side (issue #8): feature sets stored per case, matched through a
:class:`~ncii_hash.feature_index.FeatureIndex` derived from the table.

The ``features`` table is the truth. The index is loaded on the first feature match (not at
open: banks without feature sets pay nothing) from the newest snapshot file
``<bank>.fidx.<seq>`` not ahead of the bank (memory-mapped, checksummed; saved on close), or
built from the table, then kept in step: own writes are applied
directly, other processes' writes are found by comparing the table's row ids with the
index's whenever the bank's change sequence has moved. Every hit is re-checked against the
table, so a withdrawn case's feature set can never be reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from .schema import BankError, FeatureBankMatch, ImageBankMatch
from ..features.orb import MAX_FEATURES, FeatureError, FeatureSet


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
            raise BankError(f"feature set {n}: expected a FeatureSet or its bytes, got {type(fs).__name__}")
        if len(fs) > MAX_FEATURES:
            raise BankError(f"feature set {n} holds {len(fs)} features; a banked set holds at most "
                            f"{MAX_FEATURES} (extract it with query=False)")
        out.append(fs)
    return out


class FeatureBankMixin:
    """Mixed into HashBank; uses its ``_db``, ``_lock``, ``_db_seq`` and ``_rows_for_ids``."""

    _db: Any
    _lock: Any
    _feature_index: Any = None
    _features_seq: int = -1
    feature_index_source: str = "not loaded"  #: "snapshot", "table" or "not loaded"

    def _insert_features(self, case_id: str, sets: Sequence[FeatureSet], now: float) -> list[int]:
        ids = []
        for fs in sets:
            cur = self._db.execute("INSERT INTO features (case_id, data, added_at) VALUES (?, ?, ?)",
                                   (case_id, fs.to_bytes(), now))
            ids.append(int(cur.lastrowid))
        return ids

    def _delete_features(self, case_id: str) -> list[int]:
        ids = [r[0] for r in self._db.execute("SELECT feature_id FROM features WHERE case_id=?", (case_id,))]
        self._db.execute("DELETE FROM features WHERE case_id=?", (case_id,))
        return ids

    def _features_applied(self, base: int, seq: int, added: Sequence[int] = (), sets: Sequence[FeatureSet] = (),
                          removed: Sequence[int] = ()) -> None:
        """After an own write committed as ``seq`` on top of ``base``: apply it to the index
        if the index was current, else leave the index to catch up on next use."""
        if self._feature_index is None or self._features_seq != base:
            return
        if removed:
            self._feature_index.remove(removed, missing_ok=True)
        if added:
            self._feature_index.add(added, list(sets))
        self._features_seq = seq

    # ---- snapshots (derived data; withdrawal deletes them all) ------------------------------

    def _feature_snapshots(self) -> list[tuple[int, Path]]:
        path: Path = self.path  # type: ignore[attr-defined]
        prefix = path.name + ".fidx."
        return sorted(((int(p.name[len(prefix):]), p) for p in path.parent.iterdir()
                       if p.name.startswith(prefix) and p.name[len(prefix):].isdigit()), reverse=True)

    def _drop_feature_snapshots(self) -> None:
        path: Path = self.path  # type: ignore[attr-defined]
        for _, p in self._feature_snapshots():
            p.unlink(missing_ok=True)
        for p in path.parent.glob(f".{path.name}.fidx.*.tmp"):
            p.unlink(missing_ok=True)

    def save_feature_snapshot(self) -> Optional[Path]:
        """Save the feature index next to the bank (only if it was loaded and is current)."""
        with self._lock:
            if self._feature_index is None or not self._snapshot_enabled:  # type: ignore[attr-defined]
                return None
            self._sync_features()
            path: Path = self.path  # type: ignore[attr-defined]
            target = path.with_name(f"{path.name}.fidx.{self._features_seq}")
            if not target.exists():
                self._feature_index.save(target)
            for _, old in self._feature_snapshots():
                if old != target:
                    old.unlink(missing_ok=True)
            return target

    def _load_feature_snapshot(self, seq: int) -> None:
        from ..features.index import FeatureIndex

        if not self._snapshot_enabled:  # type: ignore[attr-defined]
            return
        for s, snap in self._feature_snapshots():
            if s > seq:
                continue
            try:
                self._feature_index = FeatureIndex.load(snap, mmap=True)
            except (ValueError, OSError):
                continue  # damaged or foreign: an older one, else the table
            self._features_seq = s
            self.feature_index_source = "snapshot"
            return

    def _sync_features(self) -> None:
        from ..features.index import FeatureIndex

        seq = self._db_seq()  # type: ignore[attr-defined]
        if self._feature_index is not None and self._features_seq == seq:
            return
        if self._feature_index is None:
            self._load_feature_snapshot(seq)
        if self._feature_index is None:
            self._feature_index = FeatureIndex()
            self.feature_index_source = "table"
            have: set[int] = set()
        else:
            have = set(self._feature_index.live_ids().tolist())
        table = {r[0] for r in self._db.execute("SELECT feature_id FROM features")}
        gone = have - table
        if gone:
            self._feature_index.remove(sorted(gone), missing_ok=True)
        new = sorted(table - have)
        for start in range(0, len(new), 10_000):
            rows = self._rows_for_ids(  # type: ignore[attr-defined]
                "SELECT feature_id, data FROM features WHERE feature_id IN ({})",
                np.asarray(new[start:start + 10_000], dtype=np.int64))
            self._feature_index.add([r[0] for r in rows],
                                    [FeatureSet.from_bytes(r[1], source=f"bank feature set {r[0]}") for r in rows])
        self._features_seq = seq

    def match_features(self, queries: Sequence[FeatureSet], *, threads: int = 0) -> list[FeatureBankMatch]:
        """Banked images each query shows (crop, rotation, banner, screenshot ...), by local
        features: candidates from the feature index, each verified geometrically. Sorted by
        query, then inliers (most first)."""
        if isinstance(queries, FeatureSet):
            queries = [queries]
        for q in queries:
            if not isinstance(q, FeatureSet):
                raise TypeError(f"queries must be FeatureSet objects, got {type(q).__name__}")
        out: list[FeatureBankMatch] = []
        with self._lock:
            self._catch_up()  # type: ignore[attr-defined]
            self._sync_features()
            found = [(qi, h) for qi, q in enumerate(queries) for h in self._feature_index.search(q, threads=threads)]
            if not found:
                return []
            owner = dict(self._rows_for_ids(  # type: ignore[attr-defined]
                "SELECT feature_id, case_id FROM features WHERE feature_id IN ({})",
                np.asarray([h.id for _, h in found], dtype=np.int64)))
        for qi, h in found:
            cid = owner.get(h.id)
            if cid is None or h.match is None:
                continue
            out.append(FeatureBankMatch(query=qi, case_id=cid, feature_id=h.id, inliers=h.match.inliers,
                                        spread=round(h.match.spread, 4), scale=round(h.match.scale, 4),
                                        rotation_degrees=round(h.match.rotation_degrees, 2)))
        return out

    def feature_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM features").fetchone()[0])

    def case_features(self, case_id: str) -> list[FeatureSet]:
        with self._lock:
            rows = self._db.execute("SELECT feature_id, data FROM features WHERE case_id=? ORDER BY feature_id",
                                    (case_id,)).fetchall()
        return [FeatureSet.from_bytes(r[1], source=f"bank feature set {r[0]}") for r in rows]
