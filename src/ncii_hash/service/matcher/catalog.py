"""The matcher's view of the bank: HMA-style named banks over the bank's cases, and the
integer content ids HMA clients see (docs/matcher.md).

* **Named banks** (``named_banks``): a name matching ``[A-Z_][A-Z0-9_]*`` and a
  ``matching_enabled_ratio``. Two are made with every bank and name an *origin*: ``STOPNCII``
  holds the cases synced from a hub (case ids ``NC-...``), ``LOCAL`` every other case banked
  without a name (``bank add``, ``bank import``). A case added through the API belongs to the
  bank its ``bank_cases`` row names (written before the case, so a crash in between leaves a
  harmless row, never a case in the wrong bank). Renaming a bank keeps its cases.
* **Content ids** are the bank's own stable hash ids: an image's is its hash row's id, a
  video's the id of its first frame row. They never change and are never reused.
* **Content settings** (``content_settings``): HMA's ``disable_until_ts`` (``1`` = enabled,
  ``0`` = disabled, else disabled until that Unix time) and ``note``.

Every call runs on :class:`~ncii_hash.service.access.StoreAccess`; nothing here knows HTTP.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

from ..access import StoreAccess
from .refused import Refused

BANK_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
HUB_CASE_PREFIX = "NC-"
ENABLED, DISABLED = 1, 0  #: HMA's magic values of disable_until_ts
CATALOG_VERSION = "catalog_version"  #: meta key counting catalog writes


@dataclass(frozen=True)
class NamedBank:
    name: str
    enabled_ratio: float
    origin: Optional[str]  #: "hub", "local", or None for a bank made through the API

    def as_json(self) -> dict:
        return {"name": self.name, "matching_enabled_ratio": self.enabled_ratio}


@dataclass(frozen=True)
class Content:
    content_id: int
    case_id: str
    kind: str  #: "image" or "video_frame"
    bank: Optional[str]
    disable_until_ts: int
    note: Optional[str]
    signals: dict  #: {"pdq": hex} for an image, {"video_md5": md5} for a video when known

    def enabled(self, now: float) -> bool:
        return is_enabled(self.disable_until_ts, now)


def is_enabled(disable_until_ts: int, now: float) -> bool:
    """HMA's rule: 1 is enabled, 0 disabled, any other value disabled until that Unix time."""
    if disable_until_ts == DISABLED:
        return False
    return disable_until_ts == ENABLED or disable_until_ts <= now


def check_bank_name(name: object) -> str:
    if not isinstance(name, str) or not BANK_NAME.match(name):
        raise Refused(400, "Bank names must be UPPER_WITH_UNDERSCORE")
    return name


def check_ratio(ratio: object) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= float(ratio) <= 1.0:
        raise Refused(400, "enabled_ratio must be a number from 0.0 to 1.0")
    return float(ratio)


class BankCatalog:
    def __init__(self, access: StoreAccess):
        self.access = access
        #: called after each write this process committed (the matcher's resolver drops its cache)
        self.on_write: Callable[[], None] = lambda: None

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """A write transaction that also counts itself in the stored catalog version (so other
        matcher processes drop what they cached), then tells this process's ``on_write``."""
        with self.access.write():
            yield
            self.access.db.set_meta(CATALOG_VERSION, str(int(self.access.db.meta(CATALOG_VERSION) or 0) + 1))
        self.on_write()

    # ---- named banks --------------------------------------------------------------------------
    def banks(self) -> list[NamedBank]:
        with self.access.read():
            rows = self.access.execute("SELECT name, enabled_ratio, origin FROM named_banks ORDER BY name").fetchall()
        return [NamedBank(r[0], float(r[1]), r[2]) for r in rows]

    def bank(self, name: str) -> Optional[NamedBank]:
        with self.access.read():
            row = self.access.execute("SELECT name, enabled_ratio, origin FROM named_banks WHERE name=?", (name,)).fetchone()
        return None if row is None else NamedBank(row[0], float(row[1]), row[2])

    def require(self, name: str) -> NamedBank:
        bank = self.bank(name)
        if bank is None:
            raise Refused(404, f"bank '{name}' not found")
        return bank

    def create(self, name: object, ratio: object) -> NamedBank:
        bank = NamedBank(check_bank_name(name), check_ratio(ratio), None)
        with self._write():
            if self.bank(bank.name) is not None:
                raise Refused(403, "Bank already exists")
            self.access.execute("INSERT INTO named_banks (name, enabled_ratio, origin, created_at) VALUES (?, ?, NULL, ?)",
                                (bank.name, bank.enabled_ratio, time.time()))
        return bank

    def update(self, name: str, new_name: Optional[object], ratio: Optional[object]) -> NamedBank:
        with self._write():
            bank = self.bank(name)
            if bank is None:
                raise Refused(404, "Bank not found")
            target = bank.name if new_name is None else check_bank_name(new_name)
            value = bank.enabled_ratio if ratio is None else check_ratio(ratio)
            if target != bank.name:
                if self.bank(target) is not None:
                    raise Refused(403, "Bank name already exists")
                self.access.execute("UPDATE bank_cases SET bank=? WHERE bank=?", (target, bank.name))
            self.access.execute("UPDATE named_banks SET name=?, enabled_ratio=? WHERE name=?", (target, value, bank.name))
        return NamedBank(target, value, bank.origin)

    def api_cases(self, name: str) -> list[str]:
        """The cases added through the API to bank ``name``."""
        with self.access.read():
            return [r[0] for r in self.access.execute("SELECT case_id FROM bank_cases WHERE bank=? ORDER BY case_id",
                                                      (name,)).fetchall()]

    def forget(self, name: str) -> None:
        """Remove bank ``name`` (its cases withdrawn by the caller first) and its case rows."""
        with self._write():
            self.access.execute("DELETE FROM bank_cases WHERE bank=?", (name,))
            self.access.execute("DELETE FROM named_banks WHERE name=? AND origin IS NULL", (name,))

    def assign(self, case_id: str, name: str) -> None:
        """Record that case ``case_id`` (about to be banked) belongs to bank ``name``."""
        with self._write():
            self.require(name)
            self.access.execute("INSERT INTO bank_cases (case_id, bank) VALUES (?, ?)", (case_id, name))

    # ---- content ------------------------------------------------------------------------------
    def content_id_of(self, case_id: str) -> Optional[int]:
        with self.access.read():
            row = self.access.execute("SELECT MIN(hash_id) FROM hashes WHERE case_id=?", (case_id,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def content(self, content_id: int) -> Optional[Content]:
        """The banked item whose content id is ``content_id`` (None if there is none)."""
        with self.access.read():
            row = self.access.execute("SELECT hash_id, case_id, item, kind, hash FROM hashes WHERE hash_id=?",
                                      (content_id,)).fetchone()
            if row is None:
                return None
            hits = self._items([(int(row[0]), row[1], int(row[2]), row[3])])
            if hits.get(int(row[0]), (None,))[0] != content_id:
                return None  # a video's later frame: not a content id
            signals = {"pdq": bytes(row[4]).hex()} if row[3] == "image" else {}
            if row[3] != "image":
                md5 = self.access.execute("SELECT md5 FROM videos WHERE case_id=? AND item=?", (row[1], row[2])).fetchone()
                if md5 is not None:
                    signals = {"video_md5": md5[0]}
            bank = self._bank_names([row[1]])[row[1]]
            until, note = self._settings([content_id]).get(content_id, (ENABLED, None))
        return Content(content_id, row[1], row[3], bank, until, note, signals)

    def entries(self, hash_ids: Iterable[int]) -> dict[int, tuple[int, Optional[str], int]]:
        """For matched hash ids still banked: ``hash_id -> (content id, bank name,
        disable_until_ts)``. One read for the whole batch (:class:`~.resolver.HitResolver`
        keeps the answers until the bank or the catalog changes)."""
        ids = list(hash_ids)
        if not ids:
            return {}
        with self.access.read():
            rows = self.access.db.rows_for_ids(
                "SELECT h.hash_id, h.case_id, h.item, h.kind, bc.bank, cs.disable_until_ts FROM hashes h "
                "LEFT JOIN bank_cases bc ON bc.case_id = h.case_id "
                "LEFT JOIN content_settings cs ON cs.content_id = h.hash_id WHERE h.hash_id IN ({})", ids)
            origins = dict(self.access.execute("SELECT origin, name FROM named_banks WHERE origin IS NOT NULL").fetchall())
            frames = [(int(r[0]), r[1], int(r[2]), r[3]) for r in rows if r[3] != "image"]
            videos = self._items(frames) if frames else {}  # a frame's content is its video's first row
            video_settings = self._settings({cid for cid, _ in videos.values()}) if videos else {}
        out = {}
        for hid, case, _, kind, named, until in rows:
            name = named if named is not None else origins.get("hub" if case.startswith(HUB_CASE_PREFIX) else "local")
            cid = int(hid)
            if kind != "image":
                cid = videos[int(hid)][0]
                until = video_settings.get(cid, (ENABLED, None))[0]
            out[int(hid)] = (cid, name, ENABLED if until is None else int(until))
        return out

    def ratios(self) -> dict[str, float]:
        """Every named bank's matching_enabled_ratio."""
        with self.access.read():
            return {name: float(r) for name, r in self.access.execute("SELECT name, enabled_ratio FROM named_banks")}

    def version(self) -> int:
        """How many catalog writes were committed (by any process): a changed value means a
        bank, a case's bank or a content setting may have changed."""
        with self.access.read():
            return int(self.access.db.meta(CATALOG_VERSION) or 0)

    def set_content(self, content_id: int, disable_until_ts: Optional[int], note: Optional[str],
                    set_note: bool) -> None:
        with self._write():
            until, old_note = self._settings([content_id]).get(content_id, (ENABLED, None))
            until = until if disable_until_ts is None else disable_until_ts
            note = note if set_note else old_note
            self.access.execute("INSERT INTO content_settings (content_id, disable_until_ts, note) VALUES (?, ?, ?) "
                                "ON CONFLICT(content_id) DO UPDATE SET disable_until_ts=excluded.disable_until_ts, "
                                "note=excluded.note", (content_id, until, note))

    def set_note(self, content_id: int, note: Optional[str]) -> None:
        if note is not None:
            self.set_content(content_id, None, note, True)

    # ---- helpers (inside a read) --------------------------------------------------------------
    def _items(self, rows: list[tuple[int, str, int, str]]) -> dict[int, tuple[int, str]]:
        """hash id -> (content id, case id): an image row is its own content; a video frame's
        content is its item's first row."""
        out: dict[int, tuple[int, str]] = {}
        firsts: dict[tuple[str, int], int] = {}
        for hid, case, item, kind in rows:
            if kind == "image":
                out[hid] = (hid, case)
                continue
            key = (case, item)
            if key not in firsts:
                row = self.access.execute("SELECT MIN(hash_id) FROM hashes WHERE case_id=? AND item=?", key).fetchone()
                firsts[key] = int(row[0])
            out[hid] = (firsts[key], case)
        return out

    def _bank_names(self, cases: Iterable[str]) -> dict[str, Optional[str]]:
        cases = list(cases)
        named = dict(self.access.rows_in("SELECT case_id, bank FROM bank_cases WHERE case_id IN ({})", cases))
        origins = dict(self.access.execute("SELECT origin, name FROM named_banks WHERE origin IS NOT NULL").fetchall())
        return {c: named[c] if c in named else origins.get("hub" if c.startswith(HUB_CASE_PREFIX) else "local")
                for c in cases}

    def _settings(self, content_ids: Iterable[int]) -> dict[int, tuple[int, Optional[str]]]:
        rows = self.access.db.rows_for_ids(
            "SELECT content_id, disable_until_ts, note FROM content_settings WHERE content_id IN ({})", list(content_ids))
        return {int(r[0]): (int(r[1]), r[2]) for r in rows}
