"""Opening the hub's store on the project's one store layer (:func:`ncii_hash.bank.store.open_database`):
a SQLite file for a path, PostgreSQL for a ``postgresql://`` URL, holding :data:`.schema.HUB_SCHEMA`.
The hub's own meta keys (the page-token secret, the purge horizon) are set once here."""

from __future__ import annotations

import os
import secrets

from ...bank.store import Store, open_database
from .schema import HUB_SCHEMA

#: meta keys the hub keeps besides the store layer's own.
TOKEN_SECRET = "token_secret"
PURGED_SEQ = "purged_seq"


def open_hub_database(target: str | os.PathLike, *, create: bool) -> Store:
    db = open_database(target, HUB_SCHEMA, create=create)
    try:
        if db.meta(TOKEN_SECRET) is None:
            with db.write():
                if db.meta(TOKEN_SECRET) is None:  # another process may have set it
                    db.set_meta(TOKEN_SECRET, secrets.token_hex(32))
                    db.set_meta(PURGED_SEQ, "0")
    except BaseException:
        db.close()
        raise
    return db
