"""The one lifecycle of the index snapshots a bank keeps next to its file.

A snapshot is derived data: an index saved (atomically, checksummed, owner-only) as
``<bank>.<kind>.<seq>``, where ``seq`` is the bank's change sequence it reflects -- ``idx``
for the hash index, ``fidx`` for the local-feature index, ``<window>.idx`` for a shared
window's index (``centre70.idx``). On open, the newest snapshot not
ahead of the bank is loaded and caught up; one that fails to load is skipped. A withdrawal
deletes every snapshot of every kind, and the temporary files (``.<bank>.<kind>.*.tmp``) a
crash during a save may have left, since they hold hashes too.

A bank in a database server (PostgreSQL) has no file to keep snapshots next to: by default
its ``SnapshotFiles`` (``bank_path=None``) lists none and saves none, and its index is rebuilt
from the table. Given a directory on the matcher's host (``HashBank(snapshot_dir=...)``), its
hash index snapshots live there as ``bank-<identity>.idx.<seq>``, named by a random identity
the bank stores in its ``meta`` table (:func:`bank_identity`), so several banks can share the
directory; every process deletes its own when it applies a withdrawal.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Optional

from .._util.files import private_dir, unlink_if_exists
from ..submission import SHARED_WINDOWS

def window_snapshot_kind(name: str) -> str:
    """The snapshot kind of one shared window's index (``centre70.idx``)."""
    return f"{name}.idx"


SNAPSHOT_KINDS = ("idx", "fidx", *(window_snapshot_kind(w) for w in SHARED_WINDOWS))
BANK_IDENTITY = "bank_identity"  #: meta key


def bank_identity(db: Any) -> str:
    """The bank's random identity (32 hex digits), stored in its ``meta`` table on first use."""
    value = db.meta(BANK_IDENTITY)
    if value is None:
        with db.write():
            value = db.meta(BANK_IDENTITY)
            if value is None:
                value = secrets.token_hex(16)
                db.set_meta(BANK_IDENTITY, value)
    return value


def server_snapshot_base(db: Any, snapshot_dir: Optional[os.PathLike | str]) -> Optional[Path]:
    """Where a server bank's snapshots go in ``snapshot_dir`` (created owner-only), named by
    its identity; None without a directory."""
    return None if snapshot_dir is None else private_dir(snapshot_dir) / f"bank-{bank_identity(db)}"


class SnapshotFiles:
    """The snapshot files of one kind next to one bank file."""

    def __init__(self, bank_path: Optional[os.PathLike | str], kind: str):
        if kind not in SNAPSHOT_KINDS:
            raise ValueError(f"snapshot kind must be one of {SNAPSHOT_KINDS}; got {kind!r}")
        self.bank_path = None if bank_path is None else Path(os.fspath(bank_path))
        self.kind = kind
        self._prefix = "" if self.bank_path is None else f"{self.bank_path.name}.{kind}."

    def path(self, seq: int) -> Path:
        """Where the snapshot at change ``seq`` lives."""
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ValueError(f"a snapshot sequence is an int >= 0; got {seq!r}")
        if self.bank_path is None:
            raise ValueError("a bank without a file keeps no snapshots")
        return self.bank_path.with_name(f"{self._prefix}{seq}")

    def listed(self) -> list[tuple[int, Path]]:
        """Every snapshot of this kind, newest first, as ``(seq, path)``."""
        if self.bank_path is None:
            return []
        folder = self.bank_path.parent
        if not folder.is_dir():
            return []
        out = []
        for p in folder.iterdir():
            tail = p.name[len(self._prefix):]
            if p.name.startswith(self._prefix) and tail.isascii() and tail.isdigit():
                out.append((int(tail), p))
        return sorted(out, reverse=True)

    def not_ahead_of(self, seq: int) -> list[tuple[int, Path]]:
        """The snapshots a bank at change ``seq`` may load, newest first (a snapshot ahead
        of the bank belongs to a file that was replaced)."""
        return [(s, p) for s, p in self.listed() if s <= seq]

    def drop_others(self, keep: Path) -> None:
        """Delete every snapshot of this kind except ``keep`` (after saving it)."""
        for _, p in self.listed():
            if p != keep:
                unlink_if_exists(p)

    def drop_all(self) -> None:
        """Delete every snapshot of this kind and every temporary file of an unfinished save."""
        for _, p in self.listed():
            unlink_if_exists(p)
        if self.bank_path is None:
            return
        folder = self.bank_path.parent
        if folder.is_dir():  # not a glob: a bank's name may hold glob characters
            for p in folder.iterdir():
                if p.name.startswith("." + self._prefix) and p.name.endswith(".tmp"):
                    unlink_if_exists(p)
