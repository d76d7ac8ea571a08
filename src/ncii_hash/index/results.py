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


def merge_hits(
    query: np.ndarray, ids: np.ndarray, distances: np.ndarray, variants: Optional[np.ndarray], nq: int,
    *, dedupe: bool,
) -> RangeResult:
    """The one merge of raw hits into a :class:`RangeResult`: hit ``j`` is bank entry ``ids[j]``
    at ``distances[j]`` from query ``query[j]`` (0 <= query < nq), reached by dihedral variant
    ``variants[j]`` (int8; None for plain queries).

    Each query's hits come out ordered by (distance, id). With ``dedupe`` (a query's variants
    may reach the same id several times) each (query, id) pair is kept once, with its smallest
    distance and the lowest variant reaching it; without it the caller promises the pairs are
    distinct already (e.g. shards over disjoint ids), which saves a sort.
    """
    query = np.asarray(query, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    distances = np.asarray(distances, dtype=np.int32)
    if variants is not None:
        variants = np.asarray(variants, dtype=np.int8)
    if dedupe and query.size:
        order = np.lexsort((variants, distances, ids, query) if variants is not None else (distances, ids, query))
        query, ids, distances = query[order], ids[order], distances[order]
        first = np.ones(query.shape[0], dtype=bool)
        first[1:] = (query[1:] != query[:-1]) | (ids[1:] != ids[:-1])
        query, ids, distances = query[first], ids[first], distances[first]
        if variants is not None:
            variants = variants[order][first]
    order = np.lexsort((ids, distances, query))
    lims = np.zeros(nq + 1, dtype=np.int64)
    np.cumsum(np.bincount(query, minlength=nq), out=lims[1:])
    return RangeResult(
        lims,
        np.ascontiguousarray(ids[order]),
        np.ascontiguousarray(distances[order]),
        None if variants is None else np.ascontiguousarray(variants[order]),
    )
