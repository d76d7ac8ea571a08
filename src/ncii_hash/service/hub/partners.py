"""Partners in the hub store: their keys (argon2id hashes only), revocation, feed progress,
their feedback on hashes the hub holds, and the hashes they report (kept apart)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Optional

from ..access import StoreAccess
from .credentials import digest_of


@dataclass(frozen=True)
class Partner:
    partner_id: str
    name: str
    fetch_key_hash: str
    subscription_key_hash: str
    revoked: bool
    progress_seq: int


@dataclass(frozen=True)
class FeedbackItem:
    hash_value: str
    value: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class ReportedHash:
    signal_type: str
    hash_value: str
    value: str
    tags: tuple[str, ...]


class PartnerStore:
    def __init__(self, access: StoreAccess):
        self._a = access

    def add(self, partner_id: str, name: str, fetch_key_hash: str, subscription_key_hash: str, now: float) -> bool:
        """False when a partner of that name exists (revoked ones included: names are not reused)."""
        with self._a.write():
            if self._a.execute("SELECT 1 FROM partners WHERE name=?", (name,)).fetchone():
                return False
            self._a.execute("INSERT INTO partners (partner_id, name, fetch_key_hash, subscription_key_hash, "
                            "created_at) VALUES (?, ?, ?, ?, ?)",
                            (partner_id, name, fetch_key_hash, subscription_key_hash, now))
            return True

    def revoke(self, name: str) -> bool:
        with self._a.write():
            cur = self._a.execute("UPDATE partners SET revoked=1 WHERE name=? AND revoked=0", (name,))
            return cur.rowcount > 0

    def get(self, partner_id: str) -> Optional[Partner]:
        with self._a.read():
            row = self._a.execute("SELECT partner_id, name, fetch_key_hash, subscription_key_hash, revoked, "
                                  "progress_seq FROM partners WHERE partner_id=?", (partner_id,)).fetchone()
        if row is None:
            return None
        return Partner(row[0], row[1], row[2], row[3], bool(row[4]), int(row[5]))

    def names(self) -> list[tuple[str, bool]]:
        with self._a.read():
            return [(r[0], bool(r[1])) for r in self._a.execute("SELECT name, revoked FROM partners ORDER BY name")]

    def stored_checkpoint(self, partner_id: str, seq: int) -> None:
        """The partner asked for a delta from ``seq``: it has stored that checkpoint, so it holds
        every change up to ``seq`` (progress only moves forward)."""
        with self._a.write():
            self._a.execute("UPDATE partners SET progress_seq=? WHERE partner_id=? AND progress_seq<?",
                            (seq, partner_id, seq))

    def submit_feedback(self, partner_id: str, items: Iterable[FeedbackItem], now: float) -> int:
        """Store each item as the partner's latest feedback on that hash; items on hashes the
        hub does not hold are ignored. How many were accepted."""
        by_digest = {digest_of(i.hash_value): i for i in items}  # a later item in one post wins
        with self._a.write():
            held = {r[0] for r in self._a.rows_in("SELECT digest FROM hash_values WHERE digest IN ({})",
                                                  list(by_digest))}
            rows = [(partner_id, d, i.value, json.dumps(sorted(set(i.tags))), now)
                    for d, i in by_digest.items() if d in held]
            self._a.db.executemany(
                "INSERT INTO feedback (partner_id, digest, value, tags, at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (partner_id, digest) DO UPDATE SET value=excluded.value, tags=excluded.tags, "
                "at=excluded.at", rows)
        return len(rows)

    def submit_hashes(self, partner_id: str, items: Iterable[ReportedHash], now: float) -> int:
        rows = {digest_of(i.hash_value): (partner_id, digest_of(i.hash_value), i.signal_type, i.hash_value, i.value,
                                          json.dumps(sorted(set(i.tags))), now) for i in items}
        with self._a.write():
            self._a.db.executemany(
                "INSERT INTO partner_hashes (partner_id, digest, signal_type, hash_value, value, tags, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (partner_id, digest) DO UPDATE SET "
                "value=excluded.value, tags=excluded.tags, at=excluded.at", list(rows.values()))
        return len(rows)

    def reported_count(self, partner_id: Optional[str] = None) -> int:
        with self._a.read():
            if partner_id is None:
                return int(self._a.execute("SELECT COUNT(*) FROM partner_hashes").fetchone()[0])
            return int(self._a.execute("SELECT COUNT(*) FROM partner_hashes WHERE partner_id=?",
                                       (partner_id,)).fetchone()[0])
