"""The bank's cases: checking what a caller wants to bank, and the rows of a case in the
``cases``, ``hashes``, ``videos`` and ``changes`` tables. Each function runs inside a
transaction the bank opened (:meth:`Database.write` / :meth:`Database.read`).

Every add and withdrawal is one entry of the change log (``changes``: its sequence number,
the case, and the hash ids it added or removed as little-endian int64), which is how other
processes' indexes and partners' change feeds follow the bank.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from .. import submission
from ..hashes import PDQ_HASH_BYTES, PDQ_MIN_QUALITY, as_hash_array
from .db import Database
from .records import CASE_ID_PATTERN, MEDIA_KINDS, BankError, BankMatch, CaseInfo, codes_from_blobs, video_parts


def check_hashes(hashes: Any, qualities: Any, kinds: Union[str, Sequence[str]], *,
                 allow_low_quality: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(codes (N, 32) uint8, qualities (N,) int32, kinds) of image hashes a caller banks."""
    h = as_hash_array(hashes)
    n = h.shape[0]
    if qualities is None:
        q = np.full(n, 100, dtype=np.int32)
    else:
        q = np.asarray(qualities)
        if q.size and not np.issubdtype(q.dtype, np.integer):
            raise TypeError(f"qualities must be integers 0..100; got dtype {q.dtype}")
        if q.shape != (n,):
            raise BankError(f"qualities must be {n} integers (one per hash); got shape {q.shape}")
        q = q.astype(np.int32)
        if n and (q.min() < 0 or q.max() > 100):
            raise BankError("qualities must be in 0..100")
    k = [kinds] * n if isinstance(kinds, str) else list(kinds)
    if len(k) != n or any(x not in MEDIA_KINDS for x in k):
        raise BankError(f"kind must be one of {MEDIA_KINDS}")
    if not allow_low_quality:
        low = np.nonzero(q < PDQ_MIN_QUALITY)[0]
        if low.size:
            raise BankError(
                f"{low.size} hash(es) have quality below {PDQ_MIN_QUALITY} (first at position {int(low[0])}, "
                f"quality {int(q[low[0]])}): such hashes come from flat or featureless images and cause false "
                "matches; pass allow_low_quality=True to bank them anyway"
            )
    return h, q, k


class NewCase:
    """The rows of one case to bank: image hashes (item 0) then each video's unique frames
    (items 1, 2, ...), checked."""

    def __init__(self, hashes: Any, qualities: Any, *, kind: Union[str, Sequence[str]] = "image",
                 videos: Iterable[Any] = (), allow_low_quality: bool = False):
        if hashes is None:
            hashes = np.zeros((0, PDQ_HASH_BYTES), np.uint8)
        h, q, k = check_hashes(hashes, qualities, kind, allow_low_quality=allow_low_quality)
        items = [0] * h.shape[0]
        n_images = h.shape[0]
        self.videos: list[tuple[int, str]] = []  #: (item, md5)
        for n, video in enumerate(videos, start=1):
            frames, fq, md5 = video_parts(video)
            if not allow_low_quality and not (fq >= PDQ_MIN_QUALITY).any():
                raise BankError(
                    f"video {n} has no frame with quality >= {PDQ_MIN_QUALITY}, so it could never match; "
                    "pass allow_low_quality=True to bank it anyway"
                )
            h = np.concatenate([h, frames])
            q = np.concatenate([q, fq])
            k = k + ["video_frame"] * frames.shape[0]
            items += [n] * frames.shape[0]
            self.videos.append((n, md5))
        if h.shape[0] == 0:
            raise BankError("a case needs at least one hash or video")
        self.images = n_images  #: the image hashes are the first rows
        self.codes, self.qualities, self.kinds, self.items = h, q, k, items


def check_windows(windows: Iterable[Any], n_images: int) -> tuple:
    """A case's shared window hashes, checked (``ImageWindow``, ``image`` < ``n_images``)."""
    return submission.check_windows(windows, n_images, BankError)


def check_case_id(case_id: Optional[str]) -> None:
    if case_id is None:
        return
    if not isinstance(case_id, str):
        raise TypeError(f"a case id is a str; got {type(case_id).__name__}")
    if not CASE_ID_PATTERN.match(case_id):
        raise BankError(f"case id {case_id!r} must be 1-128 characters from A-Z a-z 0-9 _ . : -")


def case_exists(db: Database, case_id: str) -> bool:
    return db.execute("SELECT 1 FROM cases WHERE case_id=?", (case_id,)).fetchone() is not None


def insert_case(db: Database, case_id: str, h: np.ndarray, q: np.ndarray, k: Sequence[str], now: float, seq: int,
                items: Optional[Sequence[int]] = None, videos: Sequence[tuple[int, str]] = ()) -> list[int]:
    """Bank a new case as change ``seq``; the hash ids of its rows, in order."""
    db.execute("INSERT INTO cases (case_id, created_at, status) VALUES (?, ?, 'active')", (case_id, now))
    return add_hashes(db, case_id, h, q, k, now, seq, items, videos)


def add_hashes(db: Database, case_id: str, h: np.ndarray, q: np.ndarray, k: Sequence[str], now: float, seq: int,
               items: Optional[Sequence[int]] = None, videos: Sequence[tuple[int, str]] = ()) -> list[int]:
    """Add rows (and video items) to an existing case as change ``seq`` (one ``add`` entry of
    the change log); the hash ids of the new rows, in order."""
    db.executemany(
        "INSERT INTO hashes (case_id, hash, quality, kind, added_at, seq, item) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((case_id, h[i].tobytes(), int(q[i]), k[i], now, seq, 0 if items is None else int(items[i]))
         for i in range(h.shape[0])),
    )
    # Change seq wrote exactly these rows of the case, in insertion (= increasing id) order.
    ids = [r[0] for r in db.execute("SELECT hash_id FROM hashes WHERE case_id=? AND seq=? ORDER BY hash_id",
                                    (case_id, seq))]
    db.executemany("INSERT INTO videos (case_id, item, md5) VALUES (?, ?, ?)",
                   [(case_id, item, md5) for item, md5 in videos])
    log_change(db, seq, case_id, "add", ids, now)
    return ids


def insert_withdrawn_case(db: Database, case_id: str, now: float, seq: int) -> None:
    """Record a case that is already withdrawn (a feed's withdrawal of a case this bank never
    held), so nothing can add it later; change ``seq`` logs the withdrawal for partners."""
    db.execute("INSERT INTO cases (case_id, created_at, status, withdrawn_at) VALUES (?, ?, 'withdrawn', ?)",
               (case_id, now, now))
    log_change(db, seq, case_id, "withdraw", [], now)


def case_status(db: Database, case_id: str) -> str:
    """``"active"`` or ``"withdrawn"``; KeyError for an unknown case."""
    row = db.execute("SELECT status FROM cases WHERE case_id=?", (case_id,)).fetchone()
    if row is None:
        raise KeyError(f"no case {case_id!r} in this bank")
    return str(row[0])


def withdraw_case(db: Database, case_id: str, now: float, seq: int) -> list[int]:
    """Delete an active case's hashes (with their window hashes) and videos and mark it
    withdrawn as change ``seq``; the hash ids removed."""
    ids = [r[0] for r in db.execute("SELECT hash_id FROM hashes WHERE case_id=?", (case_id,))]
    db.execute("DELETE FROM windows WHERE hash_id IN (SELECT hash_id FROM hashes WHERE case_id=?)", (case_id,))
    db.execute("DELETE FROM hashes WHERE case_id=?", (case_id,))
    db.execute("DELETE FROM videos WHERE case_id=?", (case_id,))
    db.execute("UPDATE cases SET status='withdrawn', withdrawn_at=? WHERE case_id=?", (now, case_id))
    log_change(db, seq, case_id, "withdraw", ids, now)
    return ids


def log_change(db: Database, seq: int, case_id: str, op: str, hash_ids: Sequence[int], now: float) -> None:
    db.execute("INSERT INTO changes (seq, case_id, op, hash_ids, at) VALUES (?, ?, ?, ?, ?)",
               (seq, case_id, op, np.asarray(hash_ids, dtype="<i8").tobytes(), now))


def case_info(db: Database, case_id: str) -> CaseInfo:
    row = db.execute("SELECT case_id, status, created_at, withdrawn_at FROM cases WHERE case_id=?",
                     (case_id,)).fetchone()
    if row is None:
        raise KeyError(f"no case {case_id!r} in this bank")
    n = db.execute("SELECT COUNT(*) FROM hashes WHERE case_id=?", (case_id,)).fetchone()[0]
    return CaseInfo(case_id=row[0], status=row[1], created_at=row[2], withdrawn_at=row[3], hashes=n)


def case_hashes(db: Database, case_id: str) -> np.ndarray:
    rows = db.execute("SELECT hash FROM hashes WHERE case_id=? ORDER BY hash_id", (case_id,)).fetchall()
    return codes_from_blobs(r[0] for r in rows)


def bank_matches(db: Database, res: Any) -> list[BankMatch]:
    """An index's range search result as BankMatch records, the ``hashes`` table being the
    truth: ids no longer banked (withdrawn since the index last caught up) are dropped. Rows
    come ordered per query by (distance, id); filtering keeps that order."""
    if res.ids.size == 0:
        return []
    owner = dict(db.rows_for_ids("SELECT hash_id, case_id FROM hashes WHERE hash_id IN ({})", res.ids))
    variants = res.variants if res.variants is not None else np.zeros(res.ids.size, np.int8)
    out = []
    for qi in range(res.lims.size - 1):
        for j in range(int(res.lims[qi]), int(res.lims[qi + 1])):
            cid = owner.get(int(res.ids[j]))
            if cid is not None:
                out.append(BankMatch(query=qi, case_id=cid, hash_id=int(res.ids[j]), distance=int(res.distances[j]),
                                     variant=int(variants[j])))
    return out
