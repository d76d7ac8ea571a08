"""One uploaded file's bytes in, its hash out -- in this process, from memory only.

Images go through :func:`ncii_hash.image.pdq_hash` and videos through
:func:`ncii_hash.video.hash_video` exactly as ``ncii-hash hash`` calls them (the same decoder,
EXIF rotation and sampling defaults), so the page's hashes equal the CLI's bit for bit (and,
when the survivor opts in, the centre window's through :func:`ncii_hash.image.pdq_window_hash`,
as ``ncii-hash hash --share-window``). The
bytes are never written anywhere: Pillow and PyAV read them from memory, and the thumbnail is
a small JPEG made in memory and sent back as a ``data:`` URL. A file that cannot be used is
refused with a :class:`Refused` code that the page turns into plain words.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..._util.optional import try_import
from ...errors import FeatureError, ImageError, VideoError
from ...hashes import PDQ_MIN_QUALITY
from ...image import pdq_hash, pdq_window_hash
from ...image.opening import opened_image
from ...submission import SHARED_WINDOWS, ImageWindow, SubmittedVideo, video_item
from ...video import hash_video, video_container

#: Largest file the page may send (videos included); one file is in memory at a time.
MAX_FILE_BYTES = 512 * 2**20
THUMBNAIL_SIDE = 160  #: pixels, the longer side
#: What the page is told, per refused file (the catalogues hold the words).
REFUSAL_CODES = ("empty", "unsupported", "too_large", "unreadable", "video_unavailable", "too_many")


class Refused(Exception):
    """A file the app cannot use; ``code`` is one of :data:`REFUSAL_CODES`."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class HashedMedia:
    """What is kept of one file: its hash(es), never its bytes or name."""

    kind: str  #: "image" or "video"
    pdq: Optional[np.ndarray] = None  #: uint8 (32,), images
    quality: int = 0  #: images: PDQ quality; videos: the best frame's
    video: Optional[SubmittedVideo] = None
    features: Optional[bytes] = None  #: a serialized FeatureSet, only when asked for
    #: the centre window's (hash 32 bytes, quality), only when asked for and of quality >= 50
    window: Optional[tuple[bytes, int]] = None
    thumbnail: Optional[str] = None  #: data: URL of a small JPEG (images only)

    def summary(self) -> dict:
        """What the page shows of the item."""
        out: dict = {"kind": self.kind, "quality": self.quality, "thumbnail": self.thumbnail}
        if self.kind == "image" and self.pdq is not None:
            out["pdq"] = self.pdq.tobytes().hex()
        if self.window is not None:
            out["window"] = self.window[0].hex()
        if self.video is not None:
            out["frames"] = int(self.video.frames.shape[0])
        return out


def hash_media(data: bytes, *, seconds_per_hash: float = 1.0, features: bool = False,
               window: bool = False) -> HashedMedia:
    """Hash one file given as bytes; raises :class:`Refused`. ``window``: also hash a picture's
    shared centre window (the survivor's opt-in; kept only when its quality is at least 50)."""
    if not data:
        raise Refused("empty")
    if len(data) > MAX_FILE_BYTES:
        raise Refused("too_large")
    if _is_video(data[:512]):
        return _hash_video(data, seconds_per_hash)
    try:
        result = pdq_hash(data)
    except ImageError as exc:
        raise Refused(_image_refusal(exc.reason)) from None
    try:
        thumbnail: Optional[str] = make_thumbnail(data)
    except Exception:  # noqa: BLE001 - an odd pixel mode: the hash stands, the page shows a plain tile
        thumbnail = None
    fset = _features(data) if features else None
    return HashedMedia(kind="image", pdq=result.hash.copy(), quality=int(result.quality), features=fset,
                       window=_window(data) if window else None, thumbnail=thumbnail)


def _window(data: bytes) -> Optional[tuple[bytes, int]]:
    """The centre window's hash and quality, cut from the pixels ``pdq_hash`` hashed (the same
    decoding of the same bytes); None when its centre is too flat to hash well."""
    try:
        r = pdq_window_hash(data, SHARED_WINDOWS[0])
    except ImageError:  # pragma: no cover - the same bytes were just decoded
        return None
    return (r.hash.tobytes(), int(r.quality)) if r.quality >= PDQ_MIN_QUALITY else None


def image_window(index: int, media: HashedMedia) -> Optional[ImageWindow]:
    """The submission's window of image ``index`` (``media``), or None when it has none."""
    if media.window is None:
        return None
    return ImageWindow(index, SHARED_WINDOWS[0], media.window[0], media.window[1])


#: ISO-BMFF major brands of pictures (HEIC, HEIF, AVIF): "ftyp" files that are not videos.
_PICTURE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis",
                             b"mif2", b"avci"})


def _is_video(head: bytes) -> bool:
    if head[4:8] == b"ftyp" and head[8:12] in _PICTURE_BRANDS:
        return False
    return video_container(head) is not None


def _hash_video(data: bytes, seconds_per_hash: float) -> HashedMedia:
    try:
        vh = hash_video(data, seconds_per_hash=seconds_per_hash)
    except ImportError:
        raise Refused("video_unavailable") from None
    except VideoError as exc:
        raise Refused("too_large" if "exceeds" in exc.reason or "limit" in exc.reason else "unreadable") from None
    if len(vh) == 0:
        raise Refused("unreadable")
    item = video_item(vh.frames, vh.qualities, vh.md5)
    return HashedMedia(kind="video", quality=int(vh.qualities.max()), video=item)


def _image_refusal(reason: str) -> str:
    if "megapixels" in reason or "too large" in reason or "not enough memory" in reason:
        return "too_large"
    if "not supported" in reason or "not a supported image" in reason:
        return "unsupported"
    if "0 bytes" in reason:
        return "empty"
    return "unreadable"


def make_thumbnail(data: bytes) -> str:
    """A ``data:image/jpeg`` URL of the picture, upright, at most :data:`THUMBNAIL_SIDE` pixels."""
    from PIL import ImageOps

    with opened_image(data) as img:
        img.draft("RGB", (THUMBNAIL_SIDE * 2, THUMBNAIL_SIDE * 2))  # JPEG: decode at reduced scale
        upright = ImageOps.exif_transpose(img)
        small = upright.convert("RGB")
        small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=70)  # no EXIF is copied
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _features(data: bytes) -> Optional[bytes]:
    """The image's local feature set (the opt-in of ``ncii-hash hash --features``), or None
    when OpenCV is missing or the picture has too little texture."""
    if not features_available():
        return None
    from ...features import image_features

    try:
        fs = image_features(data)
    except (ImportError, FeatureError):
        return None
    return fs.to_bytes() if fs.usable else None


def features_available() -> bool:
    """Can local features be made here (OpenCV installed: the ``features`` extra)?"""
    return try_import("cv2") is not None
