"""The ``"mih"`` and ``"auto"`` backends: exact multi-index hashing (``csrc/mih.*``).

A :class:`MultiIndex` owns the C++ substring tables (:class:`ncii_hash._core.MihTables`) over the
first ``tables.rows`` rows of the index's table and answers range searches through them: each
query probes, per substring, the values within a few bits of its own and verifies the rows found
with their full distance, so results are identical to the flat scan's (see ``csrc/mih.h`` for
the bound). Rows added later are scanned by the flat kernel until the tables are rebuilt;
tombstones are skipped as in the flat search.

Rebuilds never block searches: small tables (up to :data:`SYNC_BUILD_ROWS` rows) are built at
once, under the index's writer lock; larger ones in a background thread while searches go on
with the old tables plus a scan of the new rows (or, after every row changed -- a compaction, a
load -- with the flat scan alone). A rebuild starts when the unindexed tail exceeds
``max(TAIL_MIN_ROWS, rows / TAIL_FRACTION)``. Peak memory during a rebuild is two sets of
tables.

``"mih"`` always probes (exact at every radius, whatever the cost); ``"auto"`` asks the core's
cost model per query and sends a query to the flat scan when its buckets are so full (skewed,
low-quality hashes; huge radii; a whole batch reading the bank anyway) that probing would cost
more, and below :data:`AUTO_MIN_ROWS` rows builds no tables at all. k-NN always scans.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping, Optional

import numpy as np

from .._core import MihTables, mih_range_search
from .flat import FlatSearcher
from .results import KnnResult, RangeResult
from .table import CodeTable

#: Tables of at most this many rows are built synchronously (a few ms).
SYNC_BUILD_ROWS = 1 << 18
#: A rebuild starts when the rows added since the last build exceed this many ...
TAIL_MIN_ROWS = 1 << 16
#: ... and this fraction of the indexed rows (1/8).
TAIL_FRACTION = 8
#: ``"auto"`` builds no tables below this many rows: a scan of 64k codes takes microseconds.
AUTO_MIN_ROWS = 1 << 16


class MultiIndex:
    """Substring tables plus the flat kernel for the rest; see the module docstring."""

    def __init__(self, options: Mapping[str, Any], *, route: bool) -> None:
        self._substrings: int = options.get("mih_substrings") or 0
        self._route = route
        self._min_rows = AUTO_MIN_ROWS if route else 1
        self._flat = FlatSearcher(options)
        self._tables: Optional[MihTables] = None
        self._lock = threading.Lock()  # guards the fields below and _tables swaps
        self._generation = 0  # bumped when every row changes: older builds are discarded
        self._building: Optional[threading.Thread] = None
        self._counts = {"queries": 0, "scanned": 0, "probes": 0, "candidates": 0, "builds": 0}

    # ---- keeping in step with the rows (called under the index's writer lock) ---------------
    def rebuild(self, codes: np.ndarray) -> None:
        with self._lock:
            self._generation += 1
            self._tables = None
        self._maybe_build(codes)

    def append(self, codes: np.ndarray, start: int) -> None:
        self._maybe_build(codes)

    def _maybe_build(self, codes: np.ndarray) -> None:
        n = codes.shape[0]
        with self._lock:
            if n < self._min_rows or self._building is not None:
                return
            built = 0 if self._tables is None else self._tables.rows
            if self._tables is not None and n - built <= max(TAIL_MIN_ROWS, built // TAIL_FRACTION):
                return
            generation = self._generation
            if n <= SYNC_BUILD_ROWS:
                self._install(MihTables(codes, self._substrings), generation)
                return
            # Rows [0, n) of this array never change in place (appends go past n; compaction
            # installs new arrays and bumps the generation), so the thread may read them. Not a
            # daemon: Python 3.11 ends daemon threads at exit by unwinding them out of the C++
            # build, which aborts the process; exit waits for the build instead (seconds).
            self._building = threading.Thread(target=self._build, args=(codes, generation),
                                              name="ncii-hash-mih-build", daemon=False)
            self._building.start()

    def _build(self, codes: np.ndarray, generation: int) -> None:
        try:
            tables = MihTables(codes, self._substrings)
        except MemoryError:
            tables = None  # searches go on with the old tables and the scan
        with self._lock:
            self._building = None
            if tables is not None:
                self._install(tables, generation)

    def _install(self, tables: MihTables, generation: int) -> None:
        if generation == self._generation:
            self._tables = tables
            self._counts["builds"] += 1

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for a background build; True when none is running any more."""
        with self._lock:
            thread = self._building
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # ---- searching (under the index's reader lock) ------------------------------------------
    def range_search(self, table: CodeTable, queries: np.ndarray, radius: int, variants: int,
                     threads: int) -> RangeResult:
        tables = self._tables
        if tables is None:
            return self._flat.range_search(table, queries, radius, variants, threads)
        lims, ids, dists, var, (nq, scanned, probes, candidates) = mih_range_search(
            tables, table.codes, queries, radius, variants, table.ids, table.removed_rows, threads, self._route
        )
        with self._lock:
            c = self._counts
            c["queries"] += nq
            c["scanned"] += scanned
            c["probes"] += probes
            c["candidates"] += candidates
        if variants > 1 and var is None:
            var = np.zeros(0, dtype=np.int8)
        return RangeResult(lims, ids, dists, var)

    def knn(self, table: CodeTable, queries: np.ndarray, k: int, threads: int) -> KnnResult:
        return self._flat.knn(table, queries, k, threads)

    def stats(self) -> dict:
        with self._lock:
            tables = self._tables
            out = dict(self._counts)
            out.update(
                indexed_rows=0 if tables is None else tables.rows,
                substrings=None if tables is None else tables.substrings,
                widths=None if tables is None else list(tables.widths),
                table_bytes=0 if tables is None else tables.nbytes,
                building=self._building is not None,
            )
            return out


class MihSearcher:
    """``backend="mih"``: always probe the tables (exact)."""

    name = "mih"
    exact = True

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.engine = MultiIndex(options, route=False)

    def rebuild(self, codes: np.ndarray) -> None:
        self.engine.rebuild(codes)

    def append(self, codes: np.ndarray, start: int) -> None:
        self.engine.append(codes, start)

    def range_search(self, table: CodeTable, queries: np.ndarray, radius: int, variants: int,
                     threads: int) -> RangeResult:
        return self.engine.range_search(table, queries, radius, variants, threads)

    def knn(self, table: CodeTable, queries: np.ndarray, k: int, threads: int) -> KnnResult:
        return self.engine.knn(table, queries, k, threads)


class AutoSearcher:
    """``backend="auto"``: probe or scan per query, whichever the cost model says is cheaper."""

    name = "auto"
    exact = True

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.engine = MultiIndex(options, route=True)

    def rebuild(self, codes: np.ndarray) -> None:
        self.engine.rebuild(codes)

    def append(self, codes: np.ndarray, start: int) -> None:
        self.engine.append(codes, start)

    def range_search(self, table: CodeTable, queries: np.ndarray, radius: int, variants: int,
                     threads: int) -> RangeResult:
        return self.engine.range_search(table, queries, radius, variants, threads)

    def knn(self, table: CodeTable, queries: np.ndarray, k: int, threads: int) -> KnnResult:
        return self.engine.knn(table, queries, k, threads)
