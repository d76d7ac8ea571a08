"""From the index's hash ids to what a lookup reports: content id, named bank, enabled flag and
the bank's ``matching_enabled_ratio`` -- without a store read per lookup.

The index answers with hash ids; HMA's answer needs each id's content id, bank and settings
(:meth:`BankCatalog.entries`, one read of a few statements). Lookups repeat the same ids, so
:class:`HitResolver` keeps the answers, and the bank ratios, until something they depend on
changes:

* the index's change sequence moved (hashes added or withdrawn, applied by the change
  follower or by this process's own writes), or
* the catalog's stored version moved (a bank created, renamed or re-rated, a case assigned, a
  content setting changed -- by this process, which says so at once through
  ``BankCatalog.on_write``, or by another, which the change follower reads at each step:
  within its poll interval).

Then the whole cache is dropped (:meth:`invalidate`). An answer fetched while an invalidation
happened is used for that lookup but not kept. Whether an item is enabled is decided at each
lookup from its stored ``disable_until_ts`` (a time limit expires without any write).
"""

from __future__ import annotations

import threading
import time
from typing import Iterable, Optional

from .catalog import BankCatalog, is_enabled

#: The cache is dropped rather than grown past this many hash ids.
MAX_ENTRIES = 1_000_000

Resolved = tuple[int, Optional[str], bool, float]  #: content id, bank, enabled, the bank's ratio


class HitResolver:
    def __init__(self, catalog: BankCatalog):
        self.catalog = catalog
        self._lock = threading.Lock()
        self._generation = 0
        self._entries: dict[int, tuple[int, Optional[str], int]] = {}
        self._ratios: Optional[dict[str, float]] = None
        self._seen: tuple[int, int] = (-1, -1)  #: (index change seq, catalog version) last followed
        self.fetches = 0  #: store reads made (for tests and /m/index/status)

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries = {}
            self._ratios = None

    def follow(self, index_seq: int) -> None:
        """After the change follower applied the log up to ``index_seq``: drop the cache if the
        index or the catalog moved since the last call (reads the catalog version: one
        statement)."""
        seen = (index_seq, self.catalog.version())
        if seen != self._seen:
            self._seen = seen
            self.invalidate()

    def resolve(self, hash_ids: Iterable[int]) -> dict[int, Resolved]:
        """``hash_id -> (content id, bank, enabled, ratio)`` for the ids still banked."""
        ids = list(dict.fromkeys(hash_ids))
        with self._lock:
            generation, entries, ratios = self._generation, self._entries, self._ratios
        missing = [h for h in ids if h not in entries]
        fetched = self.catalog.entries(missing) if missing else {}
        if missing or ratios is None:
            ratios = self.catalog.ratios() if ratios is None else ratios
            self.fetches += 1
            with self._lock:
                if generation == self._generation:  # nothing changed meanwhile: keep the answers
                    if len(self._entries) + len(fetched) > MAX_ENTRIES:
                        self._entries = {}
                    self._entries.update(fetched)
                    self._ratios = ratios
        now = time.time()
        out: dict[int, Resolved] = {}
        for h in ids:
            got = fetched.get(h) or entries.get(h)
            if got is not None:
                cid, bank, until = got
                out[h] = (cid, bank, is_enabled(until, now), ratios.get(bank, 0.0) if bank is not None else 0.0)
        return out
