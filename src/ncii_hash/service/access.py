"""Serialised access to a service's database from the server's worker threads (the hub's and
the matcher's).

FastAPI runs the services' (synchronous) endpoints in a thread pool. The SQLite store is one
connection, so every transaction takes this lock; the PostgreSQL store gives each thread its
own pooled connection and needs none. Slow work (argon2) is done
outside it. A store that cannot be reached (SQLite busy past its timeout, a PostgreSQL
restart) raises :class:`StoreUnavailableError`, which the app answers with 503 + Retry-After.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from typing import Any, Iterator, Sequence

from ..bank.store import Store, Write
from ..errors import StoreUnavailableError

#: Statements carry at most this many ``?`` parameters in an ``IN (...)`` list.
IN_CHUNK = 500


class StoreAccess:
    def __init__(self, db: Store):
        self.db = db
        # SQLite: one connection, so one transaction at a time; PostgreSQL: a connection per thread.
        self._lock: contextlib.AbstractContextManager = (threading.RLock() if db.dialect == "sqlite"
                                                         else contextlib.nullcontext())

    @contextlib.contextmanager
    def write(self) -> Iterator[Write]:
        with self._lock, _unavailable_as_error():
            with self.db.write() as w:
                yield w

    @contextlib.contextmanager
    def read(self) -> Iterator[int]:
        with self._lock, _unavailable_as_error():
            with self.db.read() as seq:
                yield seq

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.db.execute(sql, params)

    def rows_in(self, sql: str, keys: Sequence[Any], extra: Sequence[Any] = ()) -> list:
        """Run ``sql`` (one ``{}`` where the ``IN`` placeholder list goes, then ``extra``
        parameters) over ``keys`` in chunks; all rows."""
        rows: list = []
        keys = list(keys)
        for start in range(0, len(keys), IN_CHUNK):
            part = keys[start:start + IN_CHUNK]
            rows.extend(self.db.execute(sql.format(",".join("?" * len(part))), [*part, *extra]).fetchall())
        return rows

    def close(self) -> None:
        with self._lock:
            self.db.close()


@contextlib.contextmanager
def _unavailable_as_error() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc) or "unable to open" in str(exc):
            raise StoreUnavailableError("the store is busy; retry") from None
        raise
