"""Survivors' cases in the hub store: opening one (one transaction, one change number),
reading its status, withdrawing it, and the per-case record of wrong PINs.

The store knows nothing of HTTP; the PIN is hashed and sealed by the caller (outside the
store's lock, argon2 is slow) and handed in ready to keep.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from ...bank.feed import SIGNAL_PDQ, SIGNAL_PDQ_WINDOW, SIGNAL_VIDEO_MD5, SIGNAL_VIDEO_PDQ, video_pdq_value, window_value
from ...submission import Submission
from ..access import StoreAccess
from .credentials import digest_of, new_case_number

#: How long a retry with the same idempotency key is answered with the same case and PIN.
IDEMPOTENCY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class CaseHash:
    signal_type: str
    hash_value: str

    @functools.cached_property
    def digest(self) -> str:  # SHA-256 of a value that can be hundreds of KB: computed once
        return digest_of(self.hash_value)


def mark_changed(db: Any, digests: list[tuple[str, str]], seq: int) -> None:
    """Record change ``seq`` as the last change of each (digest, signal type) -- the feed's index."""
    db.executemany("INSERT INTO hash_changes (digest, signal_type, last_seq) VALUES (?, ?, ?) "
                   "ON CONFLICT (digest) DO UPDATE SET last_seq=excluded.last_seq",
                   [(d, t, seq) for d, t in digests])


def case_hashes_of(submission: Submission) -> list[CaseHash]:
    """What a submission banks: ImagePDQ per image, NciiImagePDQWindow per shared window (with
    its image's hash), VideoMD5 per video's MD5, and one NciiVideoPDQ record per video for its
    frames; each distinct value once."""
    out = [CaseHash(SIGNAL_PDQ, bytes(h).hex()) for h in submission.hashes]
    out += [CaseHash(SIGNAL_PDQ_WINDOW, window_value(w.name, submission.hashes[w.image].tobytes(), w.pdq))
            for w in submission.windows]
    for video in submission.videos:
        if video.md5:
            out.append(CaseHash(SIGNAL_VIDEO_MD5, video.md5))
        if video.frames.shape[0]:
            out.append(CaseHash(SIGNAL_VIDEO_PDQ, video_pdq_value(video.frames, video.qualities)))
    return list({h.digest: h for h in out}.values())


@dataclass(frozen=True)
class CaseAuth:
    """What checking a PIN needs: its hash and the case's wrong-PIN state."""

    case_number: str
    pin_hash: str
    failures: int
    not_before: float


@dataclass(frozen=True)
class CaseState:
    case_number: str
    status: str  #: "active" or "withdrawn"
    items: int
    hashes: int
    feedback: dict


@dataclass(frozen=True)
class Opened:
    """A submission's outcome: a new case, a retry of an earlier one (its sealed PIN), or a
    conflict (the key was used with another body)."""

    case_number: Optional[str]
    created: bool = False
    sealed_pin: Optional[str] = None
    conflict: bool = False
    hashes: int = 0
    items: int = 0


class CaseStore:
    def __init__(self, access: StoreAccess):
        self._a = access

    def find_retry(self, key_digest: str, body_digest: str, now: float) -> Optional[Opened]:
        """The earlier outcome of this idempotency key within its 24 hours, if any."""
        with self._a.read():
            return self._find_retry(key_digest, body_digest, now)

    def _find_retry(self, key_digest: str, body_digest: str, now: float) -> Optional[Opened]:
        row = self._a.execute(
            "SELECT case_number, idem_body_hash, sealed_pin, sealed_until, items, hashes FROM cases "
            "WHERE idem_key_hash=?", (key_digest,)).fetchone()
        if row is None or row[3] is None or row[3] < now:
            return None
        if row[1] != body_digest:
            return Opened(case_number=None, conflict=True)
        return Opened(case_number=row[0], sealed_pin=row[2], items=int(row[4]), hashes=int(row[5]))

    def open_case(self, hashes: Sequence[CaseHash], items: int, pin_hash: str, sealed_pin: str,
                  key_digest: str, body_digest: str, now: float) -> Opened:
        """Open a case in one transaction taking one change number (or return the earlier
        outcome of the same idempotency key, when another request got there first)."""
        with self._a.write() as w:
            # Only this key's expired seal matters here (it would block the key's reuse); the
            # others are erased by the periodic maintenance -- not a table scan per submission.
            self._a.execute("UPDATE cases SET idem_key_hash=NULL, idem_body_hash=NULL, sealed_pin=NULL, "
                            "sealed_until=NULL WHERE idem_key_hash=? AND sealed_until < ?", (key_digest, now))
            earlier = self._find_retry(key_digest, body_digest, now)
            if earlier is not None:
                return earlier
            case_number = new_case_number()
            while self._a.execute("SELECT 1 FROM cases WHERE case_number=?", (case_number,)).fetchone():
                case_number = new_case_number()  # pragma: no cover - 60 random bits
            seq = w.next_seq()
            self._a.execute("INSERT INTO changes (seq, op, case_number, at) VALUES (?, 'submit', ?, ?)",
                            (seq, case_number, now))
            self._a.execute(
                "INSERT INTO cases (case_number, pin_hash, status, items, hashes, created_seq, idem_key_hash, "
                "idem_body_hash, sealed_pin, sealed_until) VALUES (?, ?, 'active', ?, ?, ?, ?, ?, ?, ?)",
                (case_number, pin_hash, items, len(hashes), seq, key_digest, body_digest, sealed_pin,
                 now + IDEMPOTENCY_SECONDS))
            db = self._a.db
            db.executemany("INSERT INTO hash_values (digest, signal_type, hash_value) VALUES (?, ?, ?) "
                           "ON CONFLICT (digest) DO NOTHING",
                           [(h.digest, h.signal_type, h.hash_value) for h in hashes])
            db.executemany("INSERT INTO case_hashes (case_number, digest, signal_type, added_seq) VALUES (?, ?, ?, ?)",
                           [(case_number, h.digest, h.signal_type, seq) for h in hashes])
            mark_changed(db, [(h.digest, h.signal_type) for h in hashes], seq)
            return Opened(case_number=case_number, created=True, items=items, hashes=len(hashes))

    def _erase_expired_seals(self, now: float) -> None:
        self._a.execute("UPDATE cases SET idem_key_hash=NULL, idem_body_hash=NULL, sealed_pin=NULL, "
                        "sealed_until=NULL WHERE sealed_until IS NOT NULL AND sealed_until < ?", (now,))

    def erase_expired_seals(self, now: float) -> None:
        with self._a.write():
            self._erase_expired_seals(now)

    # ---- PIN checks ------------------------------------------------------------------------------
    def auth(self, case_number: str) -> Optional[CaseAuth]:
        with self._a.read():
            row = self._a.execute("SELECT pin_hash, failures, not_before FROM cases WHERE case_number=?",
                                  (case_number,)).fetchone()
        return None if row is None else CaseAuth(case_number, row[0], int(row[1]), float(row[2]))

    def record_failure(self, case_number: str, wait_for) -> float:
        """Count a wrong PIN; ``wait_for(failures)`` is the wait it earns. The new not-before."""
        with self._a.write():
            row = self._a.execute("SELECT failures FROM cases WHERE case_number=?", (case_number,)).fetchone()
            if row is None:
                return 0.0
            failures = int(row[0]) + 1
            not_before = wait_for(failures)
            self._a.execute("UPDATE cases SET failures=?, not_before=? WHERE case_number=?",
                            (failures, not_before, case_number))
            return not_before

    def reset_failures(self, case_number: str) -> None:
        with self._a.write():
            self._a.execute("UPDATE cases SET failures=0, not_before=0 WHERE case_number=? AND failures<>0",
                            (case_number,))

    # ---- status and withdrawal ---------------------------------------------------------------------
    def state(self, case_number: str) -> Optional[CaseState]:
        with self._a.read():
            row = self._a.execute("SELECT status, items, hashes FROM cases WHERE case_number=?",
                                  (case_number,)).fetchone()
            if row is None:
                return None
            counts = self._a.execute(
                "SELECT f.value, COUNT(*) FROM feedback f JOIN case_hashes h ON h.digest=f.digest "
                "JOIN partners p ON p.partner_id=f.partner_id "
                "WHERE h.case_number=? AND p.revoked=0 GROUP BY f.value ORDER BY f.value", (case_number,)).fetchall()
        return CaseState(case_number, row[0], int(row[1]), int(row[2]), {v: int(n) for v, n in counts})

    def withdraw(self, case_number: str, now: float) -> Optional[CaseState]:
        """Withdraw a case in one transaction taking one change number; harmless when it is
        already withdrawn. None when there is no such case."""
        with self._a.write() as w:
            row = self._a.execute("SELECT status FROM cases WHERE case_number=?", (case_number,)).fetchone()
            if row is None:
                return None
            if row[0] == "active":
                seq = w.next_seq()
                self._a.execute("INSERT INTO changes (seq, op, case_number, at) VALUES (?, 'withdraw', ?, ?)",
                                (seq, case_number, now))
                self._a.execute("UPDATE cases SET status='withdrawn', withdrawn_seq=? WHERE case_number=?",
                                (seq, case_number))
                self._a.execute("UPDATE case_hashes SET withdrawn_seq=? WHERE case_number=?", (seq, case_number))
                touched = self._a.execute("SELECT digest, signal_type FROM case_hashes WHERE case_number=?",
                                          (case_number,)).fetchall()
                mark_changed(self._a.db, [(d, t) for d, t in touched], seq)
        return self.state(case_number)
