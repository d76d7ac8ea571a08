"""Serving one app from several worker processes on one port (``--workers N``).

Python runs one thread of bytecode at a time: a service that parses HTTP, resolves and encodes
answers on one event loop uses about one core, however many the machine has. N workers are N
forked processes, each with its own app -- for the matcher its own bank connection, index,
change follower and lookup batcher, so writes reach every worker through the store's change
log exactly as they reach separate matcher processes.

Sockets: on Linux each worker listens on its own socket bound to the same address with
``SO_REUSEPORT``, and the kernel spreads new connections evenly over them (one shared socket
would let whichever worker wakes first take most keep-alive connections). The parent binds
them all before forking and keeps them open, so connections made while a worker restarts wait
in its socket's queue instead of being refused. Elsewhere the workers share one socket.

The parent only supervises: a worker that dies (a crash, ``kill -9``) is started again on its
socket, after a pause that doubles while it keeps dying young; SIGTERM or SIGINT to the parent
stops every worker gracefully (each closes its app: the matcher saves its snapshot), then
kills what has not stopped after ``stop_seconds``. Workers run in their own process group, so a
terminal's Ctrl-C reaches the parent alone and each worker gets exactly one stop signal; on
Linux a worker is also stopped when the parent dies, even by ``kill -9``.
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

log = logging.getLogger("ncii_hash.workers")

#: a worker that dies sooner than this after its start counts as dying young
YOUNG_SECONDS = 10.0
MAX_PAUSE_SECONDS = 30.0
_LINUX = sys.platform.startswith("linux")


class WriteBoard:
    """How many writes each worker made, in memory every worker shares (an anonymous shared
    mapping made before they fork): one 8-byte counter per worker, written only by its worker.

    A worker counts each write it commits; before searching, a worker whose sum of counters
    moved applies the change log first. So a lookup that starts after another worker answered a
    write sees it, as with one process -- without waiting for the poll (SQLite) or the
    notification (PostgreSQL), which remain for writers outside the pool (``bank sync``, other
    machines).
    """

    def __init__(self, workers: int):
        self._map = mmap.mmap(-1, 8 * max(1, workers))  # MAP_SHARED | MAP_ANONYMOUS on POSIX
        self._slots = memoryview(self._map).cast("Q")
        self._lock = threading.Lock()  # this worker's threads; other workers write other slots

    def bump(self, worker: int) -> None:
        with self._lock:
            self._slots[worker] += 1

    def version(self) -> int:
        """Moves whenever any worker counted a write (the counters only grow)."""
        return sum(self._slots)


@dataclass(frozen=True)
class Worker:
    """What one worker's app is told: its number, and the pool's write board (None alone)."""

    index: int = 0
    board: Optional[WriteBoard] = None


def reuse_port_supported() -> bool:
    """Whether sockets on one address can each take a share of its connections (Linux)."""
    return _LINUX and hasattr(socket, "SO_REUSEPORT")


class WorkerPool:
    """Runs ``target(index, sock)`` in ``len(sockets)`` forked workers (worker ``index`` on
    ``sockets[index]``) until stopped; see the module's notes."""

    def __init__(self, sockets: Sequence[socket.socket], target: Callable[[int, socket.socket], None], *,
                 stop_seconds: float = 60.0):
        if not sockets:
            raise ValueError("a worker pool needs at least one socket")
        self._sockets = list(sockets)
        self._target = target
        self._stop_seconds = stop_seconds
        self._context = multiprocessing.get_context("fork")
        self._workers: list[Optional[Any]] = [None] * len(self._sockets)
        self._started_at = [0.0] * len(self._sockets)
        self._pause = [0.0] * len(self._sockets)
        self._due = [0.0] * len(self._sockets)  #: when a dead worker is started again
        self._stopping = False
        self.restarts = 0

    def run(self) -> None:
        """Start every worker, supervise until SIGTERM/SIGINT, stop them; returns after the last
        one exited."""
        previous = {sig: signal.signal(sig, self._on_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(len(self._sockets)):
                self._start(index)
            while not self._stopping:
                self._supervise()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Ask :meth:`run` to stop the workers (from a signal handler or another thread)."""
        self._stopping = True

    def pids(self) -> list[Optional[int]]:
        return [w.pid if w is not None and w.is_alive() else None for w in self._workers]

    # ---- internals ----------------------------------------------------------------------
    def _on_stop(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _start(self, index: int) -> None:
        others = [s for s in self._sockets if s is not self._sockets[index]]
        worker = self._context.Process(target=_worker_main, args=(self._target, index, self._sockets[index], others),
                                       name=f"ncii-hash-worker-{index}", daemon=False)
        worker.start()
        self._workers[index] = worker
        self._started_at[index] = time.monotonic()

    def _supervise(self) -> None:
        live = [w for w in self._workers if w is not None]
        waiting = [d for w, d in zip(self._workers, self._due) if w is None]
        timeout = 1.0 if not waiting else max(0.0, min(1.0, min(waiting) - time.monotonic()))
        try:
            multiprocessing.connection.wait([w.sentinel for w in live], timeout=timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; a handler may still end it
            pass
        if self._stopping:
            return
        now = time.monotonic()
        for index, worker in enumerate(self._workers):
            if worker is not None and not worker.is_alive():
                worker.join()
                self._pause[index] = next_pause(self._pause[index], now - self._started_at[index])
                self._due[index] = now + self._pause[index]
                self._workers[index] = None
                log.warning("worker %d (pid %s) exited with %s; starting it again in %.1f s", index, worker.pid,
                            _describe_exit(worker.exitcode), self._pause[index])
            elif worker is None and now >= self._due[index]:
                self._start(index)
                self.restarts += 1

    def _stop_all(self) -> None:
        live = [w for w in self._workers if w is not None and w.is_alive()]
        for w in live:
            _signal(w.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._stop_seconds
        for w in live:
            w.join(max(0.0, deadline - time.monotonic()))
        for w in live:
            if w.is_alive():
                log.warning("worker pid %s did not stop within %.0f s; killing it", w.pid, self._stop_seconds)
                _signal(w.pid, signal.SIGKILL)
                w.join()


def next_pause(previous: float, lived_seconds: float) -> float:
    """Seconds before a dead worker starts again: none after a long life, else 0.5 s doubling
    (from the previous pause) up to MAX_PAUSE_SECONDS, so a worker that cannot start does not
    spin."""
    if lived_seconds >= YOUNG_SECONDS:
        return 0.0
    return min(MAX_PAUSE_SECONDS, max(0.5, 2 * previous))


def _worker_main(target: Callable[[int, socket.socket], None], index: int, sock: socket.socket,
                 others: list[socket.socket]) -> None:
    parent = os.getppid()
    os.setpgrp()  # the terminal's Ctrl-C goes to the parent, which stops each worker once
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    _stop_with_parent(parent)
    for other in others:  # the other workers' sockets stay with them (and the parent)
        other.close()
    target(index, sock)


def _stop_with_parent(parent: int) -> None:
    """Linux: SIGTERM this worker when its supervisor dies, however it died (``kill -9``
    included), so no orphan keeps serving the port; elsewhere the supervisor's stop does it."""
    if not _LINUX:
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the supervisor died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _signal(pid: Optional[int], sig: int) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
