"""HashBank's records (small frozen dataclasses a person reads), the rules for case ids and
media kinds, and the helpers that turn stored blobs and callers' videos into hash arrays.
The records are re-exported by :mod:`ncii_hash.bank`."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from ..errors import BankError
from ..hashes import PDQ_HASH_BYTES, as_hash_array

MEDIA_KINDS = ("image", "video_frame")
CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
EXPORT_HEADER = ["pdq", "quality", "case_id", "kind", "item"]

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class BankMatch:
    """One banked hash within the radius of a query."""

    query: int  #: index of the query in the batch
    case_id: str
    hash_id: int
    distance: int
    variant: int  #: dihedral variant of the query that matched (0 = original)


@dataclass(frozen=True)
class CaseInfo:
    case_id: str
    status: str  #: "active" or "withdrawn"
    created_at: float  #: Unix time
    withdrawn_at: Optional[float]
    hashes: int  #: hashes currently banked for the case (0 once withdrawn)


@dataclass(frozen=True)
class BankStats:
    cases: int
    active_cases: int
    withdrawn_cases: int
    hashes: int
    change_seq: int
    file_bytes: int
    index_entries: int
    index_source: str  #: "snapshot", "rebuilt" or "empty"
    feature_sets: int = 0  #: banked local feature sets (issue 8)
    window_hashes: int = 0  #: banked shared window hashes (submission version 3)


@dataclass(frozen=True)
class ChangeSet:
    """Delta since a token: cases added (with their hashes) and case ids withdrawn."""

    added: list  #: list of dicts {"case_id", "hashes" (N,32) uint8, "qualities", "kinds"}
    withdrawn: list  #: list of case ids
    next_token: str


@dataclass(frozen=True)
class ImageBankMatch:
    """A case an image matches, and by which stage: ``"pdq"`` (its hash, any of the 8
    orientations, or the content inside a uniform border, within the radius) or
    ``"local features"`` (geometrically verified; only tried when PDQ found nothing)."""

    case_id: str
    via: str
    distance: Optional[int] = None  #: PDQ bits (via "pdq")
    inliers: Optional[int] = None  #: verified correspondences (via "local features")


@dataclass(frozen=True)
class FeatureBankMatch:
    """A banked image whose local features verify against a query image."""

    query: int  #: index of the query in the batch
    case_id: str
    feature_id: int  #: the banked feature set's row
    inliers: int  #: geometrically consistent correspondences
    spread: float  #: share of the banked picture the correspondences cover
    scale: float  #: query -> banked image scale of the fitted similarity
    rotation_degrees: float


@dataclass(frozen=True)
class VideoBankMatch:
    """A banked video that matches a query video under the vPDQ rule."""

    case_id: str
    item: int  #: which video of the case
    query_pct: float  #: share of the query's unique good frames found in the banked video
    compared_pct: float  #: share of the banked video's unique good frames found in the query
    md5_equal: bool  #: the very same file (MD5 of the bytes)


def new_case_id() -> str:
    """A fresh case id: 128 random bits, so a case id alone reveals nothing and cannot be
    enumerated."""
    return "case-" + secrets.token_hex(16)


def bank_queries(queries: Any, dihedral: bool) -> np.ndarray:
    """``HashBank.match``'s queries as a C-contiguous ``(Q, 32)`` array, or ``(Q, 8, 32)``
    dihedral sets when ``dihedral`` (else only each set's first, the image as it is)."""
    q = np.asarray(queries)
    if q.dtype != np.uint8:
        raise TypeError(f"queries must be uint8 hashes; got dtype {q.dtype}")
    if q.ndim == 1:
        q = q.reshape(1, -1)
    if q.ndim == 3:
        if q.shape[1:] != (8, PDQ_HASH_BYTES):
            raise ValueError(f"dihedral queries must have shape (Q, 8, 32); got {q.shape}")
        if not dihedral:
            q = q[:, 0, :]
    elif q.ndim != 2 or q.shape[1] != PDQ_HASH_BYTES:
        raise ValueError(f"queries must have shape (Q, 32) or (Q, 8, 32); got {q.shape}")
    return np.ascontiguousarray(q)


def codes_from_blobs(blobs: Any) -> np.ndarray:
    """(N, 32) uint8 array from an iterable of 32-byte hash blobs (a copy)."""
    return np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(-1, PDQ_HASH_BYTES).copy()


def video_parts(video: Any) -> tuple:
    """(frames (F,32) uint8, qualities (F,) int32, md5 str) of a VideoHash, a submission's
    SubmittedVideo or a (frames, qualities[, md5]) tuple."""
    if hasattr(video, "frames") and hasattr(video, "qualities"):
        frames, qualities, md5 = video.frames, video.qualities, getattr(video, "md5", "") or ""
    elif isinstance(video, (tuple, list)) and len(video) in (2, 3):
        frames, qualities = video[0], video[1]
        md5 = video[2] if len(video) == 3 else ""
    else:
        raise TypeError("a video must be a VideoHash, a SubmittedVideo or a (frames, qualities, md5) tuple")
    h = as_hash_array(frames, name="video frames")
    q = np.asarray(qualities, dtype=np.int32)
    if q.shape != (h.shape[0],):
        raise BankError(f"a video needs one quality per frame: {h.shape[0]} frames, {q.shape} qualities")
    if h.shape[0] == 0:
        raise BankError("a video needs at least one frame hash")
    _, first = np.unique(h, axis=0, return_index=True)  # identical frames count once
    first = np.sort(first)
    return h[first], q[first], str(md5)
