"""Decoder worker processes for ``hash_video``: a hang or crash inside FFmpeg must never hang or
crash the caller, so files are decoded in a separate Python process that can be killed.

A worker is started lazily, on the first video, and reused for the next ones (starting Python
with numpy and a decoder costs 0.2-1 s, more than hashing a short clip). Each job runs on one
worker that no other job uses meanwhile; the parent kills the worker when the job overruns its
total timeout, goes ``stall_timeout`` seconds without a message, or the parent gives up for any
other reason (an exception, Ctrl-C); a killed or crashed worker is never reused, and the next
file gets a fresh one. A worker that finished its job cleanly (done, or a decoding error it
reported itself) goes back to the idle list, up to one per core, and is retired after
``MAX_JOBS_PER_WORKER`` files. Idle workers exit when the parent closes their stdin (at exit,
or when the parent dies) and are killed at interpreter exit.

Isolation is against hangs and crashes, not a security sandbox: a worker runs as the same user,
and a reused worker has seen earlier files.

Protocol: the parent sends ``(path or bytes, container, options_dict, worker_name)`` on the worker's
stdin (a ``multiprocessing.connection.Connection``); the worker answers on its original stdout
with the messages of :func:`ncii_hash.video.decode.decode_and_hash`, ending with ``done``,
``error`` or ``import-error``. The worker points fd 1 at stderr so that nothing a C library
prints can corrupt the message stream.

Thread-safety: :func:`run_in_worker` may be called from several threads at once.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Callable, Optional, Union

from .._util.threads import default_threads
from .decode import decode_and_hash
from .frames import Abort, Options

#: A worker is retired after this many files (bounds what one process accumulates).
MAX_JOBS_PER_WORKER = 200


class WorkerFailed(Exception):
    """The job failed in a way that names the worker, not the file: ``reason`` says how."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- worker side


def _run_job(path: Union[str, bytes], container: str, opts: Options, conn: Connection) -> None:
    try:
        decode_and_hash(path, container, opts, lambda kind, payload: conn.send((kind, payload)))
    except Abort as exc:
        conn.send(("error", str(exc)))
    except ImportError as exc:
        conn.send(("import-error", str(exc)))
    except Exception as exc:  # report anything to the parent rather than die silently
        conn.send(("error", f"decoding failed: {type(exc).__name__}: {exc}"))


def _job_crash_for_tests(path: str, container: str, opts: Options, conn: Connection) -> None:
    """Dies like a decoder with memory corruption."""
    os.abort()


def _job_hang_for_tests(path: str, container: str, opts: Options, conn: Connection) -> None:
    """Hangs like a stuck decoder, after a first message."""
    conn.send(("meta", {"fps": 1.0, "width": 1, "height": 1, "announced": 0}))
    time.sleep(3600)


JOBS: dict[str, Callable[[str, str, Options, Connection], None]] = {
    "decode": _run_job, "crash-for-tests": _job_crash_for_tests, "hang-for-tests": _job_hang_for_tests,
}


def serve() -> None:
    """Main loop of a worker process (started by :class:`_Worker`)."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides what to kill.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Belt and braces with the container allow-list: FFmpeg may open local files only.
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "protocol_whitelist;file")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    out = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    jobs = Connection(os.dup(0), writable=False)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    while True:
        try:
            job = jobs.recv()
        except EOFError:
            return
        if job is None:
            return
        path, container, options, name = job
        JOBS.get(name, _run_job)(path, container, Options(**options), out)


# --------------------------------------------------------------------------- parent side


class _Worker:
    def __init__(self) -> None:
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        code = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from ncii_hash.video.worker import serve; serve()")
        self.errlog = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, package_parent],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errlog, close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.send = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self.recv = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.jobs = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def start_job(self) -> None:
        self.jobs += 1
        self.errlog.seek(0)  # the worker shares this file offset: its messages start afresh
        self.errlog.truncate()

    def death_reason(self) -> str:
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self.errlog.seek(0)
        tail = self.errlog.read()[-300:].decode("utf-8", "replace").strip().splitlines()
        return f"decoder process died ({how})" + (f": {tail[-1]}" if tail else "")

    def kill(self) -> None:
        for conn in (self.send, self.recv):
            conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.errlog.close()

    def stop(self) -> None:
        """Ask an idle worker to exit; kill it if it does not within a second."""
        try:
            self.send.send(None)
            self.proc.wait(1)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._pid = os.getpid()

    def acquire(self) -> tuple[_Worker, bool]:
        """An idle live worker (reused=True) or a new one."""
        with self._lock:
            if self._pid != os.getpid():  # forked: those workers are the parent's
                self._idle, self._pid = [], os.getpid()
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker, True
                worker.kill()
        return _Worker(), False

    def release(self, worker: _Worker) -> None:
        with self._lock:
            keep = (self._pid == os.getpid() and worker.alive() and worker.jobs < MAX_JOBS_PER_WORKER
                    and len(self._idle) < default_threads())
            if keep:
                self._idle.append(worker)
                return
        worker.stop()

    def idle_pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._idle]

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            mine = self._pid == os.getpid()
        if mine:
            for worker in idle:
                worker.stop()


POOL = _Pool()
atexit.register(POOL.close)


def run_in_worker(
    path: Union[str, bytes],
    container: str,
    opts: Options,
    collector: Callable[[str, Any], None],
    *,
    timeout: Optional[float],
    stall_timeout: Optional[float],
    job: str = "decode",
) -> None:
    """Run ``job`` on ``path`` in a worker, feeding its messages to ``collector`` until done.

    Raises ``WorkerFailed`` on timeout, stall or worker death, ``Abort`` with the worker's own
    error message, ``ImportError`` when the worker lacks a decoder. A reused worker that dies
    before its first message (killed while idle) is replaced once, transparently.
    """
    started = time.monotonic()
    for attempt in (0, 1):
        worker, reused = POOL.acquire()
        clean = False
        heard = False
        try:
            worker.start_job()
            try:
                worker.send.send((path, container, opts.__dict__, job))
            except OSError:
                if reused and attempt == 0:
                    continue
                raise WorkerFailed(worker.death_reason()) from None
            while True:
                waits = []
                if timeout is not None:
                    waits.append(timeout - (time.monotonic() - started))
                if stall_timeout is not None:
                    waits.append(stall_timeout)
                if not worker.recv.poll(max(0.0, min(waits)) if waits else None):
                    if timeout is not None and time.monotonic() - started >= timeout:
                        raise WorkerFailed(f"timed out after {timeout} s (decoder killed)")
                    raise WorkerFailed(f"decoder made no progress for {stall_timeout} s (killed)")
                try:
                    kind, payload = worker.recv.recv()
                except EOFError:
                    if reused and not heard and attempt == 0:
                        break  # died while idle: retry on a fresh worker
                    raise WorkerFailed(worker.death_reason()) from None
                heard = True
                if kind in ("error", "import-error"):
                    clean = True
                    raise Abort(payload) if kind == "error" else ImportError(payload)
                collector(kind, payload)
                if kind == "done":
                    clean = True
                    return
        finally:
            if clean:
                POOL.release(worker)
            else:
                worker.kill()
