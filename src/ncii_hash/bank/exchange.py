"""HashBank's exchange side: the change feed partners sync from, CSV export/import in the
ThreatExchange layout, and vPDQ matching against banked videos. Mixed into
:class:`ncii_hash.bank.HashBank`, whose database, lock, index and write helpers it uses."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .._util.files import atomic_private_file
from .hash_csv import parse_hash_csv
from .schema import (EXPORT_HEADER, BankError, ChangeSet, PathLike, VideoBankMatch, _video_parts,
                          codes_from_blobs)
from ..video import match_video as _match_video
from ..hashes import PDQ_HASH_BYTES, PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY


class BankExchangeMixin:
    """Uses HashBank's ``_db``, ``_lock``, ``_index``, ``_catch_up``, ``_db_seq``,
    ``_rows_for_ids``, ``_begin_write``, ``_commit_seq``, ``_insert_case`` and
    ``_apply_own_write``."""

    _db: Any
    _lock: Any
    _index: Any
    allow_low_quality: bool

    def match_video(
        self,
        video: Any,
        *,
        distance: int = PDQ_MATCH_THRESHOLD,
        quality: int = PDQ_MIN_QUALITY,
        query_pct: float = 80.0,
        compared_pct: float = 0.0,
        threads: int = 0,
    ) -> list:
        """Banked videos matching ``video`` (a ``VideoHash`` or ``(frames, qualities, md5)``)
        under the vPDQ rule (see :func:`ncii_hash.match_video`), best first.

        The query's unique good frames are searched exactly in the index; every banked video
        with at least one frame hit is then compared in full with the vPDQ rule.
        """
        frames, fq, md5 = _video_parts(video)
        good = frames[fq >= quality]
        if good.shape[0] == 0:
            return []
        good = np.unique(good, axis=0)
        with self._lock:
            self._catch_up()
            res = self._index.range_search(good, distance, threads=threads)
            candidates = set(self._rows_for_ids(
                "SELECT DISTINCT case_id, item FROM hashes WHERE kind='video_frame' AND hash_id IN ({})", res.ids))
            banked = {}
            for cid, item in candidates:
                rows = self._db.execute(
                    "SELECT hash, quality FROM hashes WHERE case_id=? AND item=? ORDER BY hash_id", (cid, item)
                ).fetchall()
                md5_row = self._db.execute("SELECT md5 FROM videos WHERE case_id=? AND item=?", (cid, item)).fetchone()
                banked[(cid, item)] = (rows, md5_row[0] if md5_row else "")
        out = []
        for (cid, item), (rows, bmd5) in banked.items():
            if not rows:
                continue
            cf = codes_from_blobs(r[0] for r in rows)
            cq = np.asarray([r[1] for r in rows], np.int32)
            m = _match_video(good, cf[cq >= quality], distance=distance, quality=0,
                             query_pct=query_pct, compared_pct=compared_pct)
            if m.is_match:
                out.append(VideoBankMatch(case_id=cid, item=int(item), query_pct=m.query_pct,
                                          compared_pct=m.compared_pct, md5_equal=bool(md5 and md5 == bmd5)))
        out.sort(key=lambda v: (-v.query_pct, -v.compared_pct, v.case_id, v.item))
        return out

    def changes(self, since: Optional[str] = None) -> ChangeSet:
        """What changed after token ``since`` (None = from the start): cases added (with
        their current hashes) and case ids withdrawn; ``next_token`` resumes after this call.
        A case added and withdrawn in the same window appears only as withdrawn."""
        try:
            start = 0 if since in (None, "") else int(str(since))
        except ValueError:
            raise BankError(f"bad change token {since!r}") from None
        if start < 0:
            raise BankError(f"bad change token {since!r}")
        with self._lock:
            return self._changes_locked(start)

    def _changes_locked(self, start: int) -> ChangeSet:
        self._db.execute("BEGIN")
        try:
            end = self._db_seq()
            ops = self._db.execute(
                "SELECT case_id, op FROM changes WHERE seq > ? AND seq <= ? ORDER BY seq", (start, end)
            ).fetchall()
            withdrawn = [cid for cid, op in ops if op == "withdraw"]
            gone = set(withdrawn)
            added = []
            for cid, op in ops:
                if op != "add" or cid in gone:
                    continue
                rows = self._db.execute(
                    "SELECT hash, quality, kind FROM hashes WHERE case_id=? ORDER BY hash_id", (cid,)
                ).fetchall()
                added.append({
                    "case_id": cid,
                    "hashes": codes_from_blobs(r[0] for r in rows),
                    "qualities": np.asarray([r[1] for r in rows], np.int32),
                    "kinds": [r[2] for r in rows],
                })
        finally:
            self._db.execute("COMMIT")
        return ChangeSet(added=added, withdrawn=withdrawn, next_token=str(end))

    def export(self, path: PathLike, format: str = "te-csv") -> int:
        """Write all active hashes as CSV (``pdq,quality,case_id,kind``), owner-only. Returns rows."""
        if format != "te-csv":
            raise BankError(f"unknown export format {format!r} (supported: 'te-csv')")
        n = 0
        with self._lock, atomic_private_file(path, text=True) as f:
            w = csv.writer(f)
            w.writerow(EXPORT_HEADER)
            self._db.execute("BEGIN")
            try:
                for h, q, cid, kind, item in self._db.execute(
                    "SELECT hash, quality, case_id, kind, item FROM hashes ORDER BY hash_id"
                ):
                    w.writerow([h.hex(), q, cid, kind, item])
                    n += 1
            finally:
                self._db.execute("COMMIT")
        return n

    def import_(self, path: PathLike, *, allow_low_quality: Optional[bool] = None) -> list:
        """Import a CSV of PDQ hashes in one transaction; returns the case ids created.

        Columns: ``pdq`` (64 hex), then optional ``quality`` (0..100, default 100),
        ``case_id`` and ``kind``; a header row is optional. Rows without a case id form one
        new case. Any bad row raises BankError with its line number, and nothing is imported.
        """
        allow = self.allow_low_quality if allow_low_quality is None else allow_low_quality
        p = Path(os.fspath(path))
        order, groups = parse_hash_csv(p, allow_low_quality=allow)
        with self._lock:
            self._catch_up()
            base = self._begin_write()
            try:
                existing = [c for c in order if self._db.execute("SELECT 1 FROM cases WHERE case_id=?", (c,)).fetchone()]
                if existing:
                    raise BankError(f"{p}: case {existing[0]} already exists in this bank (nothing imported)")
                now = time.time()
                all_ids, all_codes = [], []
                for i, cid in enumerate(order):
                    codes = np.frombuffer(b"".join(groups[cid][0]), dtype=np.uint8).reshape(-1, PDQ_HASH_BYTES)
                    items = groups[cid][3]
                    videos = [(n, "") for n in sorted(set(items)) if n > 0]
                    ids = self._insert_case(cid, codes, np.asarray(groups[cid][1]), groups[cid][2], now, base + 1 + i,
                                            items, videos)
                    all_ids.extend(ids)
                    all_codes.append(codes)
                self._commit_seq(base + len(order))
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._apply_own_write(base, base + len(order), np.concatenate(all_codes), all_ids)
        return order
