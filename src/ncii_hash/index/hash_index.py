"""HashIndex: exact matching of PDQ hashes against a bank, one interface over several backends.

A HashIndex owns its rows (:class:`~.table.CodeTable`: codes, ids in id order, tombstones, an
optional file mapping), a readers-writer lock, and one backend object (a
:class:`~.searcher.Searcher`, chosen by ``HashIndex(backend=...)``; see ``backends.py``):
``"auto"`` (default, exact: ``"mih"`` per query where it beats the scan, below 64k rows simply
``"flat"``), ``"flat"`` (exact: our C++ scan kernel), ``"mih"`` (exact multi-index hashing,
``mih.py``), ``"faiss-flat"``, ``"faiss-mih"`` (exact range
search), ``"faiss-ivf"`` and ``"faiss-hnsw"`` (APPROXIMATE: they can miss matches; benchmarks
report their recall). FAISS is optional: ``pip install 'ncii-hash[faiss]'``.

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
  searches wait for them (a readers-writer lock, writers first). ``save``, ``to_bytes`` and
  pickling are readers.
* Results do not depend on the thread count: range hits per query are ordered by
  (distance, id); ``"flat"`` k-NN breaks distance ties toward the smaller id.
* Files and the bytes form (``save``/``load``, ``to_bytes``/``from_bytes``, pickle) are one
  checksummed container (``file.py``); they hold the live entries, never tombstones.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..errors import IndexFileError
from ..hashes import PDQ_HASH_BYTES, PDQ_MATCH_THRESHOLD, as_hash_array
from .backends import BACKENDS, DEFAULT_BACKEND, EXACT_BACKENDS  # noqa: F401  (re-exported)
from .file import IndexImage, index_bytes, parse_index, read_index, write_index
from .inputs import as_id_array, as_queries, check_int
from .results import KnnResult, RangeResult
from .rwlock import ReadWriteLock
from .searcher import backend_names, searcher_class
from .table import CodeTable

_MAX_DISTANCE = 8 * PDQ_HASH_BYTES
_MIN_AUTO_COMPACT = 1024  # never auto-compact for fewer tombstones than this

PathLike = Union[str, "os.PathLike[str]"]

#: The most neighbours one k-NN call returns per query: the result is (queries, k), so an
#: unbounded k would let one call allocate without limit (use range_search for "everything
#: within a distance").
MAX_KNN = 10_000


class HashIndex:
    """A searchable set of PDQ hashes with int64 ids. See the module docstring for contracts.

    Options (keyword-only): ``compact_fraction`` (auto-compaction threshold, None to disable);
    ``mih_substrings`` (mih/auto: substring tables, 10..32; default chosen from the size);
    ``ivf_nlist`` / ``ivf_nprobe`` (faiss-ivf; nlist defaults to min(1024, sqrt(n))); ``hnsw_m`` /
    ``hnsw_ef_search`` / ``hnsw_k`` (faiss-hnsw).
    """

    def __init__(
        self,
        backend: str = DEFAULT_BACKEND,
        *,
        compact_fraction: Optional[float] = 0.25,
        ivf_nlist: Optional[int] = None,
        ivf_nprobe: int = 16,
        hnsw_m: int = 32,
        hnsw_ef_search: int = 128,
        hnsw_k: int = 64,
        mih_substrings: Optional[int] = None,
    ) -> None:
        searcher_cls = searcher_class(backend)
        if compact_fraction is not None and not (0.0 < float(compact_fraction) <= 1.0):
            raise ValueError(f"compact_fraction must be in (0, 1] or None, got {compact_fraction!r}")
        self._compact_fraction = None if compact_fraction is None else float(compact_fraction)
        self._options = {
            "ivf_nlist": None if ivf_nlist is None else check_int(ivf_nlist, "ivf_nlist", 1),
            "ivf_nprobe": check_int(ivf_nprobe, "ivf_nprobe", 1),
            "hnsw_m": check_int(hnsw_m, "hnsw_m", 2),
            "hnsw_ef_search": check_int(hnsw_ef_search, "hnsw_ef_search", 1),
            "hnsw_k": check_int(hnsw_k, "hnsw_k", 1),
            "mih_substrings": None if mih_substrings is None else check_int(mih_substrings, "mih_substrings", 10, 32),
        }
        self._searcher = searcher_cls(self._options)
        self._lock = ReadWriteLock()
        self._table = CodeTable()

    # ---- properties -------------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self._searcher.name

    @property
    def exact(self) -> bool:
        """Whether range search returns every code within the radius."""
        return self._searcher.exact

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"HashIndex(backend={self.backend!r}, size={len(self)}, tombstones={self._table.tombstones})"

    @property
    def ids(self) -> np.ndarray:
        """The live ids, ascending (a copy)."""
        with self._lock.read():
            return self._table.live_ids()

    def __contains__(self, id_: object) -> bool:
        with self._lock.read():
            return self._table.contains(int(id_))  # type: ignore[call-overload]

    # ---- mutation ---------------------------------------------------------------------
    def add(self, hashes: object, ids: object = None) -> np.ndarray:
        """Add hashes ``uint8 (N, 32)``; returns their int64 ids (``ids`` or fresh ones).

        Raises ValueError for negative ids, ids repeated in the call or already in the index.
        """
        codes = as_hash_array(hashes, name="hashes")
        with self._lock.write():
            if ids is None:
                new_ids = self._table.fresh_ids(codes.shape[0])
            else:
                new_ids = as_id_array(ids)
                self._table.check_new_ids(new_ids, codes.shape[0])
            self._table.add(codes, new_ids)
            self._sync()
            return new_ids

    def remove(self, ids: object) -> int:
        """Remove entries by id; returns how many were removed (unknown ids are ignored).

        Effective immediately for every later search."""
        arr = as_id_array(ids)
        with self._lock.write():
            removed = self._table.remove(arr)
            dead = self._table.tombstones
            if (
                removed
                and self._compact_fraction is not None
                and dead >= _MIN_AUTO_COMPACT
                and dead > self._compact_fraction * self._table.n
            ):
                self._table.compact()
                self._sync()
            return removed

    def compact(self) -> None:
        """Drop tombstoned rows and release their space now."""
        with self._lock.write():
            self._table.compact()
            self._sync()

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
        flat, _, variants = as_queries(queries, bool(dihedral))
        with self._lock.read():
            return self._searcher.range_search(self._table, flat, radius, variants, threads)

    def knn(self, queries: object, k: int, *, threads: int = 0) -> KnnResult:
        """The ``k`` nearest live entries of each ``(Q, 32)`` query, ascending by distance
        ("flat": ties to the smaller id). Exact for "flat" and "faiss-flat" only."""
        k = check_int(k, "k", 1, MAX_KNN)
        threads = check_int(threads, "threads", 0)
        flat, _, _ = as_queries(queries, False)
        with self._lock.read():
            return self._searcher.knn(self._table, flat, k, threads)

    def backend_stats(self) -> dict:
        """What the backend did so far, for benchmarks and monitoring: for ``"mih"`` and
        ``"auto"`` the query, scan-routed query, probe and candidate counts, the indexed rows,
        substring widths and table bytes, and whether a rebuild runs; ``{}`` for the others."""
        engine = getattr(self._searcher, "engine", None)
        return engine.stats() if engine is not None else {}

    def wait_for_backend(self, timeout: Optional[float] = None) -> bool:
        """Wait for a background rebuild of the backend's tables (mih/auto); True when none
        runs any more. Searches never need this: they stay exact meanwhile."""
        engine = getattr(self._searcher, "engine", None)
        return engine.wait(timeout) if engine is not None else True

    # ---- persistence ------------------------------------------------------------------
    def save(self, path: PathLike) -> None:
        """Write the live entries to ``path`` atomically, owner-only (mode 0600).

        A temporary file in the same directory is written, fsynced and renamed over ``path``,
        so readers see the old file or the new one, never a mix. The file is a checksummed
        container (``ncii_hash.index.file``): codes (64-byte aligned), ids, the backend and
        options as JSON, then the SHA-256 of everything before it. FAISS structures are not
        saved; ``load`` rebuilds them. The bank is sensitive data (PDQ hashes can be partly
        inverted into rough likenesses): keep the file private.
        """
        target = Path(path)
        if not target.parent.is_dir():
            raise FileNotFoundError(f"cannot save index to {target}: directory {target.parent} does not exist")
        with self._lock.read():
            codes, ids = self._table.live()
            write_index(target, codes, ids, self._table.next_id, self._settings())

    @classmethod
    def load(cls, path: PathLike, mmap: bool = True) -> "HashIndex":
        """Load an index written by :meth:`save` (or by ncii_hash 0.x).

        Refuses (:class:`~ncii_hash.errors.IndexFileError`, a ValueError) a file that is not an
        index, has an unsupported version, is truncated, or whose checksum does not match (any
        flipped byte): a damaged index must be rebuilt from the bank, never searched.
        ``mmap=True`` maps the codes and ids read-only instead of copying them (the OS pages
        them in and shares them between processes); the checksum is still verified, which
        reads the whole file once at load (about 1 GB/s). Removing entries keeps the mapping;
        adding or compacting copies the bank into memory.
        """
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"no index file at {source}")
        return cls._from_image(read_index(source, mmap=mmap), str(source))

    def to_bytes(self) -> bytes:
        """The live entries, backend and options as one checksummed container in memory (the
        file format of :meth:`save`); :meth:`from_bytes` reads it back. Pickling uses it."""
        with self._lock.read():
            codes, ids = self._table.live()
            return index_bytes(codes, ids, self._table.next_id, self._settings())

    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview]) -> "HashIndex":
        """An index from :meth:`to_bytes` output (verified like a file; refused with
        :class:`~ncii_hash.errors.IndexFileError`). ``bytes`` are used without a copy."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes from HashIndex.to_bytes(), got {type(data).__name__}")
        buf = data if isinstance(data, bytes) else bytes(data)
        return cls._from_image(parse_index(buf, "HashIndex bytes"), "HashIndex bytes")

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (type(self).from_bytes, (self.to_bytes(),))

    # ---- internals --------------------------------------------------------------------
    def _settings(self) -> dict:
        return {"backend": self.backend, "compact_fraction": self._compact_fraction, "options": self._options}

    @classmethod
    def _from_image(cls, image: IndexImage, source: str) -> "HashIndex":
        meta = image.settings
        if meta.get("backend") not in backend_names():
            raise IndexFileError(f"{source}: index metadata names no known backend")
        try:
            index = cls(meta["backend"], compact_fraction=meta["compact_fraction"], **meta["options"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFileError(f"{source}: index metadata is invalid ({exc})") from None
        writable = image.codes.flags.writeable and image.ids.flags.writeable
        index._table.install(image.codes, image.ids, next_id=image.next_id,
                             borrowed=None if writable else image.buffer)
        index._sync()
        return index

    def _sync(self) -> None:
        """Bring the backend's mirror in step with the rows (writer lock held)."""
        first = self._table.take_changes()
        if first == 0:
            self._searcher.rebuild(self._table.codes)
        elif first is not None:
            self._searcher.append(self._table.codes, first)
