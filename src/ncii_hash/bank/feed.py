"""The StopNCII partner feed model: hash records, pages and feed positions, in the field names,
types and values that python-threatexchange's ``StopNCIIAPI`` client sends and parses. The one
model of the feed, used by the hub (serving it), ``HashBank.sync`` (pulling it) and the pytx
exchange. Protocol: docs/hub.md.

Invariants: positions on the wire are ``FEED_EPOCH + seq`` (``seq`` = the hub's change
sequence, ordered by commit, never the wall clock), and every ``startTimestamp <= FEED_EPOCH``
means "from the beginning" (the stock client starts at 10). Hash values are normalised to
lowercase. Parsing is strict: a malformed record raises :class:`~ncii_hash.errors.FeedError`
naming the field; the caller decides whether to skip the record or refuse the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..errors import FeedError
from ..hashes import PDQ_HASH_BYTES
from ..submission import SHARED_WINDOWS

#: Positions on the wire are FEED_EPOCH + the hub's change sequence.
FEED_EPOCH = 10**12

SIGNAL_PDQ = "ImagePDQ"
SIGNAL_VIDEO_MD5 = "VideoMD5"
#: Our extension: the vPDQ frame hashes of one video in one record (only sent on request).
SIGNAL_VIDEO_PDQ = "NciiVideoPDQ"
#: Our extension: a survivor's shared window hash of one image (submission version 3) with the
#: image's own hash, ``<window>:<image's 64 hex>:<window's 64 hex>`` (only sent on request).
SIGNAL_PDQ_WINDOW = "NciiImagePDQWindow"
#: What the stock client knows and the hub sends by default.
STOCK_SIGNAL_TYPES = (SIGNAL_PDQ, SIGNAL_VIDEO_MD5)
SIGNAL_TYPES = (SIGNAL_PDQ, SIGNAL_VIDEO_MD5, SIGNAL_VIDEO_PDQ, SIGNAL_PDQ_WINDOW)

ACTIVE = "Active"
WITHDRAWN = "Withdrawn"
#: Case statuses StopNCII uses; ``Withdrawn`` and ``Deleted`` mean "delete it".
CASE_STATUSES = ("Unknown", "Received", ACTIVE, WITHDRAWN, "Deleted")
GONE_STATUSES = frozenset({WITHDRAWN, "Deleted"})
FEEDBACK_VALUES = ("Unknown", "None", "QualityUnknown", "PendingReview", "Blocked", "NotBlocked", WITHDRAWN,
                   "Deleted")

_HEX = re.compile(r"^[0-9a-f]+$")
_ENUM_PREFIX = "StopNCIISignalType."


def position_of(seq: int) -> int:
    """The wire position (``nextSetTimestamp``) of change sequence ``seq``."""
    return FEED_EPOCH + int(seq)


def seq_of(position: int) -> int:
    """The change sequence a ``startTimestamp`` resumes after (0 = from the beginning)."""
    return max(0, int(position) - FEED_EPOCH)


def parse_signal_type(text: object, where: str = "signalType") -> str:
    """``ImagePDQ``, ``VideoMD5`` or ``NciiVideoPDQ``; the stock client's ``SubmitHashes`` sends
    ``str(enum)``, e.g. ``StopNCIISignalType.ImagePDQ``, which is accepted too."""
    if not isinstance(text, str):
        raise FeedError(f"{where}: expected a string, got {type(text).__name__}")
    name = text[len(_ENUM_PREFIX):] if text.startswith(_ENUM_PREFIX) else text
    if name not in SIGNAL_TYPES:
        raise FeedError(f"{where}: unknown signal type {text!r} (known: {', '.join(SIGNAL_TYPES)})")
    return name


def normalize_hash_value(signal_type: str, value: object, where: str = "hashValue") -> str:
    """The hash value in canonical form, checked for its signal type."""
    if not isinstance(value, str):
        raise FeedError(f"{where}: expected a string, got {type(value).__name__}")
    v = value.strip().lower()
    if signal_type == SIGNAL_PDQ:
        if len(v) != 2 * PDQ_HASH_BYTES or not _HEX.match(v):
            raise FeedError(f"{where}: an ImagePDQ hash is 64 hex characters; got {len(v)} characters")
    elif signal_type == SIGNAL_VIDEO_MD5:
        if len(v) != 32 or not _HEX.match(v):
            raise FeedError(f"{where}: a VideoMD5 hash is 32 hex characters; got {len(v)} characters")
    elif signal_type == SIGNAL_VIDEO_PDQ:
        parse_video_pdq_value(v, where)
    elif signal_type == SIGNAL_PDQ_WINDOW:
        parse_window_value(v, where)
    else:
        raise FeedError(f"{where}: unknown signal type {signal_type!r}")
    return v


def video_pdq_value(frames: np.ndarray, qualities: Sequence[int]) -> str:
    """One record's ``hashValue`` for a video's frame hashes: ``quality:hex`` joined by ``;``,
    sorted (so the same set of frames always gives the same value)."""
    items = sorted(f"{int(q)}:{bytes(f).hex()}" for f, q in zip(np.asarray(frames, np.uint8), qualities))
    return ";".join(items)


def parse_video_pdq_value(value: str, where: str = "hashValue") -> tuple[np.ndarray, np.ndarray]:
    """``(frames (F, 32) uint8, qualities (F,) int32)`` of a :func:`video_pdq_value`."""
    frames, quals = [], []
    for n, item in enumerate(value.split(";") if value else []):
        q, sep, h = item.partition(":")
        if not sep or not q.isdigit() or int(q) > 100 or len(h) != 64 or not _HEX.match(h):
            raise FeedError(f"{where}: video frame {n} is not 'quality:64 hex' ({item[:80]!r})")
        frames.append(bytes.fromhex(h))
        quals.append(int(q))
    if not frames:
        raise FeedError(f"{where}: a NciiVideoPDQ value holds at least one frame")
    codes = np.frombuffer(b"".join(frames), np.uint8).reshape(-1, PDQ_HASH_BYTES).copy()
    return codes, np.asarray(quals, np.int32)


def window_value(name: str, image: bytes, window: bytes) -> str:
    """One record's ``hashValue`` for a shared window: ``<name>:<image hex>:<window hex>``."""
    return f"{name}:{bytes(image).hex()}:{bytes(window).hex()}"


def parse_window_value(value: str, where: str = "hashValue") -> tuple[str, bytes, bytes]:
    """``(window name, image hash, window hash)`` of a :func:`window_value`."""
    parts = value.split(":")
    if len(parts) != 3 or any(len(h) != 2 * PDQ_HASH_BYTES or not _HEX.match(h) for h in parts[1:]):
        raise FeedError(f"{where}: a NciiImagePDQWindow value is '<window>:<64 hex>:<64 hex>' ({value[:80]!r})")
    if parts[0] not in SHARED_WINDOWS:
        raise FeedError(f"{where}: unknown window {parts[0]!r} (known: {', '.join(SHARED_WINDOWS)})")
    return parts[0], bytes.fromhex(parts[1]), bytes.fromhex(parts[2])


@dataclass(frozen=True)
class Feedback:
    """One partner's latest opinion of a hash (StopNCII's ``CSPFeedbacks`` entry)."""

    value: str
    tags: tuple[str, ...] = ()
    source: str = ""

    def to_json(self) -> dict:
        return {"feedbackValue": self.value, "tags": sorted(self.tags), "source": self.source}

    @classmethod
    def from_json(cls, obj: object, where: str = "feedback") -> "Feedback":
        if not isinstance(obj, Mapping):
            raise FeedError(f"{where}: expected an object")
        value = obj.get("feedbackValue")
        if value not in FEEDBACK_VALUES:
            raise FeedError(f"{where}.feedbackValue: {value!r} is not one of {', '.join(FEEDBACK_VALUES)}")
        tags = obj.get("tags", [])
        if not isinstance(tags, (list, tuple, set)) or not all(isinstance(t, str) for t in tags):
            raise FeedError(f"{where}.tags: expected a list of strings")
        source = obj.get("source", "")
        if not isinstance(source, str):
            raise FeedError(f"{where}.source: expected a string")
        return cls(value=str(value), tags=tuple(sorted(set(tags))), source=source)


@dataclass(frozen=True)
class HashRecord:
    """The current state of one (signal type, hash value): a later record replaces an earlier one."""

    signal_type: str
    hash_value: str
    status: str  #: ``Active`` when any of its cases is active, else ``Withdrawn``
    case_numbers: Mapping[str, str] = field(default_factory=dict)  #: case number -> its status
    last_modified: int = 0  #: Unix seconds of the hash's last change (informational)
    feedbacks: tuple[Feedback, ...] = ()

    @property
    def active(self) -> bool:
        return self.status not in GONE_STATUSES

    def active_cases(self) -> list[str]:
        return sorted(c for c, s in self.case_numbers.items() if s not in GONE_STATUSES)

    def withdrawn_cases(self) -> list[str]:
        return sorted(c for c, s in self.case_numbers.items() if s in GONE_STATUSES)

    def to_json(self) -> dict:
        return {
            "lastModtimestamp": int(self.last_modified),
            "signalType": self.signal_type,
            "hashValue": self.hash_value,
            "hashStatus": self.status,
            "caseNumbers": dict(sorted(self.case_numbers.items())),
            "CSPFeedbacks": [f.to_json() for f in self.feedbacks],
        }

    @classmethod
    def from_json(cls, obj: object, where: str = "hashRecord") -> "HashRecord":
        if not isinstance(obj, Mapping):
            raise FeedError(f"{where}: expected an object")
        signal_type = parse_signal_type(obj.get("signalType"), f"{where}.signalType")
        value = normalize_hash_value(signal_type, obj.get("hashValue"), f"{where}.hashValue")
        status = obj.get("hashStatus")
        if status not in CASE_STATUSES:
            raise FeedError(f"{where}.hashStatus: {status!r} is not one of {', '.join(CASE_STATUSES)}")
        cases = obj.get("caseNumbers", {})
        if cases == []:  # some servers send an empty mapping as a list
            cases = {}
        if not isinstance(cases, Mapping) or not all(isinstance(k, str) and v in CASE_STATUSES
                                                      for k, v in cases.items()):
            raise FeedError(f"{where}.caseNumbers: expected an object of case number -> status")
        modified = obj.get("lastModtimestamp", 0)
        if isinstance(modified, bool) or not isinstance(modified, int):
            raise FeedError(f"{where}.lastModtimestamp: expected an integer")
        raw_feedbacks = obj.get("CSPFeedbacks", []) or []
        if not isinstance(raw_feedbacks, list):
            raise FeedError(f"{where}.CSPFeedbacks: expected a list")
        feedbacks = tuple(Feedback.from_json(f, f"{where}.CSPFeedbacks[{i}]") for i, f in enumerate(raw_feedbacks))
        return cls(signal_type, value, str(status), dict(cases), modified, feedbacks)


@dataclass(frozen=True)
class FeedPage:
    """One ``FetchHashes`` answer."""

    records: tuple[HashRecord, ...]
    next_page_token: Optional[str]  #: continues the same delta while ``has_more``
    next_position: int  #: ``nextSetTimestamp``: the checkpoint to store (the delta's end on its last page)
    has_more: bool

    def to_json(self) -> dict:
        return {
            "count": len(self.records),
            "nextPageToken": self.next_page_token,
            "nextSetTimestamp": int(self.next_position),
            "hasMoreRecords": bool(self.has_more),
            "hashRecords": [r.to_json() for r in self.records],
        }

    @classmethod
    def from_json(cls, obj: Any, *, skip_bad_records: bool = False) -> tuple["FeedPage", list[str]]:
        """The page and, with ``skip_bad_records``, the errors of the records left out
        (otherwise the first bad record raises)."""
        if not isinstance(obj, Mapping):
            raise FeedError("FetchHashes: expected a JSON object")
        token = obj.get("nextPageToken")
        if token is not None and not isinstance(token, str):
            raise FeedError("FetchHashes.nextPageToken: expected a string or null")
        position = obj.get("nextSetTimestamp")
        if isinstance(position, bool) or not isinstance(position, int):
            raise FeedError("FetchHashes.nextSetTimestamp: expected an integer")
        has_more = obj.get("hasMoreRecords")
        if not isinstance(has_more, bool):
            raise FeedError("FetchHashes.hasMoreRecords: expected true or false")
        raw = obj.get("hashRecords", [])
        if not isinstance(raw, list):
            raise FeedError("FetchHashes.hashRecords: expected a list")
        records, errors = [], []
        for i, r in enumerate(raw):
            try:
                records.append(HashRecord.from_json(r, f"hashRecords[{i}]"))
            except FeedError as exc:
                if not skip_bad_records:
                    raise
                errors.append(str(exc))
        if has_more and not token:
            raise FeedError("FetchHashes: hasMoreRecords is true but there is no nextPageToken")
        return cls(tuple(records), token, position, has_more), errors
