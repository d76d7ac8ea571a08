"""The survivor submission file: what leaves the survivor's device, and nothing more.

Schema (JSON, UTF-8), version 1::

    {
      "format": "ncii-hash-submission",
      "version": 1,
      "algorithm": "pdq",
      "items": [
        {"kind": "image", "pdq": "<64 hex>", "quality": 0..100},
        {"kind": "video", "md5": "<32 hex>",
         "frames": [{"pdq": "<64 hex>", "quality": 0..100}, ...]},
        ...
      ],
      "counts": {"items": N, "image": N_images, "video": N_videos,
                 "video_frames": N_frames, "low_quality": N_low_quality_images}
    }

Version 2 is version 1 plus, only when the survivor chose to share them, local feature sets
(:mod:`ncii_hash.features`) of the images::

      "local_features": {"notice": "<plain statement of what this is>",
                         "sets": ["<base64 of FeatureSet.to_bytes()>", ...]},
      "counts": {..., "feature_sets": N}

Feature sets are not hashes: they can be turned back into a recognisable approximation of
each picture. A submission without them is written as version 1, exactly as before.

Version 3 is version 2 plus, only when the survivor chose to share them, *window hashes*: the
PDQ hash of a fixed re-framing of an image (``centre70``: the centre keeping 70% of each side,
:data:`SHARED_WINDOWS`), carried inside the image's item::

        {"kind": "image", "pdq": "<64 hex>", "quality": 0..100,
         "windows": {"centre70": {"pdq": "<64 hex>", "quality": 50..100}}}
      "counts": {..., "window_hashes": N}

A window hash is one more PDQ hash of the same picture (no more revealing than the whole
picture's: docs/privacy-features.md); it lets platforms catch small rotations and caption
banners (docs/accuracy.md). Windows of quality below 50 are never written (a flat centre only
makes false matches). A submission without windows keeps version 1 or 2.

A submission holds hashes, their qualities, the media kind and counts -- never file names,
paths, sizes, EXIF, file times or thumbnails -- and its items are shuffled so that their
order says nothing about folder order. A video item carries the MD5 of the file (what
StopNCII exchanges for videos: it identifies that exact file, nothing about its content)
and the PDQ hashes of its sampled frames, de-duplicated and shuffled, without frame
numbers or timestamps, so neither its length nor its frame order leaves the device.
Readers reject unknown versions and fields.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import SubmissionError
from ._util.files import atomic_private_file
from .hashes import PDQ_MIN_QUALITY, as_hash_array, from_hex

SUBMISSION_FORMAT = "ncii-hash-submission"
SUBMISSION_VERSION = 1
SUBMISSION_VERSION_FEATURES = 2
SUBMISSION_VERSION_WINDOWS = 3
#: The window hashes a submission may carry, by name (geometry: ncii_hash.image.variants).
SHARED_WINDOWS = ("centre70",)
FEATURES_NOTICE = (
    "This submission contains local image features (keypoint positions and patch descriptors) of {n} "
    "image(s). Unlike PDQ hashes they can be turned back into a recognisable approximation of each "
    "picture; they were included because the person submitting chose to share them."
)
MEDIA_KINDS = ("image", "video")
_ITEM_KEYS = {"kind", "pdq", "quality"}
_VIDEO_KEYS = {"kind", "md5", "frames"}
_FRAME_KEYS = {"pdq", "quality"}
_MD5_DIGITS = frozenset("0123456789abcdef")
_TOP_KEYS = {"format", "version", "algorithm", "items", "counts"}
_TOP_KEYS_V2 = _TOP_KEYS | {"local_features"}
_IMAGE_KEYS_V3 = _ITEM_KEYS | {"windows"}
#: Base64 text of one serialized feature set may not exceed this (1024 features of 38 bytes).
_MAX_FEATURE_B64 = 4 * (16 + 1024 * 38) // 3 + 8


@dataclass(frozen=True)
class SubmittedVideo:
    frames: np.ndarray  #: uint8 (F, 32), unique frame hashes
    qualities: np.ndarray  #: int32 (F,)
    md5: str  #: 32 lowercase hex chars, or "" when not known


@dataclass(frozen=True)
class ImageWindow:
    """The hash of one shared window of image ``image`` (an index into ``Submission.hashes``)."""

    image: int
    name: str  #: one of SHARED_WINDOWS
    pdq: bytes  #: 32 bytes
    quality: int  #: 50..100


@dataclass(frozen=True)
class Submission:
    hashes: np.ndarray  #: uint8 (N, 32) image hashes
    qualities: np.ndarray  #: int32 (N,)
    kinds: tuple  #: "image" per image hash
    videos: tuple = ()  #: SubmittedVideo items
    features: tuple = ()  #: serialized FeatureSet bytes, only when the survivor opted in
    windows: tuple = ()  #: ImageWindow items, only when the survivor opted in

    def __len__(self) -> int:
        return int(self.hashes.shape[0]) + len(self.videos)

    def to_dict(self, *, shuffle: bool = True) -> dict:
        rng = secrets.SystemRandom()
        items: list = [
            {"kind": self.kinds[i], "pdq": self.hashes[i].tobytes().hex(), "quality": int(self.qualities[i])}
            for i in range(self.hashes.shape[0])
        ]
        for w in self.windows:
            items[w.image].setdefault("windows", {})[w.name] = {"pdq": w.pdq.hex(), "quality": int(w.quality)}
        for v in self.videos:
            frames = [{"pdq": h.tobytes().hex(), "quality": int(q)} for h, q in zip(v.frames, v.qualities)]
            if shuffle:
                rng.shuffle(frames)
            item: dict = {"kind": "video", "frames": frames}
            if v.md5:
                item["md5"] = v.md5
            items.append(item)
        if shuffle:
            rng.shuffle(items)
        counts: dict = {"items": len(items), "image": int(self.hashes.shape[0]), "video": len(self.videos),
                        "video_frames": int(sum(v.frames.shape[0] for v in self.videos)),
                        "low_quality": int((self.qualities < PDQ_MIN_QUALITY).sum())}
        out = {
            "format": SUBMISSION_FORMAT,
            "version": SUBMISSION_VERSION,
            "algorithm": "pdq",
            "items": items,
            "counts": counts,
        }
        if self.features:
            sets = [base64.b64encode(bytes(f)).decode("ascii") for f in self.features]
            if shuffle:
                rng.shuffle(sets)
            out["version"] = SUBMISSION_VERSION_FEATURES
            out["local_features"] = {"notice": FEATURES_NOTICE.format(n=len(sets)), "sets": sets}
            counts["feature_sets"] = len(sets)
        if self.windows:
            out["version"] = SUBMISSION_VERSION_WINDOWS
            counts["window_hashes"] = len(self.windows)
        return out


def video_item(frames: Any, qualities: Iterable[int], md5: str = "") -> SubmittedVideo:
    """A video for a submission: frame hashes are de-duplicated (first quality kept)."""
    h = as_hash_array(frames, name="frames")
    q = np.asarray(list(qualities), dtype=np.int32)
    if q.shape != (h.shape[0],):
        raise ValueError(f"need one quality per frame: {h.shape[0]} frames, {q.shape[0]} qualities")
    if q.size and (q.min() < 0 or q.max() > 100):
        raise ValueError("qualities must be in 0..100")
    md5 = md5.lower()
    if md5 and (len(md5) != 32 or not _MD5_DIGITS.issuperset(md5)):
        raise ValueError("md5 must be 32 hex characters")
    _, first = np.unique(h, axis=0, return_index=True)
    first = np.sort(first)
    return SubmittedVideo(frames=h[first].copy(), qualities=q[first].copy(), md5=md5)


def make_submission(hashes: Any, qualities: Iterable[int], kinds: Iterable[str] | None = None,
                    videos: Iterable[SubmittedVideo] = (), features: Iterable[Any] = (),
                    windows: Iterable[ImageWindow] = ()) -> Submission:
    """A submission of image hashes (and ``videos``, and -- only with the survivor's consent --
    local ``features`` and window hashes: ``windows``, see :func:`image_windows`)."""
    h = as_hash_array(hashes)
    q = np.asarray(list(qualities), dtype=np.int32)
    if q.shape != (h.shape[0],):
        raise ValueError(f"need one quality per hash: {h.shape[0]} hashes, {q.shape[0]} qualities")
    if q.size and (q.min() < 0 or q.max() > 100):
        raise ValueError("qualities must be in 0..100")
    k = tuple(kinds) if kinds is not None else ("image",) * h.shape[0]
    if len(k) != h.shape[0] or any(x != "image" for x in k):
        raise ValueError("kinds must be 'image' for every hash (videos go in videos=)")
    return Submission(hashes=h, qualities=q, kinds=k, videos=tuple(videos),
                      features=tuple(_feature_bytes(f) for f in features), windows=check_windows(windows, h.shape[0]))


def image_windows(name: str, hashes: Any, qualities: Iterable[int]) -> list[ImageWindow]:
    """Window ``name`` of each image, in the order of the submission's image hashes (row i of
    ``hashes`` is image i's window); windows of quality below 50 are left out."""
    h = as_hash_array(hashes)
    q = [int(x) for x in qualities]
    if len(q) != h.shape[0]:
        raise ValueError(f"need one quality per window hash: {h.shape[0]} hashes, {len(q)} qualities")
    return [ImageWindow(i, name, h[i].tobytes(), q[i]) for i in range(h.shape[0]) if q[i] >= PDQ_MIN_QUALITY]


def check_windows(windows: Iterable[ImageWindow], n_images: int, error: type = ValueError) -> tuple:
    """``windows`` checked against a submission of ``n_images`` images (raising ``error``),
    sorted by image and name."""
    out, seen = [], set()
    for w in windows:
        if not isinstance(w, ImageWindow):
            raise TypeError(f"windows must be ImageWindow items; got {type(w).__name__}")
        if w.name not in SHARED_WINDOWS:
            raise error(f"unknown window {w.name!r} (known: {', '.join(SHARED_WINDOWS)})")
        if not (isinstance(w.image, int) and 0 <= w.image < n_images):
            raise error(f"window {w.name!r} refers to image {w.image!r}; the submission has {n_images} image(s)")
        if not isinstance(w.pdq, bytes) or len(w.pdq) != 32:
            raise error(f"window {w.name!r} of image {w.image}: a PDQ hash is 32 bytes")
        if not (type(w.quality) is int and PDQ_MIN_QUALITY <= w.quality <= 100):
            raise error(f"window {w.name!r} of image {w.image}: quality must be an integer "
                        f"{PDQ_MIN_QUALITY}..100 (low-quality windows only make false matches)")
        if (w.image, w.name) in seen:
            raise error(f"image {w.image} has window {w.name!r} twice")
        seen.add((w.image, w.name))
        out.append(w)
    return tuple(sorted(out, key=lambda w: (w.image, w.name)))


def _feature_bytes(f: Any) -> bytes:
    from .features.orb import FeatureSet

    if isinstance(f, FeatureSet):
        return f.to_bytes()
    if isinstance(f, (bytes, bytearray, memoryview)):
        data = bytes(f)
        FeatureSet.from_bytes(data)  # validates
        return data
    raise TypeError(f"features must be FeatureSet objects or their bytes, got {type(f).__name__}")


def _parse_features(obj: Any) -> tuple:
    from .features.orb import FeatureError, FeatureSet

    if not isinstance(obj, dict) or set(obj) != {"notice", "sets"}:
        raise SubmissionError("'local_features' must be an object with 'notice' and 'sets'")
    if not isinstance(obj["notice"], str) or not isinstance(obj["sets"], list):
        raise SubmissionError("'local_features': 'notice' must be text and 'sets' a list")
    out = []
    for i, text in enumerate(obj["sets"]):
        if not isinstance(text, str) or len(text) > _MAX_FEATURE_B64:
            raise SubmissionError(f"local feature set {i} must be base64 text of at most {_MAX_FEATURE_B64} characters")
        try:
            data = base64.b64decode(text.encode("ascii"), validate=True)
            FeatureSet.from_bytes(data, source=f"local feature set {i}")
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, FeatureError) else "not valid base64"
            raise SubmissionError(f"local feature set {i}: {reason}") from None
        out.append(data)
    return tuple(out)


def parse_submission(obj: Any) -> Submission:
    """Validate a decoded submission (dict) and return it."""
    if not isinstance(obj, dict):
        raise SubmissionError("a submission must be a JSON object")
    if obj.get("format") != SUBMISSION_FORMAT:
        raise SubmissionError(f"not an ncii-hash submission (format is {obj.get('format')!r})")
    version = obj.get("version")
    known = (SUBMISSION_VERSION, SUBMISSION_VERSION_FEATURES, SUBMISSION_VERSION_WINDOWS)
    if type(version) is not int or version not in known:  # not true, not 1.0
        raise SubmissionError(f"unsupported submission version {version!r} (this reader knows "
                              f"{', '.join(map(str, known))})")
    extra = set(obj) - (_TOP_KEYS if version == SUBMISSION_VERSION else _TOP_KEYS_V2)
    if extra:
        raise SubmissionError(f"unexpected fields {sorted(extra)}: a submission carries hashes and counts only")
    if obj.get("algorithm") != "pdq":
        raise SubmissionError(f"unsupported algorithm {obj.get('algorithm')!r}")
    items = obj.get("items")
    if not isinstance(items, list):
        raise SubmissionError("'items' must be a list")
    hexes, quals, kinds = [], [], []
    videos, windows = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SubmissionError(f"item {i} must be an object")
        if item.get("kind") == "video":
            videos.append(_parse_video(item, i))
            continue
        extra = set(item) - (_IMAGE_KEYS_V3 if version == SUBMISSION_VERSION_WINDOWS else _ITEM_KEYS)
        if extra:
            raise SubmissionError(f"item {i} has unexpected fields {sorted(extra)}")
        if item.get("kind") != "image":
            raise SubmissionError(f"item {i}: kind must be one of {MEDIA_KINDS}")
        hexes.append(_hash_field(item, f"item {i}"))
        quals.append(_quality_field(item, f"item {i}"))
        kinds.append(item["kind"])
        if "windows" in item:
            windows += _parse_windows(item["windows"], len(hexes) - 1, f"item {i}")
    try:
        hashes = from_hex(hexes) if hexes else np.zeros((0, 32), np.uint8)
    except ValueError as exc:
        raise SubmissionError(f"bad hash: {exc}") from None
    counts = obj.get("counts")
    if not isinstance(counts, dict) or type(counts.get("items")) is not int or counts["items"] != len(items):
        raise SubmissionError("'counts.items' does not match the number of items")
    features = _parse_features(obj["local_features"]) if "local_features" in obj else ()
    n_windows = counts.get("window_hashes", 0)
    if type(n_windows) is not int or n_windows != len(windows):
        raise SubmissionError(f"'counts.window_hashes' does not match the {len(windows)} window hash(es) of the items")
    return Submission(hashes=hashes, qualities=np.asarray(quals, np.int32), kinds=tuple(kinds), videos=tuple(videos),
                      features=features, windows=check_windows(windows, len(hexes), SubmissionError))


def _parse_windows(obj: Any, image: int, where: str) -> list[ImageWindow]:
    if not isinstance(obj, dict) or not obj:
        raise SubmissionError(f"{where}: 'windows' must be a non-empty object of window name -> hash")
    out = []
    for name, w in obj.items():
        if name not in SHARED_WINDOWS:
            raise SubmissionError(f"{where}: unknown window {name!r} (known: {', '.join(SHARED_WINDOWS)})")
        if not isinstance(w, dict) or set(w) != _FRAME_KEYS:
            raise SubmissionError(f"{where}, window {name!r}: must be an object with 'pdq' and 'quality'")
        try:
            code = from_hex([_hash_field(w, f"{where}, window {name!r}")])[0].tobytes()
        except ValueError as exc:
            raise SubmissionError(f"{where}, window {name!r}: bad hash: {exc}") from None
        out.append(ImageWindow(image, name, code, _quality_field(w, f"{where}, window {name!r}")))
    return out


def _quality_field(obj: dict, where: str) -> int:
    q = obj.get("quality")
    if not isinstance(q, int) or isinstance(q, bool) or not 0 <= q <= 100:
        raise SubmissionError(f"{where}: quality must be an integer 0..100")
    return q


def _hash_field(obj: dict, where: str) -> str:
    if not isinstance(obj.get("pdq"), str):
        raise SubmissionError(f"{where}: 'pdq' must be a 64-character hex string")
    return obj["pdq"]


def _parse_video(item: dict, i: int) -> SubmittedVideo:
    extra = set(item) - _VIDEO_KEYS
    if extra:
        raise SubmissionError(f"item {i} (video) has unexpected fields {sorted(extra)}")
    md5 = item.get("md5", "")
    if not isinstance(md5, str) or (md5 and (len(md5) != 32 or not _MD5_DIGITS.issuperset(md5))):
        raise SubmissionError(f"item {i}: md5 must be 32 lowercase hex characters")
    frames = item.get("frames")
    if not isinstance(frames, list) or not frames:
        raise SubmissionError(f"item {i}: a video needs a non-empty 'frames' list")
    hexes, quals = [], []
    for j, fr in enumerate(frames):
        if not isinstance(fr, dict) or set(fr) - _FRAME_KEYS:
            raise SubmissionError(f"item {i}, frame {j}: must be an object with 'pdq' and 'quality'")
        hexes.append(_hash_field(fr, f"item {i}, frame {j}"))
        quals.append(_quality_field(fr, f"item {i}, frame {j}"))
    try:
        h = from_hex(hexes)
    except ValueError as exc:
        raise SubmissionError(f"item {i}: bad frame hash: {exc}") from None
    return SubmittedVideo(frames=h, qualities=np.asarray(quals, np.int32), md5=md5)


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
    data = json.dumps(submission.to_dict(), indent=2) + "\n"
    with atomic_private_file(path, text=True) as f:
        f.write(data)
