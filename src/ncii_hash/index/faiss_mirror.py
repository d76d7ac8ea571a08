"""HashIndex's FAISS backends: a FAISS index mirrors the bank row for row (FAISS row r is
bank row r), is rebuilt from the codes when needed, and answers range and k-NN queries whose
raw rows HashIndex maps to ids, filters for tombstones and orders. Mixed into
:class:`ncii_hash.index.HashIndex`; FAISS is imported only when such a backend is used."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._core import hamming_threads
from .._util.optional import optional_import
from ..hashes import PDQ_HASH_BYTES
from .results import KNN_MISSING_DISTANCE, KNN_MISSING_ID

_MIH_TABLES = 16  # 16 substrings of 16 bits


def import_faiss() -> Any:
    return optional_import("faiss", extra="faiss", purpose="the FAISS backends")


def _cpu_threads(threads: int) -> int:
    return threads if threads > 0 else int(hamming_threads(0))


class FaissMirrorMixin:
    """Uses HashIndex's ``_backend``, ``_options``, ``_codes``, ``_ids``, ``_n``,
    ``_removed``, ``_removed_rows`` and ``_mih_lock``; owns ``_faiss_*``."""

    _backend: str
    _options: dict
    _codes: Any
    _ids: Any
    _n: int
    _removed: Any
    _removed_rows: Any
    _mih_lock: Any
    _faiss_index: Any
    _faiss_keep: list
    _faiss_trained_n: int

    # ---- FAISS mirror: FAISS row r is bank row r -------------------------------------
    def _faiss_rebuild(self) -> None:
        if self._backend == "flat":
            return
        self._faiss_index, self._faiss_keep, self._faiss_trained_n = None, [], 0
        if self._n:
            self._faiss_append(self._codes[: self._n], rebuild=True)

    def _faiss_append(self, codes: np.ndarray, rebuild: bool = False) -> None:
        if self._backend == "flat":
            return
        faiss = import_faiss()
        d = 8 * PDQ_HASH_BYTES
        if self._backend == "faiss-ivf" and self._faiss_index is not None and self._n > 4 * self._faiss_trained_n:
            return self._faiss_rebuild()  # the bank outgrew the trained lists: retrain
        if self._faiss_index is None:
            if self._backend == "faiss-flat":
                index = faiss.IndexBinaryFlat(d)
            elif self._backend == "faiss-mih":
                index = faiss.IndexBinaryMultiHash(d, _MIH_TABLES, d // _MIH_TABLES)
            elif self._backend == "faiss-hnsw":
                index = faiss.IndexBinaryHNSW(d, self._options["hnsw_m"])
                index.hnsw.efSearch = self._options["hnsw_ef_search"]
            else:  # faiss-ivf: train on the whole bank as it is now
                train = self._codes[: self._n]
                nlist = self._options["ivf_nlist"] or min(1024, int(math.sqrt(self._n)))
                nlist = max(1, min(nlist, self._n // 39 or 1))
                quantizer = faiss.IndexBinaryFlat(d)
                index = faiss.IndexBinaryIVF(quantizer, d, nlist)
                index.nprobe = min(self._options["ivf_nprobe"], nlist)
                index.train(np.ascontiguousarray(train))
                self._faiss_keep = [quantizer]
                self._faiss_trained_n = self._n
                codes = train  # the mirror is built from the whole bank
            self._faiss_index = index
        index = self._faiss_index
        index.add(np.ascontiguousarray(codes))
        if index.ntotal != self._n:  # internal invariant: FAISS row r is bank row r
            raise RuntimeError("FAISS mirror out of step with the bank")

    def _faiss_threads(self, threads: int) -> None:
        import_faiss().omp_set_num_threads(_cpu_threads(threads))

    def _faiss_range(self, flat: np.ndarray, radius: int, threads: int):
        """Raw hits (flat query row, bank row, distance) of a FAISS backend; tombstones dropped."""
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32))
        if self._faiss_index is None or flat.shape[0] == 0:
            return empty
        self._faiss_threads(threads)
        index = self._faiss_index
        if self._backend == "faiss-hnsw":
            k = min(self._options["hnsw_k"], self._n)
            D, I = index.search(flat, k)
            qflat, col = np.nonzero((I >= 0) & (D <= radius))
            rows, dists = I[qflat, col], D[qflat, col]
        else:
            if self._backend == "faiss-mih":
                with self._mih_lock:
                    index.nflip = radius // _MIH_TABLES
                    lims, D, I = index.range_search(flat, radius + 1)  # FAISS: distance < radius
            else:
                lims, D, I = index.range_search(flat, radius + 1)
            qflat = np.repeat(np.arange(flat.shape[0], dtype=np.int64), np.diff(lims.astype(np.int64)))
            rows, dists = I, D
        rows = np.asarray(rows, dtype=np.int64)
        dists = np.asarray(dists).astype(np.int32)
        if self._removed_rows is not None and rows.size:
            keep = ~np.isin(rows, self._removed_rows)
            qflat, rows, dists = qflat[keep], rows[keep], dists[keep]
        return np.asarray(qflat, dtype=np.int64), self._ids[rows], dists

    def _faiss_knn(self, flat: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids (Q, k), distances (Q, k)) ascending by (distance, id), tombstones skipped."""
        nq = flat.shape[0]
        out_ids = np.full((nq, k), KNN_MISSING_ID, dtype=np.int64)
        out_d = np.full((nq, k), KNN_MISSING_DISTANCE, dtype=np.int32)
        if self._faiss_index is None or nq == 0:
            return out_ids, out_d
        self._faiss_threads(threads)
        # Ask for enough extra neighbours to cover tombstones.
        kk = min(self._n, k + len(self._removed))
        if self._backend == "faiss-mih":
            with self._mih_lock:
                D, I = self._faiss_index.search(flat, kk)
        else:
            D, I = self._faiss_index.search(flat, kk)
        removed = self._removed_rows
        for qi in range(nq):
            rows = I[qi]
            ok = rows >= 0
            if removed is not None:
                ok &= ~np.isin(rows, removed)
            ids = self._ids[rows[ok]]
            d = D[qi][ok].astype(np.int32)
            order = np.lexsort((ids, d))[:k]
            out_ids[qi, : order.size] = ids[order]
            out_d[qi, : order.size] = d[order]
        return out_ids, out_d
