"""The rows of a HashIndex: codes ``(n, 32)`` + ids ``(n,)`` kept sorted by id, and tombstones.

Invariants: ``ids[:n]`` is strictly increasing (ids are found by binary search, no hash map);
live ids are unique and non-negative; a tombstoned row stays in place, skipped by every search,
until :meth:`CodeTable.compact` drops it. Adding ids above every current id appends (amortised
O(1) per row: capacity doubles); smaller ones re-sort the rows (O(n)). The arrays may borrow a
read-only buffer (a file mapping or ``bytes``): removal keeps it, anything that writes rows
first copies them into private memory. Not thread-safe: :class:`HashIndex` holds its lock.

Searchers mirror the rows (row r of a mirror is row r here); :meth:`take_changes` tells the
owner which rows changed since it last asked, so it can append to or rebuild the mirror.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..hashes import PDQ_HASH_BYTES

_ID_LIMIT = 1 << 63  # ids are int64: every id is below this


class CodeTable:
    def __init__(self) -> None:
        self._codes = np.zeros((0, PDQ_HASH_BYTES), dtype=np.uint8)  # capacity rows; [:n] in use
        self._ids = np.zeros(0, dtype=np.int64)
        self.n = 0
        self._removed: set[int] = set()  # tombstoned rows
        self.removed_rows: Optional[np.ndarray] = None  # sorted copy of _removed for the kernels
        self.next_id = 0
        self._borrowed: Any = None  # read-only buffer behind the arrays (file mapping, bytes)
        self._changed_from: Optional[int] = None  # rows >= this changed since take_changes()

    # ---- reading --------------------------------------------------------------------------
    @property
    def codes(self) -> np.ndarray:
        """Rows in use (live and tombstoned), a view."""
        return self._codes[: self.n]

    @property
    def ids(self) -> np.ndarray:
        return self._ids[: self.n]

    @property
    def tombstones(self) -> int:
        return len(self._removed)

    def __len__(self) -> int:
        return self.n - len(self._removed)

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        """(codes, ids) of the live rows in id order (views when there are no tombstones)."""
        codes, ids = self.codes, self.ids
        if self.removed_rows is not None:
            keep = np.ones(self.n, dtype=bool)
            keep[self.removed_rows] = False
            codes, ids = codes[keep], ids[keep]
        return codes, ids

    def live_ids(self) -> np.ndarray:
        ids = self.ids
        if self.removed_rows is not None:
            ids = np.delete(ids, self.removed_rows)
        return np.array(ids, dtype=np.int64)

    def contains(self, id_: int) -> bool:
        row = int(self.rows_of(np.array([id_], dtype=np.int64))[0])
        return row >= 0 and row not in self._removed

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id, or -1 (tombstoned rows included)."""
        live = self.ids
        pos = np.searchsorted(live, ids)
        pos_c = np.minimum(pos, max(self.n - 1, 0))
        found = (pos < self.n) & (live[pos_c] == ids) if self.n else np.zeros(ids.shape, dtype=bool)
        return np.where(found, pos, -1).astype(np.int64)

    # ---- writing --------------------------------------------------------------------------
    def fresh_ids(self, count: int) -> np.ndarray:
        if self.next_id + count > _ID_LIMIT:
            raise ValueError(f"no fresh ids left for {count} hashes (ids are int64); pass ids explicitly")
        return np.arange(self.next_id, self.next_id + count, dtype=np.int64)

    def check_new_ids(self, new_ids: np.ndarray, count: int) -> None:
        """Raise ValueError unless ``new_ids`` may be added for ``count`` codes; reclaim the
        rows of removed ids that come back."""
        if new_ids.shape[0] != count:
            raise ValueError(f"ids must have one entry per hash: got {new_ids.shape[0]} ids for {count} hashes")
        if count and new_ids.min() < 0:
            raise ValueError("ids must be non-negative")
        increasing = count < 2 or bool(np.all(new_ids[1:] > new_ids[:-1]))  # common, and O(n)
        if not increasing and np.unique(new_ids).shape[0] != count:
            raise ValueError("ids contains duplicates; every hash needs its own id")
        rows = self.rows_of(new_ids)
        present = rows >= 0
        if present.any():
            live = [int(new_ids[i]) for i in np.nonzero(present)[0] if int(rows[i]) not in self._removed]
            if live:
                raise ValueError(
                    f"ids already in the index: {live[:5]}{' ...' if len(live) > 5 else ''}; "
                    "remove them first or let add() choose ids"
                )
            self.compact()  # the id was removed: reclaim its row before reuse

    def add(self, codes: np.ndarray, new_ids: np.ndarray) -> None:
        """Insert checked rows (see :meth:`check_new_ids`), keeping the id order."""
        count = codes.shape[0]
        if count == 0:
            return
        if count == 1 or bool(np.all(new_ids[1:] > new_ids[:-1])):  # e.g. auto ids: no copy
            sorted_ids, sorted_codes = new_ids, codes
        else:
            order = np.argsort(new_ids, kind="stable")
            sorted_ids, sorted_codes = new_ids[order], codes[order]
        if self.n == 0 or sorted_ids[0] > self._ids[self.n - 1]:
            self._ensure_writable(self.n + count)
            self._codes[self.n : self.n + count] = sorted_codes
            self._ids[self.n : self.n + count] = sorted_ids
            self._mark_changed(self.n)
            self.n += count
        else:
            all_ids = np.concatenate([self.ids, sorted_ids])
            all_codes = np.concatenate([self.codes, sorted_codes])
            order = np.argsort(all_ids, kind="stable")
            keep = np.ones(all_ids.shape[0], dtype=bool)
            keep[list(self._removed)] = False
            order = order[keep[order]]
            self.install(all_codes[order], all_ids[order])
        self.next_id = max(self.next_id, int(sorted_ids[-1]) + 1)

    def remove(self, ids: np.ndarray) -> int:
        """Tombstone the rows of ``ids``; returns how many were live."""
        rows = self.rows_of(np.unique(ids))
        newly = [int(r) for r in rows if r >= 0 and int(r) not in self._removed]
        if newly:
            self._removed.update(newly)
            self.removed_rows = np.array(sorted(self._removed), dtype=np.int64)
        return len(newly)

    def compact(self) -> None:
        """Drop tombstoned rows (a copy into private memory)."""
        if self._removed:
            self.install(*self.live())

    def install(self, codes: np.ndarray, ids: np.ndarray, *, next_id: Optional[int] = None,
                borrowed: Any = None) -> None:
        """Replace every row (ids sorted, no tombstones); ``borrowed`` is the read-only buffer
        the arrays are views of, if any."""
        self._codes = np.ascontiguousarray(codes)
        self._ids = np.ascontiguousarray(ids)
        self.n = ids.shape[0]
        self._borrowed = borrowed
        self._removed = set()
        self.removed_rows = None
        if next_id is not None:
            self.next_id = next_id
        self._mark_changed(0)

    def take_changes(self) -> Optional[int]:
        """The first row that changed since the last call (rows before it are as they were),
        or None when nothing changed; 0 means every row."""
        first, self._changed_from = self._changed_from, None
        return first

    # ---- internals ------------------------------------------------------------------------
    def _mark_changed(self, row: int) -> None:
        self._changed_from = row if self._changed_from is None else min(self._changed_from, row)

    def _ensure_writable(self, rows: int) -> None:
        """Make room for ``rows`` rows in private memory; capacity doubles."""
        cap = self._codes.shape[0]
        private = self._borrowed is None and self._codes.flags.writeable and self._ids.flags.writeable
        if private and rows <= cap:
            return
        new_cap = max(rows, 2 * cap if private else rows, 1024)
        codes = np.empty((new_cap, PDQ_HASH_BYTES), dtype=np.uint8)  # untouched pages cost no RAM
        ids = np.empty(new_cap, dtype=np.int64)
        codes[: self.n] = self.codes
        ids[: self.n] = self.ids
        self._codes, self._ids, self._borrowed = codes, ids, None
