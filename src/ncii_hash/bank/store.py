"""The one way to open a store: :func:`open_database` picks SQLite for a path and PostgreSQL
for a ``postgresql://`` URL; both hold a :class:`Schema` and offer the same interface.

The interface (both stores; ``?`` placeholders and the portable SQL of :mod:`.store_schema`):

* ``execute(sql, params=()) -> cursor`` (``fetchone``, ``fetchall``, iteration, ``rowcount``),
  ``executemany(sql, rows)``, ``insert(sql, params, *, id_column) -> int`` (the new row's id),
  ``rows_for_ids(sql_with_IN_braces, ids) -> list`` (unique ids, chunked);
* ``write()`` -> :class:`Write` (``base``, ``next_seq()``, ``seq``): one transaction holding
  the write lock; commits ``seq`` as the change sequence; rolls back if the block raises;
* ``read()`` -> the change sequence of a consistent snapshot held for the block;
* ``meta(key)``, ``set_meta(key, value)``, ``seq()``, ``schema_version()``,
  ``in_transaction``, ``checkpoint()`` (no copy of deleted rows stays behind),
  ``file_bytes()``, ``closed``, ``close()``; attributes ``schema``, ``dialect``
  (``"sqlite"``/``"postgresql"``), ``name`` (for messages; never a password) and ``path``
  (the file, or None for PostgreSQL).

Connection loss on PostgreSQL raises :class:`~ncii_hash.errors.StoreUnavailableError`.
"""

from __future__ import annotations

import os
from typing import Union

from .db import BANK_SCHEMA, Database
from .db_postgres import PostgresDatabase, is_postgres_url, redact_url
from .store_schema import Schema, Write

Store = Union[Database, PostgresDatabase]

__all__ = ["BANK_SCHEMA", "Database", "PostgresDatabase", "Schema", "Store", "Write", "is_postgres_url",
           "open_database", "redact_url"]


def open_database(target: Union[str, os.PathLike], schema: Schema = BANK_SCHEMA, *, create: bool = True,
                  **options: object) -> Store:
    """Open (``create``: or create) the database holding ``schema`` at ``target``: a file path
    (SQLite) or a ``postgresql://user:password@host:port/dbname`` URL (PostgreSQL; ``options``
    ``pool_size`` and ``timeout`` tune its connection pool)."""
    if is_postgres_url(target):
        return PostgresDatabase(str(target), schema, create=create, **options)  # type: ignore[arg-type]
    if isinstance(target, str) and "://" in target:
        raise ValueError(f"{redact_url(target)}: unsupported store URL (use a file path or postgresql://...)")
    if options:
        raise TypeError(f"options {sorted(options)} apply to PostgreSQL stores only")
    return Database(target, schema, create=create)
