"""Micro-batching of concurrent lookups: one kernel call for every lookup that is waiting.

A lookup hands its query rows to :meth:`LookupBatcher.submit` and gets a future. One worker
thread takes *everything* that is waiting, groups it by search options (radius, dihedral),
and makes one call of ``search(queries, radius, dihedral)`` per group; lookups that arrive
while that call runs wait for the next one. Under load a batch grows to what arrived during
one call (up to ``max_batch`` queries), so the bank is read once for many lookups; a lone
lookup is searched at once, without waiting for company.

On the event loop (:meth:`submit_async`) the lookups of one turn of the loop are gathered
first (a callback queued behind the requests the loop is already handling). A lookup that is
alone in its turn while the worker is idle is searched right there, on the loop's thread: a
lone client then pays no hand-over between threads (two thread wake-ups, ~0.15 ms on a busy
2-core machine, more than the kernel at 1M hashes). Several lookups in a turn, or a busy
worker, go to the worker as one batch, so the loop keeps reading requests while the kernel
runs (it holds no GIL).

``search`` returns, per query row, a list of hits; each future gets the hits of its own rows.
An exception in ``search`` is set on every future of that call (the worker carries on).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

Search = Callable[[np.ndarray, int, bool], Sequence[list]]


@dataclass
class _Pending:
    queries: np.ndarray  #: (n, 32) or (n, 8, 32) uint8
    radius: int
    dihedral: bool
    #: submit's future, or (submit_async) the event loop's, settled with the whole call's others
    #: in one call_soon_threadsafe (one wake-up of the loop per kernel call, not one per lookup)
    future: Optional[Future] = None
    waiter: Optional[asyncio.Future] = None


class LookupBatcher:
    def __init__(self, search: Search, *, max_batch: int = 1024):
        self._search = search
        self._max_batch = max_batch
        self._pending: list[_Pending] = []
        self._cond = threading.Condition()
        self._closed = False
        self._in_call = False  #: the worker is searching (set under _cond when it takes work)
        self._gathered: list[_Pending] = []  #: this turn of the event loop's lookups
        self._gathered_on: Optional[asyncio.AbstractEventLoop] = None
        self.calls = 0  #: kernel calls made (for tests and the benchmark)
        self.queries = 0  #: query rows searched
        self.inline_calls = 0  #: of those, made on the event loop's thread
        self._thread = threading.Thread(target=self._run, name="ncii-hash-lookup-batcher", daemon=True)
        self._thread.start()

    def submit(self, queries: np.ndarray, radius: int, dihedral: bool = False) -> Future:
        """Queue ``queries`` (uint8 ``(n, 32)``, or ``(n, 8, 32)`` with ``dihedral``); the
        future's result is one list of hits per row."""
        item = _Pending(np.ascontiguousarray(queries, dtype=np.uint8), int(radius), bool(dihedral), future=Future())
        with self._cond:
            if self._closed:
                raise RuntimeError("the lookup batcher is closed")
            self._pending.append(item)
            self._cond.notify()
        assert item.future is not None
        return item.future

    def submit_async(self, queries: np.ndarray, radius: int, dihedral: bool = False) -> asyncio.Future:
        """:meth:`submit` for a coroutine on the running event loop (one loop at a time, as a
        server has): an asyncio future."""
        if self._closed:
            raise RuntimeError("the lookup batcher is closed")
        loop = asyncio.get_running_loop()
        item = _Pending(np.ascontiguousarray(queries, dtype=np.uint8), int(radius), bool(dihedral),
                        waiter=loop.create_future())
        if self._gathered and self._gathered_on is not loop:  # another loop's turn never ended (it closed)
            stale, self._gathered = self._gathered, []
            self._hand_over(stale)
        self._gathered.append(item)
        if len(self._gathered) == 1:
            self._gathered_on = loop
            loop.call_soon(self._flush)  # runs after the requests already on the loop's queue
        assert item.waiter is not None
        return item.waiter

    def _flush(self) -> None:
        """On the event loop, once per turn: search a lone lookup here if the worker is idle,
        else hand the turn's lookups to the worker."""
        items, self._gathered = self._gathered, []
        with self._cond:
            inline = len(items) == 1 and not (self._in_call or self._pending or self._closed)
        if not inline:
            self._hand_over(items)
            return
        self.inline_calls += 1
        _resolve([(i.waiter, result, exc) for i, result, exc in self._call(items, items[0].radius, items[0].dihedral)])

    def _hand_over(self, items: list[_Pending]) -> None:
        """Queue ``items`` for the worker (or, once closed, fail them)."""
        with self._cond:
            if not self._closed:
                self._pending.extend(items)
                self._cond.notify()
                return
        self._settle([(i, None, RuntimeError("the lookup batcher is closed")) for i in items])

    def _take(self) -> list[_Pending]:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            taken, rows = [], 0
            while self._pending and (not taken or rows + len(self._pending[0].queries) <= self._max_batch):
                item = self._pending.pop(0)
                taken.append(item)
                rows += len(item.queries)
            self._in_call = bool(taken)
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            if not taken:
                return  # closed and drained
            groups: dict[tuple[int, bool], list[_Pending]] = {}
            for item in taken:
                groups.setdefault((item.radius, item.dihedral), []).append(item)
            try:
                for (radius, dihedral), items in groups.items():
                    self._settle(self._call(items, radius, dihedral))
            finally:
                with self._cond:
                    self._in_call = False

    def _call(self, items: list[_Pending], radius: int, dihedral: bool) -> list[tuple[_Pending, Any, Optional[BaseException]]]:
        """Search ``items`` in one call: (item, its rows' hits or None, exception or None) each."""
        live = [i for i in items if i.future is None or i.future.set_running_or_notify_cancel()]
        if not live:
            return []
        try:
            queries = np.concatenate([i.queries for i in live]) if len(live) > 1 else live[0].queries
            hits = self._search(queries, radius, dihedral)
            self.calls += 1
            self.queries += len(queries)
        except BaseException as exc:  # noqa: BLE001 - every waiter gets the error, the worker carries on
            return [(i, None, exc) for i in live]
        outcomes, start = [], 0
        for i in live:
            n = len(i.queries)
            outcomes.append((i, list(hits[start:start + n]), None))
            start += n
        return outcomes

    @staticmethod
    def _settle(outcomes: list[tuple[_Pending, Any, Optional[BaseException]]]) -> None:
        by_loop: dict[Any, list] = {}
        for item, result, exc in outcomes:
            if item.future is not None:
                if exc is None:
                    item.future.set_result(result)
                else:
                    item.future.set_exception(exc)
            elif item.waiter is not None:
                by_loop.setdefault(item.waiter.get_loop(), []).append((item.waiter, result, exc))
        for loop, waiters in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, waiters)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(30)

    def stats(self) -> dict[str, Any]:
        return {"calls": self.calls, "queries": self.queries, "inline_calls": self.inline_calls}


def _resolve(waiters: list[tuple[asyncio.Future, Any, Optional[BaseException]]]) -> None:
    """On the event loop: settle the asyncio futures of one kernel call."""
    for waiter, result, exc in waiters:
        if waiter.done():  # the request went away (cancelled)
            continue
        if exc is None:
            waiter.set_result(result)
        else:
            waiter.set_exception(exc)
