"""Extra PDQ hashes of one picture, so that crops, small rotations, banners and screenshots of
a banked photo still match: survivor-side windows (a few re-framings of her picture, hashed on
her device) and platform-side query variants of an upload (counter-rotations, the photo region
inside a screenshot or banner, sub-windows). Pixels in, boxes and hashes out: this module knows
nothing of banks or indexes.

Why: PDQ survives re-encoding and resizing but not geometry. A 10% crop, a 3 degree tilt or a
phone-screenshot frame moves the 64x64 grid enough to land ~100 bits away. The platform holds
the upload, so it can try a few geometric guesses at no privacy cost (each guess is one more
query hash: a lookup each, and one more chance of a false match, both measured in
``benchmarks/bench_robust.py``). What the platform cannot do is restore pixels that the edit
removed; a survivor-side window (a hash of the centre of her picture, say) is the part that a
crop or a banner leaves intact. Every window hash is one more PDQ hash of the same picture, so
each is also one more view for an inversion attack (``benchmarks/bench_inversion.py`` rebuilds
from all of them); :data:`CANDIDATE_WINDOW_SETS` names every set measured.

Invariants:

* boxes are ``(top, bottom, left, right)`` with exclusive ends, in pixels of the picture they
  were computed for, always inside it and at least one pixel on each side;
* a window set is a pure function of ``(width, height)``: the survivor's device and the
  platform compute the same relative boxes without exchanging anything but hashes;
* the plain hash of the whole picture is always the first query variant, so matching with
  variants can only add matches to the plain rule, never lose one;
* input pixels are never modified; every variant is computed from one luma plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from .._core import pdq_hash as core_pdq_hash

Box = tuple[int, int, int, int]
WindowSet = Callable[[int, int], list[Box]]


# --------------------------------------------------------------------------------------------
# window geometry (shared by the survivor's device and the platform)


def window_box(width: int, height: int, fraction: float, anchor: tuple[float, float] = (0.5, 0.5)) -> Box:
    """The box keeping ``fraction`` of each side, placed at ``anchor`` = (x, y) in 0..1
    (0: touching the left/top edge, 0.5: centred, 1: touching the right/bottom edge)."""
    _check_size(width, height)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"window fraction must be in (0, 1]; got {fraction!r}")
    ax, ay = anchor
    if not (0.0 <= ax <= 1.0 and 0.0 <= ay <= 1.0):
        raise ValueError(f"window anchor must lie in [0, 1] x [0, 1]; got {anchor!r}")
    bw = max(1, min(width, round(width * fraction)))
    bh = max(1, min(height, round(height * fraction)))
    left = min(width - bw, max(0, round((width - bw) * ax)))
    top = min(height - bh, max(0, round((height - bh) * ay)))
    return (top, top + bh, left, left + bw)


def _windows(fraction: float, anchors: Sequence[tuple[float, float]]) -> WindowSet:
    return lambda w, h: [window_box(w, h, fraction, a) for a in anchors]


def _union(*sets: WindowSet) -> WindowSet:
    return lambda w, h: [b for s in sets for b in s(w, h)]


CENTRE = ((0.5, 0.5),)
CORNERS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
GRID9 = tuple((x, y) for y in (0.0, 0.5, 1.0) for x in (0.0, 0.5, 1.0))

#: Every survivor-side window set measured by ``benchmarks/bench_robust.py``, by name. Each is
#: a function ``(width, height) -> [box, ...]`` of the windows hashed *besides* the whole
#: picture. Names are stable (the inversion benchmark reads them).
CANDIDATE_WINDOW_SETS: dict[str, WindowSet] = {
    "none": lambda w, h: [],
    "centre80": _windows(0.8, CENTRE),
    "centre70": _windows(0.7, CENTRE),
    "centre60": _windows(0.6, CENTRE),
    "centre80+centre60": _union(_windows(0.8, CENTRE), _windows(0.6, CENTRE)),
    "corners90": _windows(0.9, CORNERS),
    "grid9_90": _windows(0.9, GRID9),
}

#: The window set proposed for submissions (``survivor_windows``). It is only shared when a
#: submission says so (submission version 3); see docs/accuracy.md for why this one.
SURVIVOR_WINDOW_SET = "centre70"


def survivor_windows(width: int, height: int, window_set: str = SURVIVOR_WINDOW_SET) -> list[Box]:
    """Pixel boxes of the picture that the survivor hashes besides the whole picture."""
    try:
        fn = CANDIDATE_WINDOW_SETS[window_set]
    except KeyError:
        raise ValueError(f"unknown window set {window_set!r}; known: {sorted(CANDIDATE_WINDOW_SETS)}") from None
    _check_size(width, height)
    return fn(width, height)


def _check_size(width: int, height: int) -> None:
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (width, height)):
        raise TypeError(f"width and height must be integers; got {width!r}, {height!r}")
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be at least 1 pixel; got {width} x {height}")
