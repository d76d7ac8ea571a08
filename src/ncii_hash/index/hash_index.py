"""HashIndex: exact matching of PDQ hashes against a bank, one interface over several backends.

Backends (``HashIndex(backend=...)``):

* ``"flat"`` (default, exact): our C++ kernel (``csrc/hamming.*``): a packed bank scanned with
  SIMD popcounts, blocked so that a batch of queries reads the bank once, on all cores.
* ``"faiss-flat"`` (exact): FAISS ``IndexBinaryFlat``.
* ``"faiss-mih"`` (exact for range search): FAISS ``IndexBinaryMultiHash`` with 16 tables of
  16 bits. ``nflip = radius // 16``, so by pigeonhole every code within the radius shares a
  bucket with the query in some table (cost grows quickly with the radius; at PDQ's 31,
  nflip is 1). Its k-NN is approximate.
* ``"faiss-ivf"`` and ``"faiss-hnsw"`` (APPROXIMATE: they can miss matches; benchmarks
  report their recall): FAISS ``IndexBinaryIVF`` and ``IndexBinaryHNSW`` (range search
  through a k-NN of ``hnsw_k`` candidates, filtered by the radius).

FAISS is optional: ``pip install 'ncii-hash[faiss]'``.

Invariants and contracts:

* Codes are 32-byte PDQ hashes (``uint8 (N, 32)``); ids are non-negative int64, unique among
  live entries; distances are bit counts (int32); range search is inclusive
  (``distance <= radius``, default ``PDQ_MATCH_THRESHOLD`` = 31).
* Storage is ``codes (n, 32)`` + ``ids (n,)`` sorted by id: 40 bytes per hash. Rows are kept in
  id order so that ids are found by binary search without a hash map; adding ids larger than
  every current id appends, adding smaller ones re-sorts the bank (O(n): add in increasing-id
  order, or in large batches). FAISS backends keep their own copy of the codes too.
* ``remove`` is effective immediately for every later query: removed rows become tombstones
  that the kernels skip. Space is reclaimed by ``compact()``, which runs automatically once
  tombstones exceed ``compact_fraction`` of the rows.
* Thread-safety: any number of searches may run at once (the kernels release the GIL);
  ``add``/``remove``/``compact`` take a writer lock and wait for running searches, and new
  searches wait for them (a readers-writer lock, writers first). ``save`` is a reader.
* Results do not depend on the thread count: range hits per query are ordered by
  (distance, id); ``"flat"`` k-NN breaks distance ties toward the smaller id.
"""

from __future__ import annotations

import json
import mmap as _mmap  # noqa: F401  (type of HashIndex._mapped)
import os
import threading
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .._core import hamming_knn, hamming_range_search
from ..hashes import PDQ_HASH_BYTES, PDQ_MATCH_THRESHOLD, as_hash_array
from .faiss_mirror import FaissMirrorMixin, import_faiss
from .file import read_index_file, write_index_file
from .inputs import NUM_DIHEDRAL, as_id_array, as_queries, check_int  # noqa: F401
from .results import KNN_MISSING_DISTANCE, KNN_MISSING_ID, KnnResult, Match, RangeResult  # noqa: F401
from .rwlock import ReadWriteLock

BACKENDS = ("flat", "faiss-flat", "faiss-mih", "faiss-ivf", "faiss-hnsw")
#: Backends whose range search returns every code within the radius.
EXACT_BACKENDS = frozenset({"flat", "faiss-flat", "faiss-mih"})
_MAX_DISTANCE = 8 * PDQ_HASH_BYTES
_MIN_AUTO_COMPACT = 1024
_ID_LIMIT = 1 << 63  # ids are int64: every id is below this  # never auto-compact for fewer tombstones than this

PathLike = Union[str, "os.PathLike[str]"]


#: The most neighbours one k-NN call returns per query: the result is (queries, k), so an
#: unbounded k would let one call allocate without limit (use range_search for "everything
#: within a distance").
MAX_KNN = 10_000


class HashIndex(FaissMirrorMixin):
    """A searchable set of PDQ hashes with int64 ids. See the module docstring for contracts.

    Options (keyword-only): ``compact_fraction`` (auto-compaction threshold, None to disable);
    ``ivf_nlist`` / ``ivf_nprobe`` (faiss-ivf; nlist defaults to min(1024, sqrt(n))); ``hnsw_m`` /
    ``hnsw_ef_search`` / ``hnsw_k`` (faiss-hnsw).
    """

    def __init__(
        self,
        backend: str = "flat",
        *,
        compact_fraction: Optional[float] = 0.25,
        ivf_nlist: Optional[int] = None,
        ivf_nprobe: int = 16,
        hnsw_m: int = 32,
        hnsw_ef_search: int = 128,
        hnsw_k: int = 64,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
        if compact_fraction is not None and not (0.0 < float(compact_fraction) <= 1.0):
            raise ValueError(f"compact_fraction must be in (0, 1] or None, got {compact_fraction!r}")
        if backend != "flat":
            import_faiss()  # fail early, naming the extra
        self._backend = backend
        self._compact_fraction = None if compact_fraction is None else float(compact_fraction)
        self._options = {
            "ivf_nlist": None if ivf_nlist is None else check_int(ivf_nlist, "ivf_nlist", 1),
            "ivf_nprobe": check_int(ivf_nprobe, "ivf_nprobe", 1),
            "hnsw_m": check_int(hnsw_m, "hnsw_m", 2),
            "hnsw_ef_search": check_int(hnsw_ef_search, "hnsw_ef_search", 1),
            "hnsw_k": check_int(hnsw_k, "hnsw_k", 1),
        }
        self._lock = ReadWriteLock()
        self._codes = np.zeros((0, PDQ_HASH_BYTES), dtype=np.uint8)  # capacity rows; [:n] live or tombstoned
        self._ids = np.zeros(0, dtype=np.int64)
        self._n = 0
        self._removed: set[int] = set()  # tombstoned rows
        self._removed_rows: Optional[np.ndarray] = None  # sorted copy of _removed for the kernels
        self._next_id = 0
        self._mapped: Optional[_mmap.mmap] = None  # file mapping behind _codes/_ids (read-only)
        self._faiss_index = None
        self._faiss_keep: list = []  # objects FAISS borrows (IVF quantizer)
        self._faiss_trained_n = 0
        self._mih_lock = threading.Lock()  # nflip is index state: one MIH search at a time

    # ---- properties -------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self._backend

    @property
    def exact(self) -> bool:
        """Whether range search returns every code within the radius."""
        return self._backend in EXACT_BACKENDS

    def __len__(self) -> int:
        return self._n - len(self._removed)

    def __repr__(self) -> str:
        return f"HashIndex(backend={self._backend!r}, size={len(self)}, tombstones={len(self._removed)})"

    @property
    def ids(self) -> np.ndarray:
        """The live ids, ascending (a copy)."""
        with self._lock.read():
            ids = self._ids[: self._n]
            if self._removed_rows is not None:
                ids = np.delete(ids, self._removed_rows)
            return np.array(ids, dtype=np.int64)

    def __contains__(self, id_: object) -> bool:
        with self._lock.read():
            row = self._row_of(int(id_))  # type: ignore[call-overload]
            return row is not None and row not in self._removed

    # ---- mutation ---------------------------------------------------------------------
    def add(self, hashes: object, ids: object = None) -> np.ndarray:
        """Add hashes ``uint8 (N, 32)``; returns their int64 ids (``ids`` or fresh ones).

        Raises ValueError for negative ids, ids repeated in the call or already in the index.
        """
        codes = as_hash_array(hashes, name="hashes")
        n_new = codes.shape[0]
        with self._lock.write():
            if ids is None:
                if self._next_id + n_new > _ID_LIMIT:
                    raise ValueError(f"no fresh ids left for {n_new} hashes (ids are int64); pass ids explicitly")
                new_ids = np.arange(self._next_id, self._next_id + n_new, dtype=np.int64)
            else:
                new_ids = as_id_array(ids)
                if new_ids.shape[0] != n_new:
                    raise ValueError(f"ids must have one entry per hash: got {new_ids.shape[0]} ids for {n_new} hashes")
                if n_new and new_ids.min() < 0:
                    raise ValueError("ids must be non-negative")
                uniq = np.unique(new_ids)
                if uniq.shape[0] != n_new:
                    raise ValueError("ids contains duplicates; every hash needs its own id")
                rows = self._rows_of(new_ids)
                present = rows >= 0
                if present.any():
                    live = [int(new_ids[i]) for i in np.nonzero(present)[0] if int(rows[i]) not in self._removed]
                    if live:
                        raise ValueError(
                            f"ids already in the index: {live[:5]}{' ...' if len(live) > 5 else ''}; "
                            "remove them first or let add() choose ids"
                        )
                    self._compact_locked()  # the id was removed: reclaim its row before reuse
            if n_new == 0:
                return new_ids
            if n_new == 1 or bool(np.all(new_ids[1:] > new_ids[:-1])):  # e.g. auto ids: no copy
                sorted_ids, sorted_codes = new_ids, codes
            else:
                order = np.argsort(new_ids, kind="stable")
                sorted_ids, sorted_codes = new_ids[order], codes[order]
            appending = self._n == 0 or sorted_ids[0] > self._ids[self._n - 1]
            self._ensure_writable(self._n + n_new)
            if appending:
                self._codes[self._n : self._n + n_new] = sorted_codes
                self._ids[self._n : self._n + n_new] = sorted_ids
                self._n += n_new
                self._faiss_append(sorted_codes)
            else:
                self._merge_locked(sorted_codes, sorted_ids)
            self._next_id = max(self._next_id, int(sorted_ids[-1]) + 1)
            return new_ids

    def remove(self, ids: object) -> int:
        """Remove entries by id; returns how many were removed (unknown ids are ignored).

        Effective immediately for every later search."""
        arr = as_id_array(ids)
        with self._lock.write():
            rows = self._rows_of(np.unique(arr))
            newly = [int(r) for r in rows if r >= 0 and int(r) not in self._removed]
            if not newly:
                return 0
            self._removed.update(newly)
            self._removed_rows = np.array(sorted(self._removed), dtype=np.int64)
            if (
                self._compact_fraction is not None
                and len(self._removed) >= _MIN_AUTO_COMPACT
                and len(self._removed) > self._compact_fraction * self._n
            ):
                self._compact_locked()
            return len(newly)

    def compact(self) -> None:
        """Drop tombstoned rows and release their space now."""
        with self._lock.write():
            self._compact_locked()

    # ---- search -----------------------------------------------------------------------
    def range_search(
        self, queries: object, radius: int = PDQ_MATCH_THRESHOLD, *, dihedral: bool = False, threads: int = 0
    ) -> RangeResult:
        """Every live entry within ``radius`` (inclusive) of each query.

        ``queries``: ``(Q, 32)`` hashes, or with ``dihedral=True`` ``(Q, 8, 32)`` dihedral sets
        from ``pdq_hash(..., dihedral=True).dihedral``; then each (query, id) pair is reported
        once with the smallest distance over the 8 variants and the lowest variant reaching it.
        ``threads=0`` uses all cores.
        """
        radius = check_int(radius, "radius", 0, _MAX_DISTANCE)
        threads = check_int(threads, "threads", 0)
        flat, nq, variants = as_queries(queries, bool(dihedral))
        with self._lock.read():
            if self._backend == "flat":
                lims, ids, dists, var = hamming_range_search(
                    self._codes[: self._n], flat, radius, variants, self._ids[: self._n], self._removed_rows, threads
                )
                if variants > 1 and var is None:  # no hits at all
                    var = np.zeros(0, dtype=np.int8)
                return RangeResult(lims, ids, dists, var)
            qflat, rows, dists = self._faiss_range(flat, radius, threads)
        return self._merge_hits(qflat, rows, dists, nq, variants)

    def knn(self, queries: object, k: int, *, threads: int = 0) -> KnnResult:
        """The ``k`` nearest live entries of each ``(Q, 32)`` query, ascending by distance
        ("flat": ties to the smaller id). Exact for "flat" and "faiss-flat" only."""
        k = check_int(k, "k", 1, MAX_KNN)
        threads = check_int(threads, "threads", 0)
        flat, nq, _ = as_queries(queries, False)
        with self._lock.read():
            if self._backend == "flat":
                ids, dists = hamming_knn(
                    self._codes[: self._n], flat, k, self._ids[: self._n], self._removed_rows, threads
                )
                return KnnResult(ids, dists)
            return KnnResult(*self._faiss_knn(flat, k, threads))

    # ---- persistence ------------------------------------------------------------------
    def save(self, path: PathLike) -> None:
        """Write the live entries to ``path`` atomically, owner-only (mode 0600).

        A temporary file in the same directory is written, fsynced and renamed over ``path``,
        so readers see the old file or the new one, never a mix. Layout (little-endian): a
        64-byte header (magic, format version, counts, offsets), the backend and options as
        JSON, the codes (64-byte aligned), the ids, then the SHA-256 of everything before it.
        FAISS structures are not saved; ``load`` rebuilds them. The bank is sensitive data
        (PDQ hashes can be partly inverted into rough likenesses): keep the file private.
        """
        target = Path(path)
        if not target.parent.is_dir():
            raise FileNotFoundError(f"cannot save index to {target}: directory {target.parent} does not exist")
        with self._lock.read():
            codes, ids = self._codes[: self._n], self._ids[: self._n]
            if self._removed_rows is not None:
                keep = np.ones(self._n, dtype=bool)
                keep[self._removed_rows] = False
                codes, ids = codes[keep], ids[keep]
            meta = json.dumps(
                {"backend": self._backend, "compact_fraction": self._compact_fraction, "options": self._options},
                sort_keys=True,
            ).encode()
            write_index_file(target, np.ascontiguousarray(codes), np.ascontiguousarray(ids, dtype="<i8"), self._next_id, meta)

    @classmethod
    def load(cls, path: PathLike, mmap: bool = True) -> "HashIndex":
        """Load an index written by :meth:`save`.

        Refuses (ValueError) a file that is not an index, has an unsupported version, is
        truncated, or whose checksum does not match (any flipped byte): a damaged index must be
        rebuilt from the bank, never searched. ``mmap=True`` maps the codes and ids read-only
        instead of copying them (the OS pages them in and shares them between processes); the
        checksum is still verified, which reads the whole file once at load (about 1 GB/s).
        Removing entries keeps the mapping; adding or compacting copies the bank into memory.
        """
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"no index file at {source}")
        codes, ids, next_id, meta, mapping = read_index_file(source, mmap)
        if meta.get("backend") not in BACKENDS:
            raise ValueError(f"{source}: index metadata names no known backend")
        try:
            index = cls(meta["backend"], compact_fraction=meta["compact_fraction"], **meta["options"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: index metadata is invalid ({exc})") from None
        index._codes, index._ids, index._n = codes, ids, int(ids.shape[0])
        index._next_id, index._mapped = next_id, mapping
        index._faiss_rebuild()
        return index

    # ---- internals --------------------------------------------------------------------
    def _row_of(self, id_: int) -> Optional[int]:
        r = int(self._rows_of(np.array([id_], dtype=np.int64))[0])
        return None if r < 0 else r

    def _rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id, or -1 (tombstoned rows included)."""
        live = self._ids[: self._n]
        pos = np.searchsorted(live, ids)
        pos_c = np.minimum(pos, max(self._n - 1, 0))
        found = (pos < self._n) & (live[pos_c] == ids) if self._n else np.zeros(ids.shape, dtype=bool)
        return np.where(found, pos, -1).astype(np.int64)

    def _ensure_writable(self, rows: int) -> None:
        """Make room for ``rows`` rows in private (not file-mapped) memory; capacity doubles."""
        cap = self._codes.shape[0]
        if self._mapped is None and rows <= cap:
            return
        new_cap = max(rows, 2 * cap if self._mapped is None else rows, 1024)
        codes = np.empty((new_cap, PDQ_HASH_BYTES), dtype=np.uint8)  # untouched pages cost no RAM
        ids = np.empty(new_cap, dtype=np.int64)
        codes[: self._n] = self._codes[: self._n]
        ids[: self._n] = self._ids[: self._n]
        self._codes, self._ids, self._mapped = codes, ids, None

    def _merge_locked(self, codes: np.ndarray, ids: np.ndarray) -> None:
        all_ids = np.concatenate([self._ids[: self._n], ids])
        all_codes = np.concatenate([self._codes[: self._n], codes])
        order = np.argsort(all_ids, kind="stable")
        keep = np.ones(all_ids.shape[0], dtype=bool)
        keep[list(self._removed)] = False
        order = order[keep[order]]
        self._install(all_codes[order], all_ids[order])

    def _compact_locked(self) -> None:
        if not self._removed:
            return
        keep = np.ones(self._n, dtype=bool)
        keep[self._removed_rows] = False
        self._install(self._codes[: self._n][keep], self._ids[: self._n][keep])

    def _install(self, codes: np.ndarray, ids: np.ndarray) -> None:
        """Replace the whole bank (exact-size private arrays) and rebuild any FAISS mirror."""
        self._codes = np.ascontiguousarray(codes)
        self._ids = np.ascontiguousarray(ids)
        self._n = ids.shape[0]
        self._mapped = None
        self._removed = set()
        self._removed_rows = None
        self._faiss_rebuild()

    def _merge_hits(self, qflat: np.ndarray, ids: np.ndarray, dists: np.ndarray, nq: int, variants: int) -> RangeResult:
        q = qflat // variants
        var = (qflat % variants).astype(np.int8)
        if variants > 1 and q.size:
            order = np.lexsort((var, dists, ids, q))
            q, ids, dists, var = q[order], ids[order], dists[order], var[order]
            first = np.ones(q.shape[0], dtype=bool)
            first[1:] = (q[1:] != q[:-1]) | (ids[1:] != ids[:-1])
            q, ids, dists, var = q[first], ids[first], dists[first], var[first]
        order = np.lexsort((ids, dists, q))
        lims = np.zeros(nq + 1, dtype=np.int64)
        np.cumsum(np.bincount(q, minlength=nq), out=lims[1:])
        return RangeResult(
            lims,
            np.ascontiguousarray(ids[order], dtype=np.int64),
            np.ascontiguousarray(dists[order], dtype=np.int32),
            var[order] if variants > 1 else None,
        )
