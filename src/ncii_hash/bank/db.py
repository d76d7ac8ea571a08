"""The SQLite store (one file) and the bank's schema.

:class:`Database` holds any :class:`~.store_schema.Schema` -- the bank's (``BANK_SCHEMA``,
the default) or another's, such as the hub's -- opened with the pragmas the guarantees rest
on, the schema created or migrated, and the transactions every write and consistent read uses.
:func:`~.store.open_database` picks it for a path (a ``postgresql://`` URL gets the
PostgreSQL store, :mod:`.db_postgres`, with the same interface and guarantees).

Durability and privacy: WAL journal with ``synchronous=FULL`` (a returned commit survives a
crash), ``secure_delete`` (deleted rows are zeroed in the file), foreign keys on, the file
created owner-only (0600). :meth:`Database.checkpoint` folds the WAL back into the file and
truncates it, so a withdrawal leaves no old page copy behind.

The interface -- ``execute``/``executemany`` with ``?`` placeholders, ``insert``,
``meta``/``set_meta``, ``seq``, ``write``, ``read``, ``rows_for_ids``, ``checkpoint``,
``file_bytes``, ``close`` -- is the same on both stores (see :mod:`.store_schema` for the
portable SQL subset). Everything that differs between dialects stays inside the store classes.

Not thread-safe by itself: the bank serializes calls with its lock. Several processes may
open the same file (SQLite's locking; ``write`` takes the write lock up front).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

from .._util.files import create_private_file
from ..errors import BankError
from .store_schema import ChangeListener, Schema, SqlStore, Write

__all__ = ["BANK_KIND", "BANK_SCHEMA", "SCHEMA_VERSION", "Database", "Schema", "Write"]

SCHEMA_VERSION = 5
BANK_KIND = "ncii-hash-bank"

SCHEMA = """
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

# Named banks (schema v4; docs/matcher.md): HMA-style bank names over cases. A case's bank is its
# bank_cases row, else the origin bank ('hub': a hub's case number, 'local': any other case).
NAMED_BANKS = """
CREATE TABLE IF NOT EXISTS named_banks (
    name TEXT PRIMARY KEY,
    enabled_ratio REAL NOT NULL,
    origin TEXT UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS bank_cases (
    case_id TEXT PRIMARY KEY,
    bank TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bank_cases_by_bank ON bank_cases(bank);
CREATE TABLE IF NOT EXISTS content_settings (
    content_id INTEGER PRIMARY KEY,
    disable_until_ts INTEGER NOT NULL DEFAULT 1,
    note TEXT
);
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
INSERT INTO named_banks (name, enabled_ratio, origin, created_at) VALUES ('STOPNCII', 1.0, 'hub', 0.0);
INSERT INTO named_banks (name, enabled_ratio, origin, created_at) VALUES ('LOCAL', 1.0, 'local', 0.0);
"""

# Shared window hashes (schema v5; submission version 3): a survivor's opt-in hash of a fixed
# re-framing of an image, keyed by the image's own row -- a window match names the image's hash
# id, and the image's withdrawal (its id in the change log) takes the window out too.
WINDOWS = """
CREATE TABLE IF NOT EXISTS windows (
    hash_id INTEGER NOT NULL REFERENCES hashes(hash_id),
    window_name TEXT NOT NULL,
    hash BLOB NOT NULL CHECK (length(hash) = 32),
    quality INTEGER NOT NULL CHECK (quality BETWEEN 0 AND 100),
    seq INTEGER NOT NULL,
    PRIMARY KEY (hash_id, window_name)
);
CREATE INDEX IF NOT EXISTS windows_by_seq ON windows(seq)
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
    3: [  # v4: named banks (the HMA-compatible matcher, docs/matcher.md): a case's bank, content
        # settings (disabled until, note) and the matcher's API keys (SHA-256 of random tokens)
        *[s.strip() for s in NAMED_BANKS.split(";") if s.strip()],
    ],
    4: [s.strip() for s in WINDOWS.split(";") if s.strip()],  # v5: shared window hashes
}


BANK_SCHEMA = Schema(kind=BANK_KIND, version=SCHEMA_VERSION, create=SCHEMA + NAMED_BANKS + ";" + WINDOWS, migrations=MIGRATIONS, noun="bank")


class Database(SqlStore):
    """One SQLite file holding ``schema`` (the bank's unless told otherwise; see the module
    docs for the interface and its guarantees)."""

    dialect = "sqlite"
    MAX_PARAMETERS = 900  #: ids per statement in rows_for_ids, below SQLite's limit

    def __init__(self, path: os.PathLike | str, schema: Schema = BANK_SCHEMA, *, create: bool = True):
        if not isinstance(schema, Schema):
            raise TypeError(f"schema must be a Schema; got {type(schema).__name__}")
        self.schema = schema
        self.path = Path(os.fspath(path))
        self.name = str(self.path)
        noun = schema.noun
        if self.path.is_dir():
            raise BankError(f"{self.path}: is a folder; give the path of a {noun} file")
        if not self.path.exists():
            if not create:
                raise FileNotFoundError(f"{self.path}: no such {noun} (use create=True or 'ncii-hash {noun} init')")
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
            raise BankError(f"{self.path}: not a readable ncii-hash {noun} ({exc})") from None
        except BaseException:
            self.close()
            raise

    # ---- statements --------------------------------------------------------------------------
    @property
    def connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise BankError(f"{self.path}: the {self.schema.noun} is closed")
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
        """Run ``sql`` (with ``IN ({})`` where the id list goes) over the unique ``ids``, in
        chunks below the parameter limit; all rows."""
        rows: list = []
        for part in self._id_chunks(ids):
            rows.extend(self.connection.execute(sql.format(",".join("?" * len(part))), part))
        return rows

    # ---- transactions --------------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        return self._conn is not None and self._conn.in_transaction

    @contextlib.contextmanager
    def _write_locked(self) -> Iterator[int]:
        with self._immediate():
            yield self.seq()

    def _schema_locked(self) -> contextlib.AbstractContextManager[None]:
        return self._immediate()

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

    def change_listener(self) -> ChangeListener:
        """SQLite announces nothing: a follower polls the change sequence (see ChangeListener)."""
        return ChangeListener()

    def _has_meta(self) -> bool:
        return self.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'").fetchone() is not None

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
