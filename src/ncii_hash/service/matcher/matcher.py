"""The matcher behind the routes: its settings and the parts it owns.

:class:`Matcher` opens (in a background thread, so ``/status`` can say 503 meanwhile) the
:class:`~ncii_hash.bank.HashBank` -- its index loaded from the saved snapshot plus the log
tail, or built from the table -- and a second connection to the same store for the named
banks and API keys (:class:`BankCatalog`, :class:`ApiKeys`). Then it starts the
:class:`ChangeFollower` (live index) and the :class:`LookupBatcher` (one kernel call per
batch of waiting lookups; a batch's hits are resolved to content ids, banks and enabled
flags with one catalog query).

Writes through the API go to the bank (``add_case``/``withdraw``, one transaction each) and
the catalog; every matcher process on the same store sees them through the change log.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...bank import HashBank
from ...bank.store import open_database
from ...hashes import PDQ_MATCH_THRESHOLD
from ...index import DEFAULT_BACKEND
from ..access import StoreAccess
from ..workers import WriteBoard
from .batcher import LookupBatcher
from .catalog import BankCatalog
from .follower import ChangeFollower
from .keys import ApiKeys
from .resolver import HitResolver
from .media import UrlFetcher

log = logging.getLogger("ncii_hash.matcher")
MiB = 1024 * 1024
DEFAULT_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Hit:
    content_id: int
    bank: Optional[str]
    enabled: bool
    distance: int
    ratio: float  #: the bank's matching_enabled_ratio when the lookup ran


def best_hits(rows: list[list[Hit]]) -> list[Hit]:
    """The best hit per content id over several query rows, by (distance, content id)."""
    best: dict[int, Hit] = {}
    for hits in rows:
        for h in hits:
            if h.content_id not in best or h.distance < best[h.content_id].distance:
                best[h.content_id] = h
    return sorted(best.values(), key=lambda h: (h.distance, h.content_id))


@dataclass(frozen=True)
class MatcherSettings:
    backend: str = DEFAULT_BACKEND
    #: the longest a change waits before a matcher applies it when no notification arrives
    #: (SQLite has none: a poll reads two counters, ~20 reads a second at the default)
    poll_seconds: float = DEFAULT_POLL_SECONDS
    #: API keys (bearer tokens) for the curation routes' writes; for /m/* and /h/* as well
    require_key_for_writes: bool = False
    require_key_for_matching: bool = False
    #: hosts media may be fetched from by URL (empty: never)
    fetch_allow: tuple[str, ...] = ()
    max_upload_bytes: int = 32 * MiB
    max_fetch_bytes: int = 32 * MiB
    #: /status reports a stale index when the change log was last applied this long ago
    stale_seconds: float = 65.0
    max_batch: int = 1024
    threads: int = 0  #: kernel threads per call (0 = all cores)
    #: a PostgreSQL bank's index snapshots on this host (None: built from the table at start)
    snapshot_dir: Optional[str] = None
    #: this matcher's worker number when several processes serve one port (``--workers``)
    worker: int = 0


class Matcher:
    def __init__(self, target: str, settings: MatcherSettings = MatcherSettings(), *,
                 board: Optional[WriteBoard] = None):
        self.target = target
        self.settings = settings
        #: the worker pool's count of writes (``--workers``): moved -> apply the log before searching
        self.board = board
        self._board_seen = board.version() if board is not None else 0
        self.fetcher = UrlFetcher(settings.fetch_allow, max_bytes=settings.max_fetch_bytes)
        self.bank: Optional[HashBank] = None
        self.catalog: Optional[BankCatalog] = None
        self.resolver: Optional[HitResolver] = None
        self.keys: Optional[ApiKeys] = None
        self.batcher: Optional[LookupBatcher] = None
        self.follower: Optional[ChangeFollower] = None
        self.error: Optional[str] = None
        self.opened_seconds: Optional[float] = None
        self._ready = threading.Event()
        self._closed = False
        self._lock = threading.Lock()

    # ---- lifecycle ----------------------------------------------------------------------------
    def open_in_background(self) -> None:
        threading.Thread(target=self.open, name="ncii-hash-matcher-open", daemon=True).start()

    def open(self) -> None:
        started = time.perf_counter()
        try:
            access = StoreAccess(open_database(self.target, create=False))
            self.catalog, self.keys = BankCatalog(access), ApiKeys(access)
            self.resolver = HitResolver(self.catalog)
            self.catalog.on_write = self._wrote  # this process's catalog writes, at once
            bank = HashBank(self.target, create=False, backend=self.settings.backend,
                            snapshot_dir=self.settings.snapshot_dir)
            with self._lock:
                if self._closed:
                    bank.close(save_snapshot=False)
                    return
                self.bank = bank
                self.batcher = LookupBatcher(self._search, max_batch=self.settings.max_batch)
                self.follower = ChangeFollower(self._follow, access.db.change_listener(),
                                               poll_seconds=self.settings.poll_seconds)
                self.follower.start()
            self.opened_seconds = time.perf_counter() - started
            log.info("index ready (%s, %.2f s)", bank.index_source, self.opened_seconds)
            self._ready.set()
        except Exception as exc:  # noqa: BLE001 - reported by /status; the message names no data
            self.error = exc.__class__.__name__
            log.error("could not open the bank (%s)", self.error)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    @property
    def stale(self) -> bool:
        f = self.follower
        return f is not None and self.settings.stale_seconds > 0 and time.time() - f.last_ok > self.settings.stale_seconds

    def close(self) -> None:
        with self._lock:
            self._closed = True
        if self.follower is not None:
            self.follower.stop()
        if self.batcher is not None:
            self.batcher.close()
        if self.bank is not None:
            self.bank.close()  # saves the index snapshot (SQLite) for the next start
        if self.catalog is not None:
            self.catalog.access.close()

    # ---- matching -----------------------------------------------------------------------------
    def lookup(self, queries: np.ndarray, *, radius: int = PDQ_MATCH_THRESHOLD, dihedral: bool = False) -> Future:
        """A future of one list of :class:`Hit` per query row (best per content id)."""
        assert self.batcher is not None
        return self.batcher.submit(queries, radius, dihedral)

    def lookup_async(self, queries: np.ndarray, *, radius: int = PDQ_MATCH_THRESHOLD,
                     dihedral: bool = False) -> "asyncio.Future":
        """:meth:`lookup` for the event loop (its futures settled once per kernel call)."""
        assert self.batcher is not None
        return self.batcher.submit_async(queries, radius, dihedral)

    def _follow(self) -> int:
        """The change follower's step: apply the log, then let the resolver drop what moved."""
        assert self.bank is not None and self.resolver is not None
        seq = self.bank.refresh()
        self.resolver.follow(seq)
        return seq

    def _wrote(self) -> None:
        """After each write this process committed: drop the resolver's cache; tell the other
        workers (they apply the log before their next search)."""
        assert self.resolver is not None
        self.resolver.invalidate()
        if self.board is not None:
            self.board.bump(self.settings.worker)

    def _board_writes(self) -> None:
        """Another worker wrote since this one last looked: apply the log first, so a lookup
        sees every write answered before it, as with one process."""
        if self.board is not None:
            version = self.board.version()
            if version != self._board_seen:
                try:
                    self._follow()
                    self._board_seen = version
                except Exception:  # noqa: BLE001 - the store is away: search what the index holds; retried next time
                    log.warning("could not apply the change log before a lookup (store unavailable?)")

    def holds_windows(self) -> bool:
        """Whether the bank holds survivors' shared window hashes (then an uploaded photo is also
        searched through its window variants): the window indexes as the change follower keeps
        them, like the whole pictures' -- no store read on a lookup."""
        assert self.bank is not None
        self._board_writes()
        return self.bank.window_index_size > 0

    def variant_hits(self, frames: Optional[np.ndarray], windows: dict, radius: int) -> list[Hit]:
        """An upload's variant rows (``media.Hashed``): whole frames among the whole pictures,
        each window among the banked windows of its name; the best hit per content id."""
        rows: list[list[Hit]] = []
        if frames is not None and len(frames):
            rows += self._search(frames, radius, False)
        for name, codes in windows.items():
            rows += self._search(codes, radius, False, window=name)
        return best_hits(rows)

    def _search(self, queries: np.ndarray, radius: int, dihedral: bool,
                window: Optional[str] = None) -> list[list[Hit]]:
        assert self.bank is not None and self.resolver is not None
        self._board_writes()
        # The index's answer (one query row on one thread: more would only cost their start),
        # resolved to content ids, banks and settings by the resolver's cache.
        threads = self.settings.threads or (1 if len(queries) == 1 else 0)
        res = self.bank.search_index(queries, radius, dihedral=dihedral, threads=threads, window=window)
        per_query: list[dict[int, Hit]] = [{} for _ in range(len(queries))]
        if res.ids.size:
            ids, dists = res.ids.tolist(), res.distances.tolist()
            resolved = self.resolver.resolve(ids)
            lims = res.lims.tolist()
            for qi in range(len(lims) - 1):
                for j in range(lims[qi], lims[qi + 1]):
                    got = resolved.get(ids[j])
                    if got is None:
                        continue  # withdrawn since
                    cid, bank, enabled, ratio = got
                    best = per_query[qi].get(cid)
                    if best is None or dists[j] < best.distance:
                        per_query[qi][cid] = Hit(cid, bank, enabled, dists[j], ratio)
        return [sorted(d.values(), key=lambda h: (h.distance, h.content_id)) for d in per_query]

    # ---- writing ------------------------------------------------------------------------------
    def add_content(self, bank_name: str, codes: np.ndarray, quality: Optional[int] = None) -> int:
        """Bank one image hash as a new case in named bank ``bank_name``; its content id."""
        assert self.bank is not None and self.catalog is not None
        case_id = "hma." + secrets.token_hex(12)
        self.catalog.assign(case_id, bank_name)  # first: a crash after it leaves a row without a case
        self.bank.add_case(codes, None if quality is None else [quality], allow_low_quality=True, case_id=case_id)
        self._wrote()
        cid = self.catalog.content_id_of(case_id)
        assert cid is not None
        return cid

    def delete_case(self, case_id: str) -> int:
        assert self.bank is not None
        try:
            return self.bank.withdraw(case_id)
        except KeyError:
            return 0
        finally:
            self._wrote()

    def index_status(self) -> dict:
        bank, follower = self.bank, self.follower
        if bank is None or follower is None:
            return {"present": False, "built_to": -1, "size": 0, "worker": self.settings.worker}
        tables = bank.index_backend_stats()  # multi-index: rows in its tables, rebuilding or not
        return {"present": True, "built_to": int(follower.last_ok), "size": bank.index_size,
                "change_seq": follower.seq, "backend": self.settings.backend, "source": bank.index_source,
                **({"backend_indexed_rows": tables["indexed_rows"], "backend_building": tables["building"]}
                   if "indexed_rows" in tables else {}),
                **({f"lookup_{k}": v for k, v in self.batcher.stats().items()} if self.batcher else {}),
                "catalog_reads": self.resolver.fetches if self.resolver else 0, "worker": self.settings.worker}
