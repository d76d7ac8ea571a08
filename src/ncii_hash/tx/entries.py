"""The metadata of a :class:`~ncii_hash.tx.index.NciiPdqIndex`'s entries, by entry id.

Invariant: entry ``i`` (the ``HashIndex`` id ``i``) owns slot ``i``; slots are never reused,
so an id stays valid for the index's lifetime (removed entries leave an empty slot).

HMA indexes map each hash to an int (the bank content id), so while every entry is a plain
``int`` the slots are one int64 array (8 bytes per entry, pickled as one buffer); the first
entry of any other type turns them into a Python list for good.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _all_int64(values: Sequence[Any]) -> bool:
    return all(type(v) is int and _INT64_MIN <= v <= _INT64_MAX for v in values)


class EntryMetadata:
    """Slots of entry metadata: an int64 array while every value is an int, else a list."""

    def __init__(self) -> None:
        self._ints: Optional[np.ndarray] = np.empty(0, dtype=np.int64)  # capacity grows by doubling
        self._objects: Optional[list] = None
        self._size = 0

    def __len__(self) -> int:
        """Slots used (removed entries included)."""
        return self._size

    @property
    def holds_ints(self) -> bool:
        return self._objects is None

    def extend(self, values: Sequence[Any]) -> np.ndarray:
        """Append ``values``; returns their entry ids (int64)."""
        start, n = self._size, len(values)
        if self._objects is None and _all_int64(values):
            assert self._ints is not None
            if start + n > self._ints.shape[0]:
                grown = np.empty(max(start + n, 2 * self._ints.shape[0], 16), dtype=np.int64)
                grown[:start] = self._ints[:start]
                self._ints = grown
            self._ints[start:start + n] = np.asarray(values, dtype=np.int64) if n else 0
        else:
            if self._objects is None:
                assert self._ints is not None
                self._objects = self._ints[:start].tolist()
                self._ints = None
            self._objects.extend(values)
        self._size = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def get_many(self, entry_ids: np.ndarray) -> list:
        """The metadata of live entries (readers may run while a writer extends: the list is
        published before the array is dropped, and a grown array keeps every older slot)."""
        ints, objects = self._ints, self._objects
        if ints is not None and objects is None:
            return ints[entry_ids].tolist()
        objects = self._objects
        assert objects is not None
        return [objects[i] for i in entry_ids.tolist()]

    def release(self, entry_ids: Sequence[int]) -> None:
        """Drop the metadata of removed entries (their slots stay, empty)."""
        if self._objects is not None:
            for i in entry_ids:
                self._objects[int(i)] = None

    # ---- pickling: only the used slots, the int form as one array --------------------------
    def __getstate__(self) -> dict:
        if self._objects is not None:
            return {"objects": self._objects}
        assert self._ints is not None
        return {"ints": self._ints[:self._size].copy()}

    def __setstate__(self, state: dict) -> None:
        if "objects" in state:
            self._objects, self._ints = list(state["objects"]), None
            self._size = len(self._objects)
        else:
            ints = np.ascontiguousarray(state["ints"], dtype=np.int64)
            self._objects, self._ints, self._size = None, ints, int(ints.shape[0])
