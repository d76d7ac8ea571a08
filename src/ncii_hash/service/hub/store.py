"""The hub store: one database (SQLite file or PostgreSQL) holding cases, partners, feedback
and the change log, reached through three small parts -- :class:`CaseStore`,
:class:`PartnerStore`, :class:`FeedStore` -- that share one serialised access."""

from __future__ import annotations

import os

from ..access import StoreAccess
from .cases import CaseStore
from .database import TOKEN_SECRET, open_hub_database
from .feed_store import FeedStore
from .partners import PartnerStore


class HubStore:
    def __init__(self, access: StoreAccess):
        self.access = access
        self.cases = CaseStore(access)
        self.partners = PartnerStore(access)
        self.feed = FeedStore(access)

    def token_secret(self) -> bytes:
        with self.access.read():
            return bytes.fromhex(self.access.db.meta(TOKEN_SECRET) or "")

    def close(self) -> None:
        self.access.close()

    def __enter__(self) -> "HubStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_hub_store(target: str | os.PathLike, *, create: bool = False) -> HubStore:
    """The hub store at ``target`` (a file path or a ``postgresql://`` URL); ``create`` makes
    an empty one when there is none."""
    return HubStore(StoreAccess(open_hub_database(target, create=create)))
