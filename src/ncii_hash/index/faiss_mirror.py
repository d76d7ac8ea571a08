"""HashIndex's FAISS backends: a FAISS binary index mirrors the table row for row (FAISS row r is
table row r), is rebuilt from the codes when the rows change wholesale, and answers queries
whose raw rows are mapped to ids, filtered for tombstones and merged by
:func:`~ncii_hash.index.results.merge_hits`. FAISS is imported when such a backend is created
(``pip install 'ncii-hash[faiss]'``), never before.

* ``"faiss-flat"`` (exact): ``IndexBinaryFlat``.
* ``"faiss-mih"`` (exact for range search): ``IndexBinaryMultiHash`` with 16 tables of 16 bits.
  ``nflip = radius // 16``, so by pigeonhole every code within the radius shares a bucket with
  the query in some table. Its k-NN is approximate. ``nflip`` is index state: one search at a time.
* ``"faiss-ivf"`` and ``"faiss-hnsw"`` (APPROXIMATE: they can miss matches, never invent them):
  ``IndexBinaryIVF`` (trained on the whole bank, retrained when it grows 4x) and
  ``IndexBinaryHNSW`` (range search through a k-NN of ``hnsw_k`` candidates, filtered by the radius).
"""

from __future__ import annotations

import math
import threading
from typing import Any, ClassVar, Mapping

import numpy as np

from .._util.threads import default_threads
from .._util.optional import optional_import
from ..hashes import PDQ_HASH_BYTES
from .results import KNN_MISSING_DISTANCE, KNN_MISSING_ID, KnnResult, RangeResult, merge_hits
from .table import CodeTable

_BITS = 8 * PDQ_HASH_BYTES
_MIH_TABLES = 16  # 16 substrings of 16 bits


def import_faiss() -> Any:
    return optional_import("faiss", extra="faiss", purpose="the FAISS backends")


class FaissMirror:
    """The shared part of the FAISS backends; a subclass says how to build its index."""

    name: ClassVar[str]
    exact: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any]) -> None:
        self._faiss = import_faiss()  # fail early, naming the extra
        self._options = dict(options)
        self._index: Any = None

    def _create(self, codes: np.ndarray) -> Any:
        raise NotImplementedError

    # ---- keeping the mirror in step (writer lock held) -----------------------------------
    def rebuild(self, codes: np.ndarray) -> None:
        self._index = None
        if codes.shape[0]:
            self._index = self._create(codes)
            self._add(codes, codes.shape[0])

    def append(self, codes: np.ndarray, start: int) -> None:
        if self._index is None:  # the table was empty
            return self.rebuild(codes)
        self._add(codes[start:], codes.shape[0])

    def _add(self, new: np.ndarray, total: int) -> None:
        self._index.add(np.ascontiguousarray(new))
        if self._index.ntotal != total:  # internal invariant: FAISS row r is table row r
            raise RuntimeError("FAISS mirror out of step with the bank")

    # ---- searching (reader lock held; many at once) --------------------------------------
    def _range_rows(self, queries: np.ndarray, radius: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query row, table row, distance) of every hit."""
        lims, D, I = self._index.range_search(queries, radius + 1)  # FAISS: distance < radius
        qflat = np.repeat(np.arange(queries.shape[0], dtype=np.int64), np.diff(lims.astype(np.int64)))
        return qflat, I, D

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._index.search(queries, k)

    def _threads(self, threads: int) -> None:
        self._faiss.omp_set_num_threads(threads if threads > 0 else default_threads())

    def range_search(self, table: CodeTable, queries: np.ndarray, radius: int, variants: int,
                     threads: int) -> RangeResult:
        qflat = np.zeros(0, np.int64)
        rows = np.zeros(0, np.int64)
        dists = np.zeros(0, np.int32)
        if self._index is not None and queries.shape[0]:
            self._threads(threads)
            qflat, rows, dists = self._range_rows(queries, radius, table.n)
            qflat = np.asarray(qflat, dtype=np.int64)
            rows = np.asarray(rows, dtype=np.int64)
            dists = np.asarray(dists).astype(np.int32)
            if table.removed_rows is not None and rows.size:
                keep = ~np.isin(rows, table.removed_rows)
                qflat, rows, dists = qflat[keep], rows[keep], dists[keep]
        variant = (qflat % variants).astype(np.int8) if variants > 1 else None
        return merge_hits(qflat // variants, table.ids[rows], dists, variant, queries.shape[0] // variants,
                          dedupe=variants > 1)

    def knn(self, table: CodeTable, queries: np.ndarray, k: int, threads: int) -> KnnResult:
        """Ascending by (distance, id), tombstones skipped."""
        nq = queries.shape[0]
        out_ids = np.full((nq, k), KNN_MISSING_ID, dtype=np.int64)
        out_d = np.full((nq, k), KNN_MISSING_DISTANCE, dtype=np.int32)
        if self._index is None or nq == 0:
            return KnnResult(out_ids, out_d)
        self._threads(threads)
        D, I = self._search(queries, min(table.n, k + table.tombstones))  # extra to cover tombstones
        removed = table.removed_rows
        for qi in range(nq):
            rows = I[qi]
            ok = rows >= 0
            if removed is not None:
                ok &= ~np.isin(rows, removed)
            ids = table.ids[rows[ok]]
            d = D[qi][ok].astype(np.int32)
            order = np.lexsort((ids, d))[:k]
            out_ids[qi, : order.size] = ids[order]
            out_d[qi, : order.size] = d[order]
        return KnnResult(out_ids, out_d)


class FaissFlat(FaissMirror):
    name = "faiss-flat"
    exact = True

    def _create(self, codes: np.ndarray) -> Any:
        return self._faiss.IndexBinaryFlat(_BITS)


class FaissMih(FaissMirror):
    name = "faiss-mih"
    exact = True

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self._lock = threading.Lock()  # nflip is index state: one search at a time

    def _create(self, codes: np.ndarray) -> Any:
        return self._faiss.IndexBinaryMultiHash(_BITS, _MIH_TABLES, _BITS // _MIH_TABLES)

    def _range_rows(self, queries: np.ndarray, radius: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self._lock:
            self._index.nflip = radius // _MIH_TABLES
            return super()._range_rows(queries, radius, n)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            return super()._search(queries, k)


class FaissIvf(FaissMirror):
    name = "faiss-ivf"

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self._quantizer: Any = None  # FAISS borrows it: keep it alive with the index
        self._trained_n = 0

    def _create(self, codes: np.ndarray) -> Any:
        n = codes.shape[0]  # train on the whole bank as it is now
        nlist = self._options["ivf_nlist"] or min(1024, int(math.sqrt(n)))
        nlist = max(1, min(nlist, n // 39 or 1))
        self._quantizer = self._faiss.IndexBinaryFlat(_BITS)
        index = self._faiss.IndexBinaryIVF(self._quantizer, _BITS, nlist)
        index.nprobe = min(self._options["ivf_nprobe"], nlist)
        index.train(np.ascontiguousarray(codes))
        self._trained_n = n
        return index

    def append(self, codes: np.ndarray, start: int) -> None:
        if self._index is not None and codes.shape[0] > 4 * self._trained_n:
            return self.rebuild(codes)  # the bank outgrew the trained lists: retrain
        super().append(codes, start)


class FaissHnsw(FaissMirror):
    name = "faiss-hnsw"

    def _create(self, codes: np.ndarray) -> Any:
        index = self._faiss.IndexBinaryHNSW(_BITS, self._options["hnsw_m"])
        index.hnsw.efSearch = self._options["hnsw_ef_search"]
        return index

    def _range_rows(self, queries: np.ndarray, radius: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        D, I = self._index.search(queries, min(self._options["hnsw_k"], n))
        qflat, col = np.nonzero((I >= 0) & (D <= radius))
        return qflat, I[qflat, col], D[qflat, col]


FAISS_BACKENDS = (FaissFlat, FaissMih, FaissIvf, FaissHnsw)
