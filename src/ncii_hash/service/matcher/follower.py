"""Keeping a matcher's index live: a thread that applies the store's change log as it commits.

It waits on the store's change listener -- PostgreSQL ``LISTEN`` (woken by the ``NOTIFY``
every committed write sends), SQLite a poll interval -- and at the latest every
``poll_seconds`` calls ``refresh()`` (the bank applies new hashes and withdrawals from the
log; it never rebuilds). ``last_ok`` is when a refresh last succeeded (``/status`` reports a
stale index when that lies too far back, e.g. while the store is unreachable).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger("ncii_hash.matcher")


class ChangeFollower:
    def __init__(self, refresh: Callable[[], int], listener: Any, *, poll_seconds: float):
        self._refresh = refresh
        self._listener = listener
        self._poll = poll_seconds
        self._stop = threading.Event()
        self.last_ok = time.time()
        self.seq = 0
        self.refreshes = 0
        self._thread = threading.Thread(target=self._run, name="ncii-hash-change-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        failing = False
        try:
            while not self._stop.is_set():
                self._listener.wait(self._poll)
                if self._stop.is_set():
                    break
                try:
                    self.seq = self._refresh()
                    self.refreshes += 1
                    self.last_ok = time.time()
                    failing = False
                except Exception:  # noqa: BLE001 - the store may be restarting: keep following
                    if not failing:
                        log.warning("could not apply the change log (store unavailable?); retrying")
                    failing = True
                    self._stop.wait(self._poll)
        finally:
            self._listener.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
