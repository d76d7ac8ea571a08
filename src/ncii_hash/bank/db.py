"""The bank's store: one SQLite file, opened with the pragmas the bank's guarantees rest on,
its schema created or migrated, and the transactions every write and consistent read uses.

Durability and privacy: WAL journal with ``synchronous=FULL`` (a returned commit survives a
crash), ``secure_delete`` (deleted rows are zeroed in the file), foreign keys on, the file
created owner-only (0600). :meth:`Database.checkpoint` folds the WAL back into the file and
truncates it, so a withdrawal leaves no old page copy behind.

The interface the bank uses -- ``execute``/``executemany`` with ``?`` placeholders, ``insert``,
``meta``/``set_meta``, ``seq``, ``write``, ``read``, ``rows_for_ids``, ``checkpoint``,
``file_bytes``, ``close`` -- is what a PostgreSQL store implements too. Everything that
differs between SQL dialects (schema text, pragmas, transaction modes, the parameter limit,
how a new row's id is returned, file sizes) stays inside this class.

Not thread-safe by itself: the bank serializes calls with its lock. Several processes may
open the same file (SQLite's locking; ``write`` takes the write lock up front).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np

from .._util.files import create_private_file
from ..errors import BankError

SCHEMA_VERSION = 3
BANK_KIND = "ncii-hash-bank"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'withdrawn')),
    withdrawn_at REAL
);
CREATE TABLE IF NOT EXISTS hashes (
    hash_id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    algorithm TEXT NOT NULL DEFAULT 'pdq' CHECK (algorithm = 'pdq'),
    hash BLOB NOT NULL CHECK (length(hash) = 32),
    quality INTEGER NOT NULL CHECK (quality BETWEEN 0 AND 100),
    kind TEXT NOT NULL CHECK (kind IN ('image', 'video_frame')),
    added_at REAL NOT NULL,
    seq INTEGER NOT NULL,
    item INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS hashes_by_case ON hashes(case_id);
CREATE INDEX IF NOT EXISTS hashes_by_seq ON hashes(seq);
CREATE TABLE IF NOT EXISTS videos (
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    item INTEGER NOT NULL,
    md5 TEXT NOT NULL,
    PRIMARY KEY (case_id, item)
);
CREATE TABLE IF NOT EXISTS features (
    feature_id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL REFERENCES cases(case_id),
    data BLOB NOT NULL,
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS features_by_case ON features(case_id);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY,
    case_id TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('add', 'withdraw')),
    hash_ids BLOB NOT NULL,
    at REAL NOT NULL
);
"""

# MIGRATIONS[v]: statements taking schema v to v + 1, applied in one transaction.
MIGRATIONS = {
    1: [  # v2: videos -- frames of one video share an item number within their case
        "ALTER TABLE hashes ADD COLUMN item INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE IF NOT EXISTS videos (case_id TEXT NOT NULL REFERENCES cases(case_id), "
        "item INTEGER NOT NULL, md5 TEXT NOT NULL, PRIMARY KEY (case_id, item))",
    ],
    2: [  # v3: local feature sets (issue 8), one row per banked image that has one
        "CREATE TABLE IF NOT EXISTS features (feature_id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "case_id TEXT NOT NULL REFERENCES cases(case_id), data BLOB NOT NULL, added_at REAL NOT NULL)",
        "CREATE INDEX IF NOT EXISTS features_by_case ON features(case_id)",
    ],
}


@dataclass
class Write:
    """An open write transaction: ``base`` is the change sequence it started from; each
    change it records takes the next number from :meth:`next_seq`; ``seq`` is what it
    commits (``base`` when nothing changed)."""

    base: int
    seq: int = field(init=False)

    def __post_init__(self) -> None:
        self.seq = self.base

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class Database:
    """One SQLite bank file (see the module docs for the interface and its guarantees)."""

    dialect = "sqlite"
    MAX_PARAMETERS = 900  #: ids per statement in rows_for_ids, below SQLite's limit

    def __init__(self, path: os.PathLike | str, *, create: bool = True):
        self.path = Path(os.fspath(path))
        if self.path.is_dir():
            raise BankError(f"{self.path}: is a folder; give the path of a bank file")
        if not self.path.exists():
            if not create:
                raise FileNotFoundError(f"{self.path}: no such bank (use create=True or 'ncii-hash bank init')")
            if not self.path.parent.exists():
                raise FileNotFoundError(f"{self.path.parent}: folder does not exist")
            create_private_file(self.path)
        self._conn: Optional[sqlite3.Connection] = None
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None,
                                         check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON", "foreign_keys=ON"):
                self._conn.execute(f"PRAGMA {pragma}")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise BankError(f"{self.path}: not a readable hash bank ({exc})") from None
        except BaseException:
            self.close()
            raise

    # ---- statements --------------------------------------------------------------------------
    @property
    def connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise BankError(f"{self.path}: the bank is closed")
        return self._conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); returns a cursor to iterate or fetch."""
        return self.connection.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.connection.executemany(sql, rows)

    def insert(self, sql: str, params: Sequence[Any], *, id_column: str) -> int:
        """Run an INSERT of one row into a table whose integer key is ``id_column``; its id."""
        cur = self.connection.execute(sql, params)
        return int(cur.lastrowid)

    def rows_for_ids(self, sql: str, ids: Any) -> list:
        """Run ``sql`` (with one ``{}`` where the placeholder list goes) over the unique
        ``ids``, in chunks below the parameter limit; all rows."""
        uniq = np.unique(np.asarray(ids, dtype=np.int64))
        rows: list = []
        for start in range(0, uniq.size, self.MAX_PARAMETERS):
            part = [int(x) for x in uniq[start:start + self.MAX_PARAMETERS]]
            rows.extend(self.connection.execute(sql.format(",".join("?" * len(part))), part))
        return rows

    # ---- meta and the change sequence ----------------------------------------------------------
    def meta(self, key: str) -> Optional[str]:
        row = self.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                     (key, value))

    def seq(self) -> int:
        """The bank's change sequence: how many changes (adds, withdrawals) were committed."""
        return int(self.meta("change_seq") or 0)

    # ---- transactions --------------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        return self._conn is not None and self._conn.in_transaction

    @contextlib.contextmanager
    def write(self) -> Iterator[Write]:
        """``with db.write() as w:`` -- one write transaction, holding the write lock from the
        start (no other process writes in between). Commits ``w.seq`` as the new change
        sequence when the block ends, rolls everything back if it raises."""
        with self._immediate():
            w = Write(base=self.seq())
            yield w
            if w.seq != w.base:
                self.set_meta("change_seq", str(w.seq))

    @contextlib.contextmanager
    def _immediate(self) -> Iterator[None]:
        conn = self.connection
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def read(self) -> Iterator[int]:
        """``with db.read() as seq:`` -- a consistent snapshot of the bank at change ``seq``
        (nothing another process commits meanwhile is seen). Inside a write: that write's view."""
        conn = self.connection
        if conn.in_transaction:
            yield self.seq()
            return
        conn.execute("BEGIN")
        try:
            yield self.seq()
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    # ---- schema ------------------------------------------------------------------------------
    def _migrate(self) -> None:
        if self.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is None:
            with self._immediate():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.execute(statement)
                self.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("schema_version", str(SCHEMA_VERSION)), ("change_seq", "0"),
                    ("bank_id", secrets.token_hex(8)), ("kind", BANK_KIND)])
            return
        if self.meta("kind") != BANK_KIND:
            raise BankError(f"{self.path}: not an ncii-hash bank")
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise BankError(f"{self.path}: bank schema version {version} is newer than this ncii-hash "
                            f"({SCHEMA_VERSION}); upgrade ncii-hash")
        for step in range(version, SCHEMA_VERSION):
            with self._immediate():
                if self.schema_version() == step:  # another process may have done it
                    for statement in MIGRATIONS[step]:
                        self.execute(statement)
                    self.set_meta("schema_version", str(step + 1))

    def schema_version(self) -> int:
        return int(self.meta("schema_version") or 0)

    # ---- files -------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Fold the WAL into the file and truncate it: no old copy of a deleted row survives."""
        try:
            self.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError:  # pragma: no cover - busy readers; retried on close
            pass

    def file_bytes(self) -> int:
        """Bytes the bank takes on disk (the file and its WAL)."""
        return sum(p.stat().st_size for p in (self.path, Path(str(self.path) + "-wal")) if p.exists())

    @property
    def closed(self) -> bool:
        return self._conn is None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
