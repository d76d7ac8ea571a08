"""Media the matcher hashes: an uploaded file (HMA's multipart form, one file whose field
name is its content type, ``photo``) or, only when the operator configured an allow-list of
hosts, a file fetched by URL. Hashing is this library's PDQ (quality below 50: no hash, as
python-threatexchange's PDQ signal gives an empty string).

Fetching never follows redirects, refuses hosts outside the allow-list (exact name or a
subdomain of one), plain ``http`` except to a listed host, and bodies over the limit. Without
an allow-list no URL is ever opened.
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass
from typing import Optional, Sequence
from urllib.parse import urlsplit

import numpy as np

from ...hashes import PDQ_MIN_QUALITY
from ...image.io import load_pixels
from ...image.pdq import hash_pixels
from ...image.variants import WINDOW_VARIANTS, query_variants
from .refused import Refused

CONTENT_TYPES = {"photo": True, "video": False}  #: HMA content types and whether this matcher hashes them


@dataclass(frozen=True)
class Hashed:
    """One image's PDQ hash (``hex`` empty below quality 50), its dihedral set and, when asked
    for, its query variants for survivors' shared windows (``WINDOW_VARIANTS``, row 0 excluded)."""

    hex: str
    quality: int
    codes: Optional[np.ndarray]  #: (1, 32) uint8, or None when too low in quality
    dihedral: Optional[np.ndarray]  #: (1, 8, 32)
    #: whole frames (photo box guesses): (K, 32), searched among the whole pictures
    frames: Optional[np.ndarray] = None
    #: window name -> (K, 32): that window cut from the upload's frames, searched among the banked windows
    windows: Optional[dict] = None


def hash_image(data: bytes, *, variants: bool = False) -> Hashed:
    """PDQ of an uploaded or fetched photo, decoded once; ``variants``: also the rows of
    :data:`~ncii_hash.image.variants.WINDOW_VARIANTS` (for a bank that holds shared windows)."""
    try:
        pixels = load_pixels(data, allow_rgbx=True)  # pdq_hash's decode: EXIF-rotated, no pre-resize
        result = hash_pixels(pixels, dihedral=True)
    except (ValueError, TypeError) as exc:
        raise Refused(400, f"the file could not be hashed as a photo ({exc.__class__.__name__})") from None
    if result.quality < PDQ_MIN_QUALITY:
        return Hashed("", result.quality, None, None)
    assert result.dihedral is not None
    frames, windows = None, None
    if variants:
        windows = query_variants(pixels, WINDOW_VARIANTS).extra_rows()
        frames = windows.pop(None, None)
    return Hashed(result.hex, result.quality, result.hash.reshape(1, 32), result.dihedral.reshape(1, 8, 32),
                  frames, windows)


def uploaded_file(content_type: Optional[str], body: bytes) -> tuple[str, bytes]:
    """``(content type, file bytes)`` of HMA's multipart upload: exactly one file part, named
    by its content type (``photo``)."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise Refused(400, "Missing multipart/form-data file upload")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise Refused(400, "Missing multipart/form-data file upload")
    files = [p for p in message.iter_parts() if p.get_filename() is not None]
    if not files:
        raise Refused(400, "Missing multipart/form-data file upload")
    if len(files) > 1:
        raise Refused(400, "Only one file allowed per request")
    part = files[0]
    field = part.get_param("name", header="content-disposition")
    kind = str(field or "")
    if kind not in CONTENT_TYPES:
        raise Refused(400, f"no such content type '{kind}' (the file's form field names it: photo)")
    if not CONTENT_TYPES[kind]:
        raise Refused(400, f"content type '{kind}' is not enabled on this matcher")
    payload = part.get_payload(decode=True)
    return kind, bytes(payload or b"")


class UrlFetcher:
    """Fetches media by URL for hashing, only from ``allow`` hosts (empty: never)."""

    def __init__(self, allow: Sequence[str], *, max_bytes: int, timeout: float = 30.0):
        self.allow = tuple(h.lower().strip(".") for h in allow if h)
        self.max_bytes = max_bytes
        self.timeout = timeout

    @property
    def enabled(self) -> bool:
        return bool(self.allow)

    def allowed(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            _ = parts.port  # a malformed port raises
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not host:
            return False
        return any(host == a or host.endswith("." + a) for a in self.allow)

    def fetch(self, url: str, content_type: Optional[str] = None) -> bytes:
        if not self.enabled:
            raise Refused(403, "fetching media by URL is off on this matcher (start it with --fetch-allow HOST)")
        if not self.allowed(url):
            raise Refused(400, "Invalid or unsafe URL provided")
        if content_type not in (None, "", "photo"):
            raise Refused(400, f"content type '{content_type}' is not enabled on this matcher")
        import urllib.error
        import urllib.request

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(urllib.request.Request(url, method="GET"), timeout=self.timeout) as response:
                length = response.headers.get("content-length")
                if length is not None and length.isdigit() and int(length) > self.max_bytes:
                    raise Refused(413, "Content too large")
                data = response.read(self.max_bytes + 1)
        except urllib.error.HTTPError as exc:
            raise Refused(400, f"Failed to fetch URL: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise Refused(400, f"Failed to fetch URL: {exc.__class__.__name__}") from None
        if len(data) > self.max_bytes:
            raise Refused(413, "Content too large")
        return data
