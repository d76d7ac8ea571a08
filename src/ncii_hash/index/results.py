"""Search results: CSR range results (like FAISS), k-NN results, and the one merge that turns
raw (query, id, distance, variant) hits into a :class:`RangeResult` in the index's order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

#: k-NN slots without a bank entry hold this id and ``KNN_MISSING_DISTANCE``.
KNN_MISSING_ID = -1
KNN_MISSING_DISTANCE = 2**31 - 1


@dataclass(frozen=True)
class Match:
    """One bank entry found for a query."""

    id: int
    distance: int
    variant: Optional[int] = None  #: dihedral variant that reached ``distance`` (dihedral queries)


@dataclass(frozen=True, eq=False)
class RangeResult:
    """Range-search results in CSR form (like FAISS): query ``i`` owns ``[lims[i], lims[i+1])``.

    ``result[i]`` gives the matches of query ``i`` as a list of :class:`Match`, ordered by
    (distance, id).
    """

    lims: np.ndarray  #: int64 (Q+1,)
    ids: np.ndarray  #: int64
    distances: np.ndarray  #: int32
    variants: Optional[np.ndarray] = None  #: int8, dihedral queries only

    def __len__(self) -> int:
        return int(self.lims.shape[0]) - 1

    def __getitem__(self, i: int) -> list[Match]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"query index {i} out of range for {n} queries")
        i %= n
        lo, hi = int(self.lims[i]), int(self.lims[i + 1])
        var = self.variants
        return [
            Match(int(self.ids[j]), int(self.distances[j]), None if var is None else int(var[j]))
            for j in range(lo, hi)
        ]

    def __iter__(self) -> Iterator[list[Match]]:
        return (self[i] for i in range(len(self)))

    @property
    def num_matches(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True, eq=False)
class KnnResult:
    """k nearest entries per query, ascending; missing slots are (-1, 2**31-1)."""

    ids: np.ndarray  #: int64 (Q, k)
    distances: np.ndarray  #: int32 (Q, k)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __getitem__(self, i: int) -> list[Match]:
        return [Match(int(a), int(d)) for a, d in zip(self.ids[i], self.distances[i]) if a != KNN_MISSING_ID]
