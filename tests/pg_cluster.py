"""A throwaway PostgreSQL cluster for tests: ``initdb`` + ``pg_ctl start`` in a private temp
folder, one fresh database per test, a restart on demand, ``pg_ctl stop -m immediate`` at the end.

PostgreSQL refuses to run as root, so as root (CI) the server runs as the ``postgres`` system
user (``runuser -u postgres --``) in a folder that user owns; otherwise as the current user.
The server listens on a unix socket in that folder (admin connections, trusted) and on a free
127.0.0.1 port (the tests' connections, which need the superuser's random password, so the
stores' URLs carry a password as they would in production). ``fsync=off``: a test cluster need
not survive a power cut.

Binaries are found on PATH, else under /usr/lib/postgresql/<version>/bin (Debian's package).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

SERVER_USER = "postgres"

# Runs beside the test session: when the session's end of the pipe closes -- close() or the
# session being killed (a timeout, SIGKILL) -- it stops the server at once and deletes its folder,
# so no postmaster outlives the tests.
WATCHDOG = """
import shutil, subprocess, sys
sys.stdin.buffer.read()
stop, root = sys.argv[1:-1], sys.argv[-1]
subprocess.run(stop, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
shutil.rmtree(root, ignore_errors=True)
"""


def find_bin_dir() -> Optional[Path]:
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    candidates = [Path(found).parent] if found else []

    def version(p: str) -> tuple:
        v = Path(p).parent.name
        return tuple(int(x) for x in v.split(".") if x.isdigit())

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    for c in candidates:
        if (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    return None


def unavailable_reason() -> Optional[str]:
    """Why no cluster can be started here (None when it can)."""
    if find_bin_dir() is None:
        return ("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under "
                "/usr/lib/postgresql/*/bin: apt-get install postgresql")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and there is no '{SERVER_USER}' user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and runuser (util-linux) is missing"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed: pip install 'ncii-hash[postgresql]'"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One running test cluster. ``create_database()`` gives a fresh database's URL;
    ``restart()``/``stop()``/``start()`` take the server down and up mid-test (same port,
    same data); ``terminate(dbname)`` kills that database's connections; ``close()`` ends it."""

    def __init__(self) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise RuntimeError(unavailable_reason() or "PostgreSQL not found")
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="ncii-pg-"))
        self.as_root = os.geteuid() == 0
        if self.as_root:
            pw = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self._names = itertools.count(1)
        self.running = False
        self._watchdog: Optional[subprocess.Popen] = None
        try:
            pwfile = self.root / "pw"
            pwfile.write_text(self.password + "\n")
            if self.as_root:
                os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            self._run("initdb", "-D", str(self.data), "-U", SERVER_USER, "--pwfile", str(pwfile),
                      "--auth-local=trust", "--auth-host=scram-sha-256", "--no-locale", "-E", "UTF8", "--no-sync")
            pwfile.unlink()
            self.port = _free_port()
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", WATCHDOG, *self._command("pg_ctl", "stop", "-D", str(self.data), "-m",
                                                               "immediate", "-w", "-t", "60"), str(self.root)],
                stdin=subprocess.PIPE, start_new_session=True)
            self.start()
        except BaseException:
            self.close()
            raise

    # ---- the server ----------------------------------------------------------------------------
    def _command(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / tool), *args]
        return ["runuser", "-u", SERVER_USER, "--", *cmd] if self.as_root else cmd

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(self._command(tool, *args), cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=120)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout[-2000:]}\n{log}")

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                   "-c shared_buffers=32MB")
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options)
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back and disconnect every session; ``immediate``: a crash)."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")
        self.running = False

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again on the same port with the same data: every open connection is lost."""
        self.stop(mode)
        self.start()

    # ---- databases -----------------------------------------------------------------------------
    def admin(self):
        """A superuser connection over the unix socket (autocommit); close it after use."""
        import psycopg

        return psycopg.connect(host=str(self.root), port=self.port, user=SERVER_USER, dbname="postgres",
                               autocommit=True)

    def url(self, dbname: str) -> str:
        return f"postgresql://{SERVER_USER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> tuple[str, str]:
        """A fresh empty database: ``(name, url)``."""
        name = f"t{next(self._names)}_{secrets.token_hex(3)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name, self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def terminate(self, dbname: str) -> int:
        """Kill every connection to ``dbname`` (as an operator or a crash would); how many."""
        with self.admin() as conn:
            rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)).fetchall()
        return sum(1 for r in rows if r[0])

    def close(self) -> None:
        """Stop the server (immediately) and delete its folder; safe to call twice."""
        try:
            if self.data.is_dir() and (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60")
        finally:
            self.running = False
            if self._watchdog is not None:
                self._watchdog.stdin.close()  # type: ignore[union-attr]
                self._watchdog.wait(timeout=120)
                self._watchdog = None
            shutil.rmtree(self.root, ignore_errors=True)
