"""The partner feed read from the hub store: deltas between change numbers, in pages, and the
retention purge of withdrawn hash values.

A delta from ``s`` to ``e`` holds every hash value whose last change lies in ``(s, e]``, in its
state at ``e``, read through the ``hash_changes`` index (each value's last change, kept in the
transaction that changes it), so a page is a range scan: O(page), whatever the hub holds. A
value changed again after ``e`` leaves this delta and is in the next one (its checkpoint is
``e``), so nothing is skipped and a replayed page is the same page. A (case, hash) row added
*and* withdrawn inside ``(s, e]`` does not count: a partner that never had it never receives it
(a value with no other case in the delta is left out of its page). Records are ordered by (last
change, signal type, SHA-256 of the value); the cursor is the last key served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Sequence

from ...bank.feed import ACTIVE, WITHDRAWN, Feedback, HashRecord
from ..access import StoreAccess
from .database import PURGED_SEQ

Cursor = tuple[int, str, str]  #: (last change, signal type, digest) of the last record served


@dataclass(frozen=True)
class DeltaPage:
    records: list[HashRecord]
    cursor: Optional[Cursor]  #: where the next page starts; None on the delta's last page


class FeedStore:
    def __init__(self, access: StoreAccess):
        self._a = access

    def position(self) -> tuple[int, int]:
        """(the hub's change number now, the newest change whose withdrawn values were purged)."""
        with self._a.read() as seq:
            return seq, int(self._a.db.meta(PURGED_SEQ) or 0)

    def page(self, s: int, e: int, signal_types: Sequence[str], after: Optional[Cursor], limit: int) -> DeltaPage:
        with self._a.read():
            keys = self._keys(s, e, signal_types, after, limit + 1)
            more = len(keys) > limit
            keys = keys[:limit]
            records = self._records(s, e, keys)
        return DeltaPage(records, tuple(keys[-1]) if more and keys else None)  # type: ignore[arg-type]

    def _keys(self, s: int, e: int, types: Sequence[str], after: Optional[Cursor], n: int) -> list:
        params: list = [s, e, *types]
        sql = ("SELECT last_seq, signal_type, digest FROM hash_changes WHERE last_seq > ? AND last_seq <= ? "
               f"AND signal_type IN ({','.join('?' * len(types))})")
        if after is not None:
            sql += " AND (last_seq > ? OR (last_seq = ? AND (signal_type > ? OR (signal_type = ? AND digest > ?))))"
            params += [after[0], after[0], after[1], after[1], after[2]]
        sql += " ORDER BY last_seq, signal_type, digest LIMIT ?"
        return [(int(r[0]), r[1], r[2]) for r in self._a.execute(sql, [*params, n]).fetchall()]

    def _records(self, s: int, e: int, keys: list) -> list[HashRecord]:
        digests = [k[2] for k in keys]
        if not digests:
            return []
        values = {r[0]: (r[1], r[2]) for r in self._a.rows_in(
            "SELECT digest, signal_type, hash_value FROM hash_values WHERE digest IN ({})", digests)}
        cases: dict[str, dict[str, str]] = {d: {} for d in digests}
        for digest, case_number, added, withdrawn in self._a.rows_in(
                "SELECT digest, case_number, added_seq, withdrawn_seq FROM case_hashes "
                "WHERE digest IN ({}) AND added_seq <= ?", digests, [e]):
            gone = withdrawn is not None and withdrawn <= e
            if gone and added > s:
                continue  # added and withdrawn inside the delta: never sent
            cases[digest][case_number] = WITHDRAWN if gone else ACTIVE
        feedback: dict[str, list[Feedback]] = {d: [] for d in digests}
        for digest, name, value, tags in self._a.rows_in(
                "SELECT f.digest, p.name, f.value, f.tags FROM feedback f JOIN partners p ON p.partner_id=f.partner_id "
                "WHERE f.digest IN ({}) AND p.revoked=0 ORDER BY p.name", digests):
            feedback[digest].append(Feedback(value, tuple(json.loads(tags)), name))
        times = {int(r[0]): int(r[1]) for r in self._a.rows_in(
            "SELECT seq, at FROM changes WHERE seq IN ({})", sorted({k[0] for k in keys}))}
        out = []
        for last, signal_type, digest in keys:
            by_case = cases[digest]
            if not by_case:
                continue  # its only cases were added and withdrawn inside the delta
            status = ACTIVE if ACTIVE in by_case.values() else WITHDRAWN
            out.append(HashRecord(signal_type, values[digest][1], status, by_case, times.get(last, 0),
                                  tuple(feedback[digest])))
        return out

    def purge(self, now: float, retention_seconds: float) -> int:
        """Delete withdrawn hash rows every partner has fetched past, or older than the
        retention time, and the values (and feedback) no case holds any more. Rows deleted."""
        with self._a.write():
            ex = self._a.execute
            row = ex("SELECT MIN(progress_seq) FROM partners WHERE revoked=0").fetchone()
            fetched = int(row[0]) if row and row[0] is not None else int(self._a.db.meta("change_seq") or 0)
            row = ex("SELECT MAX(seq) FROM changes WHERE op='withdraw' AND at < ?", (now - retention_seconds,)).fetchone()
            cutoff = max(fetched, int(row[0]) if row and row[0] is not None else 0)
            newest = ex("SELECT MAX(withdrawn_seq) FROM case_hashes WHERE withdrawn_seq <= ?", (cutoff,)).fetchone()[0]
            if newest is None:
                return 0
            deleted = ex("DELETE FROM case_hashes WHERE withdrawn_seq IS NOT NULL AND withdrawn_seq <= ?",
                         (cutoff,)).rowcount
            orphans = "SELECT v.digest FROM hash_values v WHERE NOT EXISTS (SELECT 1 FROM case_hashes h WHERE h.digest=v.digest)"
            ex(f"DELETE FROM feedback WHERE digest IN ({orphans})")
            ex(f"DELETE FROM hash_changes WHERE digest IN ({orphans})")
            ex(f"DELETE FROM hash_values WHERE digest IN ({orphans})")
            if int(newest) > int(self._a.db.meta(PURGED_SEQ) or 0):
                self._a.db.set_meta(PURGED_SEQ, str(int(newest)))
            return int(deleted)
