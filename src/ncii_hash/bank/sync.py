"""``HashBank.sync``: pull a StopNCII-compatible feed (our hub's ``/v1`` or StopNCII's) into a
platform's bank. Protocol: docs/hub.md ("Partners", "Platforms").

Invariants:

* **Each hub case is a bank case** whose case id is the case number. A hash listed under
  several cases is banked once per case. A record with no case number at all (not sent by our
  hub) is banked as a case of its own, ``feed-<digest of the hash>``.
* **Withdrawals are final.** A case a record lists as ``Withdrawn``/``Deleted`` -- or every case
  of a record whose ``hashStatus`` is no longer active -- is withdrawn at once (its rows
  deleted, as :meth:`HashBank.withdraw` does); a case this bank never held is recorded as
  withdrawn, so no later page (nor a replayed one) can add it. Withdrawals of a page are
  applied before its additions, so nothing a page withdraws is added by the same page.
* **One transaction per page, checkpoint included.** The page's rows, its change-log entries
  and the checkpoint that follows it (``meta["feed:<base url>"]``: the position and, inside a
  delta, the page token) commit together: a crash loses nothing and skips nothing, and a page
  applied twice (a retry, two syncs at once) adds nothing twice (rows are de-duplicated per
  case). An expired or refused page token restarts the delta from its checkpoint position.
* **Bad records are skipped, counted and named** in the report (unknown signal types,
  malformed values, case numbers that are not valid case ids); the rest of the page goes on.

Signal types: ``ImagePDQ`` values are banked as image hashes (quality unknown on the wire:
stored as 100, as a CSV import without qualities); ``NciiVideoPDQ`` records (requested with
``signal_types``) as one video item each; ``NciiImagePDQWindow`` records (requested) as the
shared window of their image (banked too if the case lacks it); a ``VideoMD5`` is kept with the case's video (the
feed does not say which video an MD5 belongs to: it is attached to the case's first video
without one, else kept as a video item of its own).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from .._util.http import HTTPStatusError
from ..errors import FeedError
from ..hashes import PDQ_HASH_BYTES
from . import cases
from .db import Database, Write
from .feed import (SIGNAL_PDQ, SIGNAL_PDQ_WINDOW, SIGNAL_VIDEO_MD5, SIGNAL_VIDEO_PDQ, STOCK_SIGNAL_TYPES, HashRecord,
                   normalize_hash_value, parse_video_pdq_value, parse_window_value)
from .partner import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, FeedKeys, PartnerClient, check_signal_types
from .records import CASE_ID_PATTERN

CHECKPOINT_PREFIX = "feed:"
IMAGE_QUALITY = 100  #: the feed carries no PDQ quality for images
START_POSITION = 10  #: "from the beginning", as the stock client starts (any position <= FEED_EPOCH)
MAX_REASONS = 20  #: skip reasons kept in a report (the count is exact)


@dataclass(frozen=True)
class SyncReport:
    """What one :meth:`HashBank.sync` did."""

    base_url: str
    pages: int
    records: int  #: records received (skipped ones included)
    cases_added: int  #: new bank cases
    hashes_added: int  #: rows added (image hashes and video frames), to new and existing cases
    cases_withdrawn: int  #: bank cases withdrawn (or recorded as withdrawn) by the feed
    skipped: int  #: records left out
    skip_reasons: tuple[str, ...]  #: the first few reasons, each naming the record
    checkpoint: int  #: the stored position (``nextSetTimestamp``) the next sync resumes from
    complete: bool  #: the feed had no more records (False when ``max_pages`` stopped it)


@dataclass
class Checkpoint:
    position: int = START_POSITION
    token: Optional[str] = None

    @classmethod
    def load(cls, db: Database, key: str) -> "Checkpoint":
        text = db.meta(key)
        if not text:
            return cls()
        obj = json.loads(text)
        return cls(int(obj.get("position", START_POSITION)), obj.get("token") or None)

    def store(self, db: Database, key: str) -> None:
        db.set_meta(key, json.dumps({"position": self.position, "token": self.token}))


@dataclass
class _Tally:
    pages: int = 0
    records: int = 0
    cases_added: int = 0
    hashes_added: int = 0
    cases_withdrawn: int = 0
    skipped: int = 0
    reasons: list = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)


def checkpoint_key(base_url: str) -> str:
    return CHECKPOINT_PREFIX + base_url.rstrip("/")


class FeedSync:
    """One sync run of a bank's parts (lock, database, index sync, feature store) from a feed."""

    def __init__(self, lock: Any, db: Database, hashes: Any, features: Any, client: PartnerClient, *,
                 signal_types: Sequence[str] = STOCK_SIGNAL_TYPES, page_size: int = DEFAULT_PAGE_SIZE,
                 windows: Any):
        if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}; got {page_size!r}")
        self.lock, self.db, self.hashes, self.features, self.client = lock, db, hashes, features, client
        self.windows = windows
        self.signal_types = check_signal_types(signal_types)
        self.page_size = page_size
        self.key = checkpoint_key(client.base_url)

    def checkpoint(self) -> Checkpoint:
        with self.lock:
            return Checkpoint.load(self.db, self.key)

    def run(self, *, max_pages: Optional[int] = None, restart: bool = False) -> SyncReport:
        """Fetch and apply pages until the feed has no more (or ``max_pages``); ``restart``
        ignores the stored checkpoint and reads the whole feed again (withdrawn cases stay
        withdrawn)."""
        tally = _Tally()
        cp = Checkpoint() if restart else self.checkpoint()
        complete = False
        while max_pages is None or tally.pages < max_pages:
            try:
                page, errors = self.client.fetch_page(cp.position, page_size=self.page_size, token=cp.token,
                                                      signal_types=self.signal_types)
            except HTTPStatusError as exc:
                if cp.token and exc.status in (400, 410):  # the token expired or the hub's secret changed
                    cp = Checkpoint(cp.position, None)
                    continue
                raise FeedError(feed_error_message(self.client.base_url, exc)) from None
            if page.has_more and page.next_page_token == cp.token:
                raise FeedError(f"{self.client.base_url}: the feed answered the same page token twice; stopping")
            for reason in errors:
                tally.skip(reason)
            tally.records += len(page.records) + len(errors)
            cp = Checkpoint(page.next_position, page.next_page_token if page.has_more else None)
            self.apply(page.records, cp, tally)
            tally.pages += 1
            if not page.has_more:
                complete = True
                break
        return SyncReport(self.client.base_url, tally.pages, tally.records, tally.cases_added, tally.hashes_added,
                          tally.cases_withdrawn, tally.skipped, tuple(tally.reasons), cp.position, complete)

    def apply(self, records: Sequence[HashRecord], cp: Checkpoint, tally: _Tally) -> None:
        """One page and the checkpoint after it, in one transaction; then the index."""
        gone, adds = self.plan(records, tally)
        with self.lock:
            self.hashes.catch_up()
            with self.db.write() as w:
                now = time.time()
                removed, fids = self.withdraw(gone, w, now, tally)
                codes, ids, window_rows = self.add(adds, w, now, tally)
                added_windows = self.windows.insert(window_rows)
                cp.store(self.db, self.key)
            self.features.applied(w, removed=fids)
            self.hashes.applied(w, codes=codes, ids=ids, removed=removed)
            self.windows.applied(w, added=added_windows, removed=removed)
            if gone:  # no copy of withdrawn hashes may stay on disk
                self.db.checkpoint()
                self.hashes.snapshots.drop_all()
                self.windows.drop_snapshots()
                self.features.snapshots.drop_all()

    def plan(self, records: Sequence[HashRecord], tally: _Tally) -> tuple[set, dict]:
        """(case ids to withdraw, {case id: its records to add}) of a page."""
        gone: set = set()
        adds: dict = {}
        for n, r in enumerate(records):
            where = f"record {n} ({r.signal_type})"
            if r.signal_type not in self.signal_types:
                tally.skip(f"{where}: signal type not requested")
                continue
            bad = [c for c in r.case_numbers if not CASE_ID_PATTERN.match(c)]
            if bad:
                tally.skip(f"{where}: case number {bad[0][:40]!r} is not a valid case id")
                continue
            listed = dict(r.case_numbers) or {feed_case_id(r): r.status}
            if r.signal_type in (SIGNAL_VIDEO_PDQ, SIGNAL_PDQ_WINDOW):
                try:
                    normalize_hash_value(r.signal_type, r.hash_value)
                except FeedError as exc:
                    tally.skip(f"{where}: {exc}")
                    continue
            if not r.active:
                gone.update(listed)
                continue
            gone.update(c for c, s in listed.items() if s in ("Withdrawn", "Deleted"))
            for c, s in listed.items():
                if s not in ("Withdrawn", "Deleted"):
                    adds.setdefault(c, []).append(r)
        return gone, {c: rs for c, rs in adds.items() if c not in gone}

    def withdraw(self, gone: set, w: Write, now: float, tally: _Tally) -> tuple[list, list]:
        removed: list = []
        fids: list = []
        for cid in sorted(gone):
            try:
                status = cases.case_status(self.db, cid)
            except KeyError:
                cases.insert_withdrawn_case(self.db, cid, now, w.next_seq())
                tally.cases_withdrawn += 1
                continue
            if status == "withdrawn":
                continue
            removed += cases.withdraw_case(self.db, cid, now, w.next_seq())
            fids += self.features.delete_case(cid)
            tally.cases_withdrawn += 1
        return removed, fids

    def add(self, adds: dict, w: Write, now: float, tally: _Tally) -> tuple[Optional[np.ndarray], list, list]:
        """Add a page's records to their cases: (codes, ids) of the new hash rows, and the new
        window rows ``(image's hash id, name, hash, quality, seq)``."""
        all_codes: list = []
        all_ids: list = []
        window_rows: list = []
        for cid in sorted(adds):
            try:
                if cases.case_status(self.db, cid) == "withdrawn":
                    continue  # withdrawn here or by an earlier page: never re-added
                new_case = False
            except KeyError:
                new_case = True
            rows = CaseRows(self.db, cid, existing=not new_case)
            for r in adds[cid]:
                rows.take(r)
            if not new_case and rows.empty():
                continue
            if new_case:
                self.db.execute("INSERT INTO cases (case_id, created_at, status) VALUES (?, ?, 'active')", (cid, now))
                tally.cases_added += 1
            codes, q, kinds, items = rows.arrays()
            seq = w.next_seq()
            ids = cases.add_hashes(self.db, cid, codes, q, kinds, now, seq, items, rows.new_videos)
            for item, md5 in rows.md5_updates:
                self.db.execute("UPDATE videos SET md5=? WHERE case_id=? AND item=?", (md5, cid, item))
            window_rows += rows.window_rows(self.db, cid, seq)
            all_codes.append(codes)
            all_ids += ids
            tally.hashes_added += len(ids)
        return (np.concatenate(all_codes) if all_codes else None), all_ids, window_rows


class CaseRows:
    """The rows a page adds to one case, de-duplicated against what the case holds."""

    def __init__(self, db: Database, case_id: str, *, existing: bool):
        self.codes: list[bytes] = []
        self.qualities: list[int] = []
        self.kinds: list[str] = []
        self.items: list[int] = []
        self.new_videos: list[tuple[int, str]] = []  #: (item, md5) rows to insert
        self.md5_updates: list[tuple[int, str]] = []  #: (item, md5) of existing video rows
        self.images: set = set()
        self.video_frames: dict[int, frozenset] = {}  #: item -> its frame hashes
        self.md5s: dict[int, str] = {}  #: item -> md5 ("" = not known yet)
        if existing:
            for (h,) in db.execute("SELECT hash FROM hashes WHERE case_id=? AND kind='image'", (case_id,)):
                self.images.add(bytes(h))
            frames: dict[int, set] = {}
            for h, item in db.execute("SELECT hash, item FROM hashes WHERE case_id=? AND kind='video_frame'",
                                      (case_id,)):
                frames.setdefault(int(item), set()).add(bytes(h))
            self.video_frames = {i: frozenset(f) for i, f in frames.items()}
            self.md5s = {int(i): str(m) for i, m in db.execute("SELECT item, md5 FROM videos WHERE case_id=?",
                                                               (case_id,))}
        self.next_item = max([0, *self.md5s, *self.video_frames]) + 1
        self.added = 0
        #: (image hash, window name) -> window hash, of windows this case does not hold yet
        self.windows: dict[tuple[bytes, str], bytes] = {}
        self._db, self._case_id, self._existing = db, case_id, existing
        self._held_windows: Optional[set] = None  # read on the first window record only

    def empty(self) -> bool:
        return not self.codes and not self.new_videos and not self.md5_updates and not self.windows

    def take(self, r: HashRecord) -> None:
        if r.signal_type == SIGNAL_PDQ:
            self._image(bytes.fromhex(r.hash_value))
        elif r.signal_type == SIGNAL_PDQ_WINDOW:
            # the record carries its image's hash: a partner that asked for windows only still
            # banks the image, and the window is keyed by the image's row
            name, image, window = parse_window_value(r.hash_value)
            self._image(image)
            if (image, name) not in self.held_windows():
                self.windows[(image, name)] = window
        elif r.signal_type == SIGNAL_VIDEO_PDQ:
            self._video(*parse_video_pdq_value(r.hash_value))
        elif r.signal_type == SIGNAL_VIDEO_MD5:
            self._md5(r.hash_value)

    def held_windows(self) -> set:
        """(image hash, window name) of the windows the case already holds."""
        if self._held_windows is None:
            self._held_windows = set() if not self._existing else {(bytes(h), str(n)) for h, n in self._db.execute(
                "SELECT h.hash, w.window_name FROM windows w JOIN hashes h ON h.hash_id = w.hash_id "
                "WHERE h.case_id=?", (self._case_id,))}
        return self._held_windows

    def _image(self, code: bytes) -> None:
        if code not in self.images:
            self.images.add(code)
            self._row(code, IMAGE_QUALITY, "image", 0)

    def window_rows(self, db: Database, case_id: str, seq: int) -> list[tuple[int, str, bytes, int, int]]:
        """After the case's rows were added: its new window rows, keyed by their images' ids."""
        if not self.windows:
            return []
        ids = {bytes(h): int(i) for i, h in db.execute("SELECT hash_id, hash FROM hashes WHERE case_id=? AND "
                                                          "kind='image'", (case_id,))}
        return [(ids[image], name, window, IMAGE_QUALITY, seq) for (image, name), window in self.windows.items()]

    def _row(self, code: bytes, quality: int, kind: str, item: int) -> None:
        self.codes.append(code)
        self.qualities.append(int(quality))
        self.kinds.append(kind)
        self.items.append(item)

    def _video(self, frames: np.ndarray, qualities: np.ndarray) -> None:
        _, first = np.unique(frames, axis=0, return_index=True)
        keep = np.sort(first)
        key = frozenset(bytes(f) for f in frames[keep])
        if key in self.video_frames.values():
            return
        # An MD5 that arrived before its frames: the first video item without frames takes them.
        item = next((i for i in sorted(self.md5s) if i not in self.video_frames), None)
        if item is None:
            item = self.next_item
            self.next_item += 1
            self.md5s[item] = ""
            self.new_videos.append((item, ""))
        self.video_frames[item] = key
        for f, q in zip(frames[keep], qualities[keep]):
            self._row(bytes(f), int(q), "video_frame", item)

    def _md5(self, md5: str) -> None:
        if md5 in self.md5s.values():
            return
        item = next((i for i in sorted(self.md5s) if not self.md5s[i]), None)
        if item is None:
            item = self.next_item
            self.next_item += 1
            self.new_videos.append((item, md5))
        elif (item, "") in self.new_videos:
            self.new_videos[self.new_videos.index((item, ""))] = (item, md5)
        else:
            self.md5_updates.append((item, md5))
        self.md5s[item] = md5

    def arrays(self) -> tuple[np.ndarray, np.ndarray, list[str], list[int]]:
        codes = np.frombuffer(b"".join(self.codes), np.uint8).reshape(-1, PDQ_HASH_BYTES).copy()
        return codes, np.asarray(self.qualities, np.int32), self.kinds, self.items


def feed_case_id(r: HashRecord) -> str:
    """The bank case of a record that names no case: one per hash value."""
    return "feed-" + hashlib.sha256(f"{r.signal_type}:{r.hash_value}".encode()).hexdigest()[:32]


def feed_error_message(base_url: str, exc: HTTPStatusError) -> str:
    if exc.status == 401:
        return f"{base_url}: the feed refused the keys (401: {exc.detail}); check the key file"
    if exc.status == 410:
        return (f"{base_url}: {exc.detail} (410). The stored checkpoint is too old for this feed: "
                "sync again from the beginning (HashBank.sync(..., restart=True), 'ncii-hash bank sync --restart')")
    return f"{base_url}: the feed answered {exc.status}: {exc.detail}"


def partner_client(base_url: Optional[str], keys: Any, **options: Any) -> PartnerClient:
    k = FeedKeys.of(keys)
    url = base_url or k.base_url
    if not url:
        raise ValueError("no feed URL: give base_url (or --from) or put it in the key line's third field")
    return PartnerClient(url, k, **options)


def send_feedback(base_url: Optional[str], keys: Any, feedbacks: Any, *, feedback_key: Optional[str] = None,
                  timeout: float = 60.0) -> int:
    """Post ``SubmitFeedback`` (``(hash value, feedback value, tags)`` triples, e.g.
    ``("ab12...", "Blocked", ["reviewed"])``) to a feed; how many the server accepted.
    ``feedback_key``: the endpoint's own function key where the feed has one (StopNCII)."""
    client = partner_client(base_url, keys, timeout=timeout)
    if feedback_key:
        client.keys = FeedKeys(client.keys.fetch_key, client.keys.subscription_key, client.keys.base_url, feedback_key)
    return client.submit_feedback(feedbacks)
