"""Finding near-uniform borders (letterboxes, pads, screenshot margins) so that PDQ can also
hash the content inside them: ``pdq_hash(..., trim_borders=True)`` keeps the plain hash and
adds the content's (``result.trimmed``); :func:`ncii_hash.border_robust_distance` compares
such results. Pixels in, boxes out: this module knows nothing of hashes.

Why: a letterbox or a screenshot frame changes the whole 64x64 PDQ grid, so a padded copy of
a banked photo lands ~100 bits away. Hashing the content box instead brings it back near 0.
Trimming is conservative and never replaces the plain hash, because a photo with a flat sky or
a studio backdrop also has "uniform" rows: a match is declared when *any* hash of one side is
within the threshold of *any* hash of the other (at most 2 x 2 comparisons, x 8 with dihedral
queries), so a plain-edit match is never lost; the price is a few more comparisons per pair
(a slightly higher false-match rate, measured in ``benchmarks/bench_quality.py``).

Invariants: boxes are ``(top, bottom, left, right)`` with exclusive ends, in pixels of the
input; a box is only reported when it removes at least ``min_strip`` of the height or width
and keeps at least ``min_keep`` of each; input pixels are never modified.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

#: A row or column belongs to the border when at least this share of its pixels lies within
#: ``BORDER_TOLERANCE`` (max over channels) of the border colour. Below 1 so that a status-bar
#: clock or a JPEG ringing speck does not stop the scan.
BORDER_COVERAGE = 0.97
#: Grey levels; JPEG q50 keeps flat areas within a few levels, photo skies drift more.
BORDER_TOLERANCE = 10
#: Strips thinner than this share of the side are ignored (JPEG edges, 1-px frames).
MIN_STRIP = 0.02
#: Never keep less than this share of the height or of the width.
MIN_KEEP = 0.4


def _strip_length(lines: np.ndarray, coverage: float, tolerance: int, limit: int) -> int:
    """How many leading lines of ``lines`` (L, n, C), at most ``limit``, are border: close to
    the first line's median colour on at least ``coverage`` of their pixels. Scans in growing
    chunks, so a borderless photo costs one line."""
    colour = np.median(lines[0], axis=0).astype(np.int16)
    start, step = 0, 1
    while start < limit:
        chunk = lines[start:min(limit, start + step)].astype(np.int16)
        close = np.abs(chunk - colour).max(axis=2) <= tolerance
        bad = np.flatnonzero(close.mean(axis=1) < coverage)
        if bad.size:
            return start + int(bad[0])
        start += len(chunk)
        step *= 4
    return limit


def find_content_box(pixels: np.ndarray, *, coverage: float = BORDER_COVERAGE,
                     tolerance: int = BORDER_TOLERANCE, min_strip: float = MIN_STRIP,
                     min_keep: float = MIN_KEEP) -> Optional[tuple[int, int, int, int]]:
    """The ``(top, bottom, left, right)`` box inside near-uniform borders, or ``None``.

    Each side is scanned inward independently (letterboxes are symmetric, screenshot frames
    are not); the colour of each border is that side's outermost line, so black bars, white
    pads and coloured frames are all found. Returns ``None`` when no side has a strip of at
    least ``min_strip`` of its dimension, or when trimming would keep less than ``min_keep``.
    """
    a = np.asarray(pixels)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ValueError("pixels must be uint8 (H, W) or (H, W, 1|3|4); "
                         f"got {a.dtype} {a.shape}")
    if not 0.0 < coverage <= 1.0 or tolerance < 0 or not 0.0 <= min_strip < 0.5 or not 0.0 < min_keep <= 1.0:
        raise ValueError("need 0 < coverage <= 1, tolerance >= 0, 0 <= min_strip < 0.5, 0 < min_keep <= 1")
    if a.ndim == 2:
        a = a[:, :, None]
    a = a[:, :, :3]
    h, w = a.shape[:2]
    if h < 8 or w < 8:
        return None
    top = _strip_length(a, coverage, tolerance, h)
    bottom = _strip_length(a[::-1], coverage, tolerance, h)
    left = _strip_length(a.transpose(1, 0, 2), coverage, tolerance, w)
    right = _strip_length(a.transpose(1, 0, 2)[::-1], coverage, tolerance, w)
    # thin strips are edge noise, not borders
    top, bottom = (x if x >= min_strip * h else 0 for x in (top, bottom))
    left, right = (x if x >= min_strip * w else 0 for x in (left, right))
    if top == bottom == left == right == 0:
        return None
    box = (top, h - bottom, left, w - right)
    if box[1] - box[0] < min_keep * h or box[3] - box[2] < min_keep * w:
        return None
    return box


def trim_borders(pixels: np.ndarray, **options) -> tuple[np.ndarray, Optional[tuple[int, int, int, int]]]:
    """``(content pixels, box)``; the input itself (and ``None``) when there is no border."""
    box = find_content_box(pixels, **options)
    if box is None:
        return pixels, None
    t, b, l, r = box
    return np.ascontiguousarray(pixels[t:b, l:r]), box
