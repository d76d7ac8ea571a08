"""The ``"flat"`` backend (default, exact): our C++ kernels (``csrc/hamming.*``) scan the table's
own rows with SIMD popcounts, blocked so a batch of queries reads the bank once, on all cores,
skipping tombstones; they return results already in HashIndex's order. No mirror."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .._core import hamming_knn, hamming_range_search
from .results import KnnResult, RangeResult
from .table import CodeTable


class FlatSearcher:
    name = "flat"
    exact = True

    def __init__(self, options: Mapping[str, Any]) -> None:
        pass

    def rebuild(self, codes: np.ndarray) -> None:
        pass

    def append(self, codes: np.ndarray, start: int) -> None:
        pass

    def range_search(self, table: CodeTable, queries: np.ndarray, radius: int, variants: int,
                     threads: int) -> RangeResult:
        lims, ids, dists, var = hamming_range_search(
            table.codes, queries, radius, variants, table.ids, table.removed_rows, threads
        )
        if variants > 1 and var is None:  # no hits at all
            var = np.zeros(0, dtype=np.int8)
        return RangeResult(lims, ids, dists, var)

    def knn(self, table: CodeTable, queries: np.ndarray, k: int, threads: int) -> KnnResult:
        ids, dists = hamming_knn(table.codes, queries, k, table.ids, table.removed_rows, threads)
        return KnnResult(ids, dists)
