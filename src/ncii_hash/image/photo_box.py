"""The photo region inside a screenshot, a caption banner or a frame: bands of flat colour
(phone status and app bars with their text, caption banners, letterboxes, pads) peeled off each
side of a luma plane. Used by the platform-side query variants (:mod:`.variants`); pixels in,
a box out.

Boxes are ``(top, bottom, left, right)`` with exclusive ends, in pixels of the luma given.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

Box = tuple[int, int, int, int]


#: A row (column) is part of a band when at least this share of its pixels lies within
#: ``BAND_TOLERANCE`` grey levels of the band's level. Well below 1 because UI bars carry
#: text and icons (a status-bar clock, a caption's letters) that the strict border finder of
#: :mod:`.borders` stops at.
BAND_COVERAGE = 0.6
#: A band starts on, and is made of, lines this flat (status bar -> background -> app bar).
BAND_SOLID = 0.97
#: A run of text lines inside a band is at most this share of the side (a caption's letters).
BAND_TEXT_GAP = 0.08
BAND_TOLERANCE = 12
BAND_INNER_TOLERANCE = 4
#: At most this many bands of different levels are peeled off one side.
MAX_BANDS = 4
#: Bands thinner than this share of the side are edge noise, not a frame.
MIN_BAND = 0.02
#: The content box keeps at least this share of each side (a 4:3 photo fitted to the width
#: of a 9:19.5 phone screen is 35% of its height).
MIN_CONTENT = 0.25


def _peel(lines: np.ndarray, limit: int) -> int:
    """How many leading lines of ``lines`` (L, n) uint8 belong to up to MAX_BANDS bands.

    A band starts on a *solid* line (BAND_SOLID of its pixels within BAND_TOLERANCE of its
    median level) and runs over solid lines of that level; lines that are only mostly that level
    (BAND_COVERAGE: a line through a clock, icons or a caption's letters) belong to it only
    when a solid line of the band follows within BAND_TEXT_GAP of the side -- so a band never
    eats into a dark photo next to a black bar, which is mostly dark but never solid for long.
    Bands after the first must be flatter still (BAND_INNER_TOLERANCE): UI bars are drawn
    flat, a photo's sky is not quite. (Counting only thick bands -- a line blended between two
    bars by a resize is a "band" of its own -- found more screenshot gaps but peeled more
    photos with flat edges: 52 of 62 screenshots matched instead of 55.)
    """
    pos, bands = 0, 0
    gap = max(2, round(BAND_TEXT_GAP * limit))
    while pos < limit and bands < MAX_BANDS:
        tol = BAND_TOLERANCE if bands == 0 else BAND_INNER_TOLERANCE
        level = int(np.median(lines[pos]))
        near = np.abs(lines[pos:limit].astype(np.int16) - level) <= tol
        share = near.mean(axis=1)
        if share[0] < BAND_SOLID:
            break
        solid = share >= BAND_SOLID
        mostly = share >= BAND_COVERAGE
        end = 1  # one past the last solid line of the band
        k = 1
        while k < len(share):
            if solid[k]:
                end = k = k + 1
                continue
            if not mostly[k]:
                break
            nxt = np.flatnonzero(solid[k:k + gap] | ~mostly[k:k + gap])
            if nxt.size == 0 or not solid[k + nxt[0]]:
                break
            k += int(nxt[0])
        pos += end
        bands += 1
    return pos


def find_photo_box(luma: np.ndarray) -> Optional[Box]:
    """The ``(top, bottom, left, right)`` photo region inside bands of flat colour (phone
    status and app bars with their text, caption banners, letterboxes, pads), or ``None``.

    Rows are peeled from the top and from the bottom, band by band (a band: lines mostly
    within a few levels of one grey level, text allowed), then columns inside the rows kept.
    A flat sky at the edge of a photo is peeled too; callers keep the whole picture's hash
    beside the box's, so such a cut costs one more query hash, never a match.
    """
    a = np.asarray(luma)
    if a.dtype != np.uint8 or a.ndim != 2:
        raise ValueError(f"luma must be uint8 (H, W); got {a.dtype} {a.shape}")
    h, w = a.shape
    if h < 16 or w < 16:
        return None
    # every line is looked at, each through a sample of its pixels: the cut is exact to the
    # pixel in its own direction, and a 1024-pixel upload costs what a 256-pixel preview would
    step = max(1, max(h, w) // 256)
    rows = a[:, ::step]
    top = _peel(rows, h)
    bottom = h - _peel(rows[::-1], h - top)
    if bottom - top < MIN_CONTENT * h:
        return None
    cols = a[top:bottom:step].T
    left = _peel(cols, w)
    right = w - _peel(cols[::-1], w - left)
    if right - left < MIN_CONTENT * w:
        return None
    top, left = (c if c >= MIN_BAND * n else 0 for c, n in ((top, h), (left, w)))
    bottom = bottom if h - bottom >= MIN_BAND * h else h
    right = right if w - right >= MIN_BAND * w else w
    if (top, bottom, left, right) == (0, h, 0, w):
        return None
    return (top, bottom, left, right)
