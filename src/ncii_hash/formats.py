"""The survivor submission file: what leaves the survivor's device, and nothing more.

Schema (JSON, UTF-8), version 1::

    {
      "format": "ncii-hash-submission",
      "version": 1,
      "algorithm": "pdq",
      "items": [
        {"kind": "image", "pdq": "<64 hex>", "quality": 0..100},
        ...
      ],
      "counts": {"items": N, "image": N_images, "low_quality": N_low}
    }

A submission holds hashes, their qualities, the media kind and counts -- never file names,
paths, sizes, EXIF, file times or thumbnails -- and its items are shuffled so that their
order says nothing about folder order. Readers reject unknown versions and fields.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .hashes import PDQ_MIN_QUALITY, as_hash_array, from_hex

SUBMISSION_FORMAT = "ncii-hash-submission"
SUBMISSION_VERSION = 1
MEDIA_KINDS = ("image",)
_ITEM_KEYS = {"kind", "pdq", "quality"}
_TOP_KEYS = {"format", "version", "algorithm", "items", "counts"}


class SubmissionError(ValueError):
    """A submission file is malformed; the message says where and how."""


@dataclass(frozen=True)
class Submission:
    hashes: np.ndarray  #: uint8 (N, 32)
    qualities: np.ndarray  #: int32 (N,)
    kinds: tuple  #: media kind per item

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    def to_dict(self, *, shuffle: bool = True) -> dict:
        order = list(range(len(self)))
        if shuffle:
            rng = secrets.SystemRandom()
            rng.shuffle(order)
        items = [
            {"kind": self.kinds[i], "pdq": self.hashes[i].tobytes().hex(), "quality": int(self.qualities[i])}
            for i in order
        ]
        counts: dict = {"items": len(items)}
        for kind in MEDIA_KINDS:
            counts[kind] = sum(1 for k in self.kinds if k == kind)
        counts["low_quality"] = int((self.qualities < PDQ_MIN_QUALITY).sum())
        return {
            "format": SUBMISSION_FORMAT,
            "version": SUBMISSION_VERSION,
            "algorithm": "pdq",
            "items": items,
            "counts": counts,
        }


def make_submission(hashes: Any, qualities: Iterable[int], kinds: Iterable[str] | None = None) -> Submission:
    h = as_hash_array(hashes)
    q = np.asarray(list(qualities), dtype=np.int32)
    if q.shape != (h.shape[0],):
        raise ValueError(f"need one quality per hash: {h.shape[0]} hashes, {q.shape[0]} qualities")
    if q.size and (q.min() < 0 or q.max() > 100):
        raise ValueError("qualities must be in 0..100")
    k = tuple(kinds) if kinds is not None else ("image",) * h.shape[0]
    if len(k) != h.shape[0] or any(x not in MEDIA_KINDS for x in k):
        raise ValueError(f"kinds must be one of {MEDIA_KINDS} per hash")
    return Submission(hashes=h, qualities=q, kinds=k)


def parse_submission(obj: Any) -> Submission:
    """Validate a decoded submission (dict) and return it."""
    if not isinstance(obj, dict):
        raise SubmissionError("a submission must be a JSON object")
    if obj.get("format") != SUBMISSION_FORMAT:
        raise SubmissionError(f"not an ncii-hash submission (format is {obj.get('format')!r})")
    if type(obj.get("version")) is not int or obj.get("version") != SUBMISSION_VERSION:  # not true, not 1.0
        raise SubmissionError(f"unsupported submission version {obj.get('version')!r} (this reader knows {SUBMISSION_VERSION})")
    extra = set(obj) - _TOP_KEYS
    if extra:
        raise SubmissionError(f"unexpected fields {sorted(extra)}: a submission carries hashes and counts only")
    if obj.get("algorithm") != "pdq":
        raise SubmissionError(f"unsupported algorithm {obj.get('algorithm')!r}")
    items = obj.get("items")
    if not isinstance(items, list):
        raise SubmissionError("'items' must be a list")
    hexes, quals, kinds = [], [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SubmissionError(f"item {i} must be an object")
        extra = set(item) - _ITEM_KEYS
        if extra:
            raise SubmissionError(f"item {i} has unexpected fields {sorted(extra)}")
        if item.get("kind") not in MEDIA_KINDS:
            raise SubmissionError(f"item {i}: kind must be one of {MEDIA_KINDS}")
        q = item.get("quality")
        if not isinstance(q, int) or isinstance(q, bool) or not 0 <= q <= 100:
            raise SubmissionError(f"item {i}: quality must be an integer 0..100")
        if not isinstance(item.get("pdq"), str):
            raise SubmissionError(f"item {i}: 'pdq' must be a 64-character hex string")
        hexes.append(item["pdq"])
        quals.append(q)
        kinds.append(item["kind"])
    try:
        hashes = from_hex(hexes) if hexes else np.zeros((0, 32), np.uint8)
    except ValueError as exc:
        raise SubmissionError(f"bad hash: {exc}") from None
    counts = obj.get("counts")
    if not isinstance(counts, dict) or type(counts.get("items")) is not int or counts["items"] != len(items):
        raise SubmissionError("'counts.items' does not match the number of items")
    return Submission(hashes=hashes, qualities=np.asarray(quals, np.int32), kinds=tuple(kinds))


def read_submission(path: str | os.PathLike) -> Submission:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SubmissionError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{p}: cannot read ({exc})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SubmissionError(f"{p}: not valid JSON ({exc})") from None
    except (ValueError, RecursionError) as exc:
        # ValueError: an integer with thousands of digits; RecursionError: arrays or objects
        # nested thousands deep. Neither is a submission, and neither may escape as a crash.
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise SubmissionError(f"{p}: not a valid submission ({reason})") from None
    try:
        return parse_submission(obj)
    except SubmissionError as exc:
        raise SubmissionError(f"{p}: {exc}") from None


def write_submission(path: str | os.PathLike, submission: Submission) -> None:
    """Write atomically (temp file in the same folder, fsync, rename), owner-only."""
    p = Path(path)
    data = json.dumps(submission.to_dict(), indent=2) + "\n"
    folder = p.parent if str(p.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=".submission-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # owns fd from here: closed on any error
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every platform opens folders)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover - file systems that refuse fsync on folders
        pass
    finally:
        os.close(dir_fd)
