"""Wrong-PIN backoff: after ``FREE_FAILURES`` failures in a row, each further attempt must wait
``min(2 ** (failures - FREE_FAILURES), MAX_WAIT)`` seconds. Per case the count is in the store
(the right PIN resets it); per client address it is kept in memory only, never written, and
forgotten after an hour without failures. Nothing ever locks for good: partners see every case
number, so a permanent lock would let anyone stop a survivor from withdrawing.

The clock is injected (``HubSettings.clock``) so tests move time instead of sleeping.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Callable

FREE_FAILURES = 3
MAX_WAIT = 3600.0
FORGET_AFTER = 3600.0
MAX_CLIENTS = 100_000


def wait_after(failures: int) -> float:
    """Seconds the next attempt must wait after ``failures`` wrong PINs in a row."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(2.0 ** (failures - FREE_FAILURES), MAX_WAIT)


def retry_after(not_before: float, now: float) -> int:
    """The Retry-After header value (whole seconds, at least 1)."""
    return max(1, math.ceil(not_before - now))


class ClientThrottle:
    """Wrong PINs per client address, in memory only (bounded, least recently failed dropped)."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._lock = threading.Lock()
        self._by_client: OrderedDict[str, tuple[int, float, float]] = OrderedDict()  # failures, not_before, last

    def not_before(self, client: str) -> float:
        with self._lock:
            entry = self._by_client.get(client)
            return 0.0 if entry is None else entry[1]

    def failed(self, client: str) -> None:
        now = self._clock()
        with self._lock:
            failures, _, last = self._by_client.pop(client, (0, 0.0, now))
            if now - last > FORGET_AFTER:
                failures = 0
            failures += 1
            self._by_client[client] = (failures, now + wait_after(failures), now)
            while len(self._by_client) > MAX_CLIENTS:
                self._by_client.popitem(last=False)
