"""The bank's exchange formats: the change feed partners sync from, and CSV export/import in
the ThreatExchange layout (``pdq,quality,case_id,kind,item``; parsed by :mod:`.hash_csv`).

Functions over a :class:`~.db.Database`; the bank calls them under its lock and applies an
import to its index itself.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Optional

import numpy as np

from .._util.files import atomic_private_file
from ..hashes import PDQ_HASH_BYTES
from .cases import case_exists, insert_case
from .db import Database, Write
from .hash_csv import parse_hash_csv
from .records import EXPORT_HEADER, BankError, ChangeSet, PathLike, codes_from_blobs


def change_token(since: Optional[str]) -> int:
    """The change sequence a feed token stands for (None or "" = the start)."""
    try:
        start = 0 if since in (None, "") else int(str(since))
    except ValueError:
        raise BankError(f"bad change token {since!r}") from None
    if start < 0:
        raise BankError(f"bad change token {since!r}")
    return start


def changes(db: Database, start: int) -> ChangeSet:
    """What changed after change ``start``: cases added (with their current hashes) and case
    ids withdrawn; a case added and withdrawn in the same window appears only as withdrawn."""
    with db.read() as end:
        ops = db.execute("SELECT case_id, op FROM changes WHERE seq > ? AND seq <= ? ORDER BY seq",
                         (start, end)).fetchall()
        withdrawn = [cid for cid, op in ops if op == "withdraw"]
        gone = set(withdrawn)
        added = []
        seen: set[str] = set()
        for cid, op in ops:  # a case extended by a synced feed page has several 'add' entries
            if op != "add" or cid in gone or cid in seen:
                continue
            seen.add(cid)
            rows = db.execute("SELECT hash, quality, kind FROM hashes WHERE case_id=? ORDER BY hash_id",
                              (cid,)).fetchall()
            added.append({
                "case_id": cid,
                "hashes": codes_from_blobs(r[0] for r in rows),
                "qualities": np.asarray([r[1] for r in rows], np.int32),
                "kinds": [r[2] for r in rows],
            })
    return ChangeSet(added=added, withdrawn=withdrawn, next_token=str(end))


def export_csv(db: Database, path: PathLike, format: str = "te-csv") -> int:
    """Write every banked hash as CSV, owner-only and atomically; the number of rows."""
    if format != "te-csv":
        raise BankError(f"unknown export format {format!r} (supported: 'te-csv')")
    n = 0
    with atomic_private_file(path, text=True) as f, db.read():
        w = csv.writer(f)
        w.writerow(EXPORT_HEADER)
        for h, q, cid, kind, item in db.execute("SELECT hash, quality, case_id, kind, item FROM hashes "
                                                "ORDER BY hash_id"):
            w.writerow([h.hex(), q, cid, kind, item])
            n += 1
    return n


class ParsedImport:
    """A CSV file checked and grouped by case, before anything is written."""

    def __init__(self, path: PathLike, *, allow_low_quality: bool):
        self.path = Path(os.fspath(path))
        self.order, self.groups = parse_hash_csv(self.path, allow_low_quality=allow_low_quality)

    def write(self, db: Database, w: Write) -> tuple[np.ndarray, list[int]]:
        """Bank every case, one change each, in the open write ``w``; (codes, hash ids) added."""
        existing = [c for c in self.order if case_exists(db, c)]
        if existing:
            raise BankError(f"{self.path}: case {existing[0]} already exists in this bank (nothing imported)")
        now = time.time()
        all_ids: list[int] = []
        all_codes = []
        for cid in self.order:
            blobs, qualities, kinds, items = self.groups[cid]
            codes = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(-1, PDQ_HASH_BYTES)
            videos = [(n, "") for n in sorted(set(items)) if n > 0]
            all_ids += insert_case(db, cid, codes, np.asarray(qualities), kinds, now, w.next_seq(), items, videos)
            all_codes.append(codes)
        return np.concatenate(all_codes), all_ids
