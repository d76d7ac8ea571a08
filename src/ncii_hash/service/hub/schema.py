"""The hub store's schema: its own kind and version, separate from a bank's.

Privacy: no table holds an IP address, a file name or a PIN in the clear. A case's PIN is an
argon2id hash; for 24 hours after a submission it is also kept sealed under a key derived
from the client's idempotency key (which the hub never stores; only its SHA-256), then erased.
Partner keys are argon2id hashes. Hash values of withdrawn cases are deleted by the retention
purge (docs/hub.md, "Retention").

Invariant: every survivor submission and withdrawal is one write transaction that takes one
change sequence number (``changes.seq``); ``case_hashes.added_seq``/``withdrawn_seq`` name the
change that added/withdrew a row, so a feed delta ``(s, e]`` is a pure function of the rows.
"""

from __future__ import annotations

from ...bank.store import Schema

HUB_KIND = "ncii-hash-hub"
HUB_SCHEMA_VERSION = 1

# The store layer's portable SQL (SQLite spelling, translated for PostgreSQL); it adds the meta table.
HUB_DDL = [
    """CREATE TABLE IF NOT EXISTS changes (
        seq INTEGER PRIMARY KEY,
        op TEXT NOT NULL CHECK (op IN ('submit', 'withdraw')),
        case_number TEXT NOT NULL,
        at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS cases (
        case_number TEXT PRIMARY KEY,
        pin_hash TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'withdrawn')),
        items INTEGER NOT NULL,
        hashes INTEGER NOT NULL,
        created_seq INTEGER NOT NULL,
        withdrawn_seq INTEGER,
        idem_key_hash TEXT UNIQUE,
        idem_body_hash TEXT,
        sealed_pin TEXT,
        sealed_until REAL,
        failures INTEGER NOT NULL DEFAULT 0,
        not_before REAL NOT NULL DEFAULT 0)""",
    # One row per distinct hash value; ``digest`` (SHA-256 of the value) is the key, because a
    # NciiVideoPDQ value can be longer than a PostgreSQL b-tree entry may be.
    """CREATE TABLE IF NOT EXISTS hash_values (
        digest TEXT PRIMARY KEY,
        signal_type TEXT NOT NULL,
        hash_value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS case_hashes (
        case_number TEXT NOT NULL REFERENCES cases(case_number),
        digest TEXT NOT NULL REFERENCES hash_values(digest),
        signal_type TEXT NOT NULL,
        added_seq INTEGER NOT NULL,
        withdrawn_seq INTEGER,
        PRIMARY KEY (case_number, digest))""",
    "CREATE INDEX IF NOT EXISTS case_hashes_by_digest ON case_hashes(digest)",
    # The feed's index: each hash value's last change, kept in the transaction that changes it,
    # so a page of a delta is a range scan of (last_seq, signal_type, digest) -- O(page), not
    # O(hashes held).
    """CREATE TABLE IF NOT EXISTS hash_changes (
        digest TEXT PRIMARY KEY REFERENCES hash_values(digest),
        signal_type TEXT NOT NULL,
        last_seq INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS hash_changes_by_seq ON hash_changes(last_seq, signal_type, digest)",
    "CREATE INDEX IF NOT EXISTS case_hashes_by_added ON case_hashes(added_seq)",
    "CREATE INDEX IF NOT EXISTS case_hashes_by_withdrawn ON case_hashes(withdrawn_seq)",
    """CREATE TABLE IF NOT EXISTS partners (
        partner_id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        fetch_key_hash TEXT NOT NULL,
        subscription_key_hash TEXT NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0,
        progress_seq INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL)""",
    # A partner's latest feedback on a hash the hub holds (replaces its earlier one).
    """CREATE TABLE IF NOT EXISTS feedback (
        partner_id TEXT NOT NULL REFERENCES partners(partner_id),
        digest TEXT NOT NULL,
        value TEXT NOT NULL,
        tags TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (partner_id, digest))""",
    "CREATE INDEX IF NOT EXISTS feedback_by_digest ON feedback(digest)",
    # Hashes partners report (SubmitHashes): kept apart, never banked, never in the feed.
    """CREATE TABLE IF NOT EXISTS partner_hashes (
        partner_id TEXT NOT NULL REFERENCES partners(partner_id),
        digest TEXT NOT NULL,
        signal_type TEXT NOT NULL,
        hash_value TEXT NOT NULL,
        value TEXT NOT NULL,
        tags TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (partner_id, digest))""",
]

#: HUB_MIGRATIONS[v]: statements taking schema v to v + 1.
HUB_MIGRATIONS: dict[int, list[str]] = {}

HUB_SCHEMA = Schema(kind=HUB_KIND, version=HUB_SCHEMA_VERSION, create=";\n".join(HUB_DDL),
                    migrations=HUB_MIGRATIONS, noun="hub")
