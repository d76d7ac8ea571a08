"""The PostgreSQL store: the same interface and guarantees as the SQLite :class:`~.db.Database`
over psycopg 3 and a psycopg_pool connection pool (extra ``postgresql``), for deployments
where several processes write.

Guarantees and how they are kept:

* **Commit order = sequence order.** ``write()`` opens a READ COMMITTED transaction and first
  locks the ``change_seq`` row of ``meta`` (``SELECT ... FOR UPDATE``): writers queue there,
  each sees every earlier commit, numbers its changes after them and commits the new sequence
  in the same transaction. A reader at sequence ``n`` therefore sees every change up to ``n``.
* **Snapshots.** ``read()`` is a REPEATABLE READ transaction: one snapshot for the block.
* **Connection loss** (a server restart, a killed backend, no server) raises
  :class:`~ncii_hash.errors.StoreUnavailableError`; the server rolls the open transaction
  back; the pool drops broken connections and checks idle ones before handing them out, so
  the next call reconnects once the server is back.
* **Withdrawn values do not linger**: :meth:`checkpoint` VACUUMs (outside any transaction,
  best effort) the tables that DELETE or UPDATE statements touched, so dead row versions
  holding withdrawn hashes are reclaimed.
* **No password in messages**: the store is named by its URL with the password replaced.

Thread-safe: each thread's transaction runs on its own pooled connection (statements outside
a transaction borrow one for the statement), so a web service may share one store object.
"""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._util.optional import optional_import
from ..errors import BankError, StoreUnavailableError
from .store_schema import Schema, SqlStore, postgres_ddl, postgres_placeholders, table_rewritten

URL_SCHEMES = ("postgresql", "postgres")
_SCHEMA_LOCK_KEY = 0x6E636969  # pg_advisory_xact_lock key serializing schema creation and migration
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03"}  # admin shutdown, crash shutdown, cannot connect now
CHANGE_CHANNEL = "ncii_hash_changes"  #: NOTIFY channel of committed writes
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_postgres_url(target: Any) -> bool:
    return isinstance(target, str) and target.split("://", 1)[0].lower() in URL_SCHEMES and "://" in target


def redact_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter) as ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Rows:
    """The fetched result of a statement run outside a transaction (its connection already
    back in the pool): iterate, ``fetchone``, ``fetchall``, ``rowcount``."""

    def __init__(self, rows: list, rowcount: int):
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        while self._next < len(self._rows):
            self._next += 1
            yield self._rows[self._next - 1]

    def fetchone(self) -> Any:
        return next(iter(self), None)

    def fetchall(self) -> list:
        rest = self._rows[self._next:]
        self._next = len(self._rows)
        return rest


class PostgresDatabase(SqlStore):
    """One PostgreSQL database (a ``postgresql://`` URL) holding ``schema``."""

    dialect = "postgresql"
    path = None  #: no file: nothing (snapshots) may live next to it
    MAX_PARAMETERS = 10_000  #: ids per ``= ANY(?)`` array in rows_for_ids

    def __init__(self, url: str, schema: Schema, *, create: bool = True, pool_size: int = 4,
                 timeout: float = 5.0):
        if not is_postgres_url(url):
            raise ValueError("a PostgreSQL store needs a postgresql:// URL")
        if not isinstance(schema, Schema):
            raise TypeError(f"schema must be a Schema; got {type(schema).__name__}")
        self.schema = schema
        self.name = redact_url(url)
        self._url = url  # for a listener's own connection (change_listener); never shown
        self._password = urlsplit(url).password or dict(parse_qsl(urlsplit(url).query)).get("password")
        self._psycopg = optional_import("psycopg", extra="postgresql", purpose="a PostgreSQL store")
        pool_module = optional_import("psycopg_pool", extra="postgresql", purpose="a PostgreSQL store",
                                      package="psycopg-pool")
        self._pool_errors = (pool_module.PoolTimeout, pool_module.PoolClosed)
        self._local = threading.local()
        self._rewritten: set[str] = set()
        self._rewritten_lock = threading.Lock()
        self._pool: Any = pool_module.ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), open=False, timeout=timeout, name="ncii-hash-store",
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
            check=pool_module.ConnectionPool.check_connection)
        try:
            try:
                self._pool.open(wait=True, timeout=timeout)
            except self._pool_errors:
                raise StoreUnavailableError(f"{self.name}: cannot connect ({self._why_not(url, timeout)})") from None
            if not create and not self._has_meta():
                raise FileNotFoundError(f"{self.name}: no such {schema.noun} in this database "
                                        f"(use create=True or 'ncii-hash {schema.noun} init')")
            self._migrate()
        except BaseException:
            self.close()
            raise

    # ---- errors --------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        line = text.strip().splitlines()[0] if text.strip() else "connection failed"
        return line.replace(self._password, "***") if self._password else line

    def _why_not(self, url: str, timeout: float) -> str:
        """The server's reason for refusing a connection (wrong password, no such database,
        nothing listening), for the message of a pool that could not open."""
        try:
            self._psycopg.connect(url, connect_timeout=max(1, int(timeout))).close()
        except self._psycopg.Error as exc:
            return self._scrub(str(exc))
        return "no connection within the timeout"

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Connection loss (or no connection within the timeout) as StoreUnavailableError."""
        pg = self._psycopg
        try:
            yield
        except self._pool_errors as exc:
            raise StoreUnavailableError(f"{self.name}: the database is unavailable ({self._scrub(str(exc))})") from None
        except (pg.OperationalError, pg.InterfaceError) as exc:
            state = getattr(exc, "sqlstate", None)
            if isinstance(exc, pg.InterfaceError) or state is None or state.startswith("08") \
                    or state in _UNAVAILABLE_STATES:
                raise StoreUnavailableError(
                    f"{self.name}: the connection to the database was lost ({self._scrub(str(exc))})") from None
            raise

    def _pool_or_raise(self) -> Any:
        if self._pool is None:
            raise BankError(f"{self.name}: the {self.schema.noun} is closed")
        return self._pool

    # ---- statements ----------------------------------------------------------------------------
    def _note(self, sql: str) -> None:
        table = table_rewritten(sql)
        if table is not None:
            with self._rewritten_lock:
                self._rewritten.add(table)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); returns a cursor to iterate or fetch."""
        query = postgres_placeholders(sql)
        self._note(sql)
        conn = getattr(self._local, "conn", None)
        with self._errors():
            if conn is not None:
                return conn.execute(query, params)
            with self._pool_or_raise().connection() as c:
                cur = c.execute(query, params)
                return Rows(cur.fetchall() if cur.description is not None else [], cur.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        query = postgres_placeholders(sql)
        self._note(sql)
        conn = getattr(self._local, "conn", None)
        with self._errors():
            if conn is not None:
                conn.cursor().executemany(query, rows)
                return
            with self._pool_or_raise().connection() as c, c.transaction():
                c.cursor().executemany(query, rows)

    def insert(self, sql: str, params: Sequence[Any], *, id_column: str) -> int:
        """Run an INSERT of one row into a table whose integer key is ``id_column``; its id."""
        if not _IDENTIFIER.match(id_column):
            raise ValueError(f"id_column must be a column name; got {id_column!r}")
        return int(self.execute(f"{sql} RETURNING {id_column}", params).fetchone()[0])

    def rows_for_ids(self, sql: str, ids: Any) -> list:
        """Run ``sql`` (with ``IN ({})`` where the id list goes, sent as ``= ANY(?)``) over
        the unique ``ids``; all rows."""
        if "IN ({})" not in sql:
            raise ValueError("rows_for_ids needs a statement with 'IN ({})' where the ids go")
        query = sql.replace("IN ({})", "= ANY(?)")
        rows: list = []
        for part in self._id_chunks(ids):
            rows.extend(self.execute(query, (part,)))
        return rows

    # ---- transactions --------------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        return getattr(self._local, "conn", None) is not None

    @contextlib.contextmanager
    def _transaction(self, begin: str) -> Iterator[Any]:
        if self.in_transaction:
            raise BankError(f"{self.name}: a transaction is already open in this thread")
        pool = self._pool_or_raise()
        with self._errors():
            conn = pool.getconn()
        try:
            with self._errors():
                conn.execute(begin)
            self._local.conn = conn
            try:
                yield conn
            except BaseException:
                self._rollback(conn)
                raise
            with self._errors():
                conn.execute("COMMIT")
        finally:
            self._local.conn = None
            pool.putconn(conn)  # a broken connection is discarded, not reused

    def _rollback(self, conn: Any) -> None:
        if conn.closed or conn.broken:
            return
        try:
            conn.execute("ROLLBACK")
        except self._psycopg.Error:  # the connection died meanwhile: the server rolls back
            pass

    @contextlib.contextmanager
    def _write_locked(self) -> Iterator[int]:
        with self._transaction("BEGIN ISOLATION LEVEL READ COMMITTED"):
            row = self.execute("SELECT value FROM meta WHERE key='change_seq' FOR UPDATE").fetchone()
            yield int(row[0]) if row is not None else 0

    @contextlib.contextmanager
    def _schema_locked(self) -> Iterator[None]:
        with self._transaction("BEGIN ISOLATION LEVEL READ COMMITTED"):
            self.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK_KEY,))
            yield

    @contextlib.contextmanager
    def read(self) -> Iterator[int]:
        """``with db.read() as seq:`` -- one REPEATABLE READ snapshot at change ``seq``.
        Inside a write (in this thread): that write's view."""
        if self.in_transaction:
            yield self.seq()
            return
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ"):
            yield self.seq()

    def _announce(self) -> None:
        # Delivered when (and only if) the write commits, to every listening connection.
        self.execute(f"NOTIFY {CHANGE_CHANNEL}")

    def change_listener(self) -> "NotifyListener":
        """A listener woken by every committed write of any process (``LISTEN``)."""
        return NotifyListener(self._psycopg, self._url)

    def _has_meta(self) -> bool:
        return self.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()[0]

    def _ddl(self, statement: str) -> str:
        return postgres_ddl(statement)

    # ---- upkeep --------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """VACUUM the tables DELETEs and UPDATEs touched since the last checkpoint, so their
        dead row versions (withdrawn hashes among them) are reclaimed. Best effort: skipped
        inside a transaction; a table that fails is tried again next time."""
        if self.in_transaction or self._pool is None:
            return
        with self._rewritten_lock:
            tables, self._rewritten = sorted(self._rewritten), set()
        for table in tables:
            try:
                with self._errors(), self._pool.connection() as c:
                    c.execute(f"VACUUM {table}")
            except (self._psycopg.Error, StoreUnavailableError):
                with self._rewritten_lock:
                    self._rewritten.add(table)

    def file_bytes(self) -> int:
        """Bytes the database takes on the server (``pg_database_size``)."""
        return int(self.execute("SELECT pg_database_size(current_database())").fetchone()[0])

    @property
    def closed(self) -> bool:
        return self._pool is None

    def close(self) -> None:
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            pool.close()


class NotifyListener:
    """``LISTEN`` on its own connection: ``wait(timeout)`` returns True as soon as a write
    commits (in any process), False after ``timeout`` without one or while the server is
    unreachable (the connection is made again on the next wait; followers poll as well, so a
    notification lost meanwhile only delays). ``close()`` ends it."""

    def __init__(self, psycopg: Any, url: str):
        self._psycopg = psycopg
        self._url = url
        self._conn: Any = None
        self._closed = threading.Event()

    def wait(self, timeout: float) -> bool:
        if self._closed.is_set():
            return False
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._psycopg.connect(self._url, autocommit=True, connect_timeout=max(1, int(timeout) + 1))
                self._conn.execute(f"LISTEN {CHANGE_CHANNEL}")
            got = False
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                got = True
            return got
        except self._psycopg.Error:
            self._drop()
            self._closed.wait(timeout)
            return False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except self._psycopg.Error:
                pass

    def close(self) -> None:
        self._closed.set()
        self._drop()
