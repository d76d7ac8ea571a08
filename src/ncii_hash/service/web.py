"""What the HTTP services (the hub, the matcher) share around their FastAPI apps: the one log
line per request, the request-body limit, and running an app on uvicorn.

* :class:`RequestLog` -- method, route *template*, status, milliseconds; never the path (paths
  and query strings carry case numbers, content ids and hashes) and never the client address.
* :class:`BodyLimit` -- 413 before a byte too many is read (``limit_for(path)`` bytes).
* :func:`serve_app` -- bind first (127.0.0.1 unless told otherwise), print the address line
  once, then serve with uvicorn's own access log off; with ``workers`` > 1 from that many
  forked processes on the same port (:mod:`ncii_hash.service.workers`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from typing import Any, Callable, Optional, Sequence, TextIO

from fastapi import HTTPException
from fastapi.responses import JSONResponse

from .workers import Worker, WorkerPool, WriteBoard, reuse_port_supported


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyLimit:
    """413 for bodies over ``limit_for(path)`` bytes; the error body is ``{error_key: text}``."""

    def __init__(self, app: Any, limit_for: Callable[[str], int], error_key: str = "detail"):
        self.app = app
        self.limit_for = limit_for
        self.error_key = error_key

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                response = JSONResponse({self.error_key: f"request body larger than {limit} bytes"}, status_code=413)
                await response(scope, receive, send)
                return
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


class RequestLog:
    """One line per request on ``log``: method, route template (never the path), status, ms.

    Routes in ``summarized`` (a matcher's lookups and health checks, thousands a second) get one
    line per second instead for each method, template and status seen in it: the count, the
    median and the slowest. A log line costs ~25 us of the event loop's time (a record, a
    formatted time, a write to stderr): at those rates, one line each would cost a lookup about
    a tenth of its CPU and fill the log with nothing a reader could tell apart.
    """

    def __init__(self, app: Any, log: logging.Logger, summarized: frozenset[str] = frozenset(),
                 every_seconds: float = 1.0):
        self.app = app
        self.log = log
        self.summarized = summarized
        self.every_seconds = every_seconds
        self._tally: dict[tuple[str, str, int], list[float]] = {}
        self._flush_at: Optional[asyncio.TimerHandle] = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(no route)"
            ms = (time.perf_counter() - started) * 1000
            if template in self.summarized:
                self._count(scope.get("method", "-"), template, status[0], ms)
            else:
                self.log.info("%s %s %d %.1fms", scope.get("method", "-"), template, status[0], ms)

    def _count(self, method: str, template: str, status: int, ms: float) -> None:
        self._tally.setdefault((method, template, status), []).append(ms)
        if self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(self.every_seconds, self.flush)

    def flush(self) -> None:
        """Write the summary lines of what was counted since the last ones."""
        self._flush_at = None
        tally, self._tally = self._tally, {}
        for (method, template, status), times in sorted(tally.items()):
            times.sort()
            self.log.info("%s %s %d x%d in %.0fs (median %.1fms, slowest %.1fms)", method, template, status,
                          len(times), self.every_seconds, times[len(times) // 2], times[-1])


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> tuple[socket.socket, str]:
    """A bound, listening TCP socket and its ``http://host:port`` address (``reuse_port``: bound
    with SO_REUSEPORT, so several sockets can share the address and its connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket says it is TCP; without it every answer on a reused connection waits ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    return sock, f"http://{shown}:{bound_port}"


def serve_app(make_app: Callable[[Worker], Any], *, host: str, port: int, banner: Callable[[str], str],
              loggers: Sequence[str], out: TextIO = sys.stdout, workers: int = 1) -> None:
    """Serve ``make_app(worker)`` until interrupted. The socket is bound before ``banner(address)``
    is printed, so a client that read the line can connect at once. ``workers`` > 1: that many
    forked worker processes on the same port, each with its own ``make_app(Worker(index,
    board))`` (the board shared by all), none made in this (the supervising) process."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if workers == 1:
        sock, address = listening_socket(host, port)
        configure_logging(loggers)
        print(banner(address), file=out, flush=True)
        _run_uvicorn(make_app(Worker()), sock)
        return

    shared = not reuse_port_supported()
    sockets: list[socket.socket] = []
    try:
        first, address = listening_socket(host, port, reuse_port=not shared)
        sockets.append(first)
        bound_port = first.getsockname()[1]
        for _ in range(workers - 1):
            sockets.append(first if shared else listening_socket(host, bound_port, reuse_port=True)[0])
    except BaseException:
        for s in sockets:
            s.close()
        raise
    configure_logging(list(loggers) + ["ncii_hash.workers"])
    print(banner(address) + f" with {workers} worker processes", file=out, flush=True)
    board = WriteBoard(workers)

    def worker(index: int, sock: socket.socket) -> None:
        configure_logging(loggers, tag=f"worker {index}")
        _run_uvicorn(make_app(Worker(index, board)), sock)

    try:
        WorkerPool(sockets, worker).run()
    finally:
        for s in set(sockets):
            s.close()


def _run_uvicorn(app: Any, sock: socket.socket) -> None:
    import uvicorn

    config = uvicorn.Config(app, access_log=False, log_config=None, log_level="warning",
                            server_header=False, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])


def configure_logging(loggers: Sequence[str], tag: str = "") -> None:
    """The services' lines (and uvicorn's warnings) to stderr, in one plain format (``tag``,
    e.g. a worker's number, after the logger's name)."""
    handler = logging.StreamHandler(sys.stderr)
    name = f"%(name)s[{tag}]" if tag else "%(name)s"
    handler.setFormatter(logging.Formatter(f"%(asctime)s {name} %(levelname)s %(message)s"))
    levels = [(name, logging.INFO) for name in loggers]
    for name, level in levels + [("uvicorn", logging.WARNING), ("uvicorn.error", logging.WARNING)]:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True
