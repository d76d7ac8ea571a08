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

What it bought (docs/accuracy.md, "Robustness options"): counter-rotations and the photo box
need nothing from survivors and are an opt-in of the platform (:data:`PLATFORM_VARIANTS`);
the best option with one more shared hash (``centre70``) reaches the rotation and banner
targets but not crops or screenshots, so it is the survivor's opt-in (submission version 3),
matched by the platform with :data:`WINDOW_VARIANTS` whenever the bank holds such windows.

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
from .borders import find_content_box
from .photo_box import Box, find_photo_box

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


#: A window: the share of each side it keeps and where it sits, (x, y) in 0..1.
Window = tuple[float, tuple[float, float]]

CENTRE = ((0.5, 0.5),)
CORNERS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
GRID9 = tuple((x, y) for y in (0.0, 0.5, 1.0) for x in (0.0, 0.5, 1.0))

#: Every survivor-side window set measured by ``benchmarks/bench_robust.py``, as relative
#: windows hashed *besides* the whole picture. Names are stable (the inversion benchmark
#: reads them through :data:`CANDIDATE_WINDOW_SETS`).
WINDOW_SETS: dict[str, tuple[Window, ...]] = {
    "none": (),
    "centre80": ((0.8, CENTRE[0]),),
    "centre70": ((0.7, CENTRE[0]),),
    "centre60": ((0.6, CENTRE[0]),),
    "centre80+centre60": ((0.8, CENTRE[0]), (0.6, CENTRE[0])),
    "corners90": tuple((0.9, a) for a in CORNERS),
    "grid9_90": tuple((0.9, a) for a in GRID9),
}


def _boxes(windows: tuple[Window, ...]) -> WindowSet:
    return lambda w, h: [window_box(w, h, f, a) for f, a in windows]


#: The same sets as functions ``(width, height) -> [box, ...]`` in pixels.
CANDIDATE_WINDOW_SETS: dict[str, WindowSet] = {name: _boxes(ws) for name, ws in WINDOW_SETS.items()}

#: The window set of the best trade-off measured (``survivor_windows``' default): one more
#: hash, of the centre keeping 70% of each side. It misses the crop and screenshot targets of
#: issue 20 (docs/accuracy.md), so it is not a default: a survivor opts in (``ncii-hash hash
#: --share-window``, the hub page's checkbox) and her submission (version 3) carries it.
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


# --------------------------------------------------------------------------------------------
# the working luma: decoded once, every variant is cut or rotated from it

#: Uploads are reduced by the largest integer box factor that keeps the longest side at least
#: this long: PDQ looks at a 64x64 grid, and a 4000-pixel phone photo would make every variant
#: (rotations above all) cost ~50x more. Reducing to 256 instead moved hashes by ~16 bits on
#: real photos, eating into the margin; 512 kept a counter-rotated window's recall at 86% where
#: 1024 gave 92% (80 photos, 5 degrees).
WORK_MIN_SIDE = 512


def working_luma(pixels: np.ndarray) -> np.ndarray:
    """uint8 (H, W) luma (PDQ's weights 0.299/0.587/0.114) of RGB[A] or grey pixels, reduced by
    the largest integer factor keeping the longest side at least :data:`WORK_MIN_SIDE`."""
    a = np.asarray(pixels)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ValueError(f"pixels must be uint8 (H, W) or (H, W, 1|3|4); got {a.dtype} {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"pixels must be at least 1x1; got {a.shape}")
    if a.ndim == 3 and a.shape[2] >= 3:
        # RGBA/RGBX straight to L (Pillow's L of RGBA ignores the fourth byte): slicing the
        # RGB out first copied the picture and cost ~15x more than the conversion
        im = Image.fromarray(np.ascontiguousarray(a)).convert("L")
    else:
        im = Image.fromarray(np.ascontiguousarray(a.reshape(a.shape[0], a.shape[1])))
    factor = max(im.size) // WORK_MIN_SIDE
    if factor > 1:
        im = im.reduce(factor)
    return np.asarray(im)


# --------------------------------------------------------------------------------------------
# platform-side query variants of an upload


@dataclass(frozen=True)
class VariantPlan:
    """What the platform tries for one upload, besides its plain hash.

    ``rotations``: counter-rotations in degrees (PDQ itself tolerates about +-1 degree, so
    steps of 2 cover +-5); ``photo_box``: hash the photo region found by
    :func:`find_photo_box`; ``windows``: the survivor-side window set the bank holds -- the
    platform cuts the same relative windows from every frame it hashes (the whole upload, the
    photo box, each counter-rotation); ``crops``: crop hypotheses ``(keep, (x, y))`` -- "the
    upload is the part keeping ``keep`` of each side of the banked picture at that anchor" --
    for each, the banked windows are cut where they would lie in the upload.
    """

    rotations: tuple[float, ...] = ()
    photo_box: bool = False
    windows: str | tuple[Window, ...] = "none"
    crops: tuple[Window, ...] = ()
    #: hash each counter-rotated frame whole too (its corners are lost: a window is closer)
    rotated_whole: bool = True
    #: sub-windows ``(fraction, (x, y))`` of the upload, compared with the banked *whole*
    #: picture: for uploads that show more than the banked picture (she banked a crop)
    subwindows: tuple[Window, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.windows, str) and self.windows not in WINDOW_SETS:
            raise ValueError(f"unknown window set {self.windows!r}; known: {sorted(WINDOW_SETS)}")
        for deg in self.rotations:
            if not -45.0 <= float(deg) <= 45.0 or float(deg) == 0.0:
                raise ValueError(f"rotations must be non-zero angles within +-45 degrees; got {deg!r}")
        for keep, (x, y) in self.crops:
            if not 0.0 < keep < 1.0 or not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"crop hypotheses are (keep in (0, 1), (x, y) in [0, 1]^2); got {(keep, (x, y))!r}")
        for f, (x, y) in self.subwindows:
            if not 0.0 < f < 1.0 or not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"sub-windows are (fraction in (0, 1), (x, y) in [0, 1]^2); got {(f, (x, y))!r}")


#: The platform-side plan offered as an option (``bank.image_match.match_images(variants=...)``,
#: ``ncii-hash match --query-variants``): it needs nothing from survivors beyond today's
#: whole-picture hash. Counter-rotations on a uniform 1.5 degree grid (never exactly on a
#: benchmark angle) and the two photo-box guesses. Not the default: on 310 photos it lifts +-2
#: to +-4 degrees to 87-96%, +-5 to 79% and phone screenshots to 86% with no false match and
#: <= 1.9x the lookups, but leaves banners and crops where they were (docs/accuracy.md).
PLATFORM_VARIANTS = VariantPlan(rotations=(-4.5, -3.0, -1.5, 1.5, 3.0, 4.5), photo_box=True)

#: What the platform looks up for each upload when the bank holds survivors' shared windows
#: (``centre70``, submission version 3) -- the ``lean`` option of docs/accuracy.md: the photo
#: box (two guesses) as a whole frame, and ``centre70`` cut from the whole upload, from each
#: photo-box guess and from counter-rotations by +-2 and +-4 degrees (windows only: a rotated
#: frame loses its corners, its centre does not), each window compared with the banked windows
#: only. On 310 photos whose windows are banked: +-5 degrees 92.6-94.5%, caption banners 100%,
#: phone screenshots 86.5%, no false match, lookups 1.76x a dihedral lookup.
WINDOW_VARIANTS = VariantPlan(rotations=(-4.0, -2.0, 2.0, 4.0), photo_box=True, windows="centre70",
                              rotated_whole=False)


@dataclass(frozen=True)
class QueryVariants:
    """The hashes to look up for one upload; row 0 is always the plain hash of the whole."""

    hashes: np.ndarray  #: uint8 (K, 32)
    qualities: np.ndarray  #: int32 (K,)
    #: what each row is: "whole", "border" (strict border), "box" (photo box), "rot-2", ...;
    #: "<frame>/<window>" for a banked window cut from that frame, e.g. "whole/centre70"
    names: tuple[str, ...]
    photo_box: Optional[Box] = None  #: in pixels of the input, when found and used

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    def extra_rows(self) -> dict[Optional[str], np.ndarray]:
        """The rows besides the plain hash, grouped for like-for-like matching: ``None`` -> the
        whole frames (compared with whole pictures), a window's name -> that window cut from
        the frames (compared with the banked windows of that name); each uint8 (K, 32)."""
        groups: dict[Optional[str], list] = {}
        for name, h in zip(self.names[1:], self.hashes[1:]):
            groups.setdefault(name.partition("/")[2] or None, []).append(h)
        return {k: np.stack(v) for k, v in groups.items()}


def _hash(luma: np.ndarray) -> tuple[np.ndarray, int]:
    h, q, _ = core_pdq_hash(np.ascontiguousarray(luma), False)
    return h, int(q)


def _cut(a: np.ndarray, box: Box) -> np.ndarray:
    t, b, l, r = box
    return a[t:b, l:r]


def _crop_windows(w: int, h: int, windows: tuple[Window, ...], keep: float,
                  anchor: tuple[float, float]) -> list[tuple[Window, Box]]:
    """Where the banked ``windows`` lie in an upload that keeps ``keep`` of each side of the
    banked picture at ``anchor``; windows the crop cut into are skipped."""
    out = []
    for f, (ax, ay) in windows:
        if f > keep:
            continue
        size = f / keep  # the window's share of the upload's side
        x = (ax * (1 - f) - anchor[0] * (1 - keep)) / keep  # window's left edge, upload units
        y = (ay * (1 - f) - anchor[1] * (1 - keep)) / keep
        if x < -1e-9 or y < -1e-9 or x + size > 1 + 1e-9 or y + size > 1 + 1e-9:
            continue
        left, top = round(x * w), round(y * h)
        bw, bh = max(1, round(size * w)), max(1, round(size * h))
        left, top = min(max(0, left), w - bw), min(max(0, top), h - bh)
        out.append(((f, (ax, ay)), (top, top + bh, left, left + bw)))
    return out


def _rotation_source(luma: np.ndarray, windows: tuple[Window, ...], degrees: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The part of ``luma`` that every window of a counter-rotation by ``degrees`` about the
    centre samples from, cropped symmetrically so that its centre is the picture's (rotating it
    gives the windows the pixels a rotation of the whole picture would), and its offset
    ``(top, left)``."""
    h, w = luma.shape
    c, s = abs(np.cos(np.radians(degrees))), abs(np.sin(np.radians(degrees)))
    half_w = half_h = 0.0
    for t, b, l, r in _boxes(windows)(w, h):
        ex, ey = max(abs(l - w / 2), abs(r - w / 2)), max(abs(t - h / 2), abs(b - h / 2))
        half_w, half_h = max(half_w, ex * c + ey * s), max(half_h, ex * s + ey * c)
    dx = max(0, int(w / 2 - half_w) - 2)  # 2 pixels of slack for nearest-neighbour rounding
    dy = max(0, int(h / 2 - half_h) - 2)
    return luma[dy:h - dy, dx:w - dx], (dy, dx)


def rotate_luma(luma: np.ndarray, degrees: float, fill: Optional[int] = None) -> np.ndarray:
    """``luma`` rotated counter-clockwise by ``degrees`` about its centre on the same canvas;
    the corners the rotation uncovers take the picture's mean level (closer on average to
    the lost content than black). Nearest-neighbour sampling: PDQ's own box filter smooths
    far more than bilinear would, at a third of the cost (same recall on 80 photos)."""
    if fill is None:
        fill = int(luma.mean() + 0.5)
    return np.asarray(Image.fromarray(luma).rotate(degrees, resample=Image.NEAREST, expand=False, fillcolor=fill))


def query_variants(pixels: np.ndarray, plan: VariantPlan = VariantPlan()) -> QueryVariants:
    """Every hash of ``plan`` for one upload (uint8 RGB[A] or grey pixels), from one luma."""
    luma = working_luma(pixels)
    windows = WINDOW_SETS[plan.windows] if isinstance(plan.windows, str) else tuple(plan.windows)
    hashes: list[np.ndarray] = []
    qualities: list[int] = []
    names: list[str] = []

    def add(name: str, a: np.ndarray) -> None:
        h, q = _hash(a)
        hashes.append(h)
        qualities.append(q)
        names.append(name)

    def frame(name: str, a: np.ndarray, *, whole: bool = True) -> None:
        if whole:
            add(name, a)
        for (f, anchor), box in zip(windows, _boxes(windows)(a.shape[1], a.shape[0])):
            add(f"{name}/{window_name(f, anchor)}", _cut(a, box))

    frame("whole", luma)
    box = None
    if plan.photo_box:
        # two guesses: the strict border of .borders (a letterbox, a pad: one flat band per
        # side) and the band peeler (bars with text, banners); they differ when the photo
        # itself has flat edges (objects on white, skies), which no detector can tell apart
        strict, box = find_content_box(luma), find_photo_box(luma)
        if strict is not None:
            frame("border", _cut(luma, strict))
        if box is not None and (strict is None or max(abs(a - b) for a, b in zip(box, strict)) > 2):
            frame("box", _cut(luma, box))
        box = box or strict
    for deg in plan.rotations:
        if plan.rotated_whole or not windows:
            frame(f"rot{deg:+g}", rotate_luma(luma, deg), whole=plan.rotated_whole)
            continue
        # windows only: rotate just the centred part of the picture the windows' pixels come
        # from (same centre, so the same pixels as rotating the whole; ~half the work)
        part, (dy, dx) = _rotation_source(luma, windows, deg)
        turned = rotate_luma(part, deg, fill=0)  # the windows never reach the uncovered corners
        for (f, anchor), (t, b, l, r) in zip(windows, _boxes(windows)(luma.shape[1], luma.shape[0])):
            add(f"rot{deg:+g}/{window_name(f, anchor)}", turned[t - dy:b - dy, l - dx:r - dx])
    for f, anchor in plan.subwindows:
        add(f"sub{f:g}@{anchor[0]:g},{anchor[1]:g}", _cut(luma, window_box(luma.shape[1], luma.shape[0], f, anchor)))
    for keep, anchor in plan.crops:
        for window, f_box in _crop_windows(luma.shape[1], luma.shape[0], windows, keep, anchor):
            add(f"crop{keep:g}@{anchor[0]:g},{anchor[1]:g}/{window_name(*window)}", _cut(luma, f_box))
    if box is not None and luma.shape[:2] != np.shape(pixels)[:2]:
        sy, sx = np.shape(pixels)[0] / luma.shape[0], np.shape(pixels)[1] / luma.shape[1]
        box = (round(box[0] * sy), round(box[1] * sy), round(box[2] * sx), round(box[3] * sx))
    return QueryVariants(hashes=np.ascontiguousarray(np.stack(hashes)), qualities=np.asarray(qualities, np.int32),
                         names=tuple(names), photo_box=box)


def window_name(fraction: float, anchor: tuple[float, float]) -> str:
    """A window's name in query variant names and submissions: ``centre70``, ``at0,1-90``."""
    tag = "centre" if anchor == (0.5, 0.5) else f"at{anchor[0]:g},{anchor[1]:g}-"
    return f"{tag}{round(fraction * 100)}"


def window_hashes(pixels: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """uint8 (1 + K, 32): the whole picture's PDQ hash (full resolution, as ``pdq_hash``
    computes it) then one per pixel box of it."""
    a = np.asarray(pixels)
    rows = [core_pdq_hash(np.ascontiguousarray(a), False)[0]]
    rows += [core_pdq_hash(np.ascontiguousarray(_cut(a, box)), False)[0] for box in boxes]
    return np.ascontiguousarray(np.stack(rows))


def shared_window_hash(pixels: np.ndarray, name: str = SURVIVOR_WINDOW_SET) -> tuple[np.ndarray, int]:
    """``(hash uint8 (32,), quality)`` of the one-window set ``name`` (a submission's shared
    window, e.g. ``centre70``) of the picture's full-resolution pixels -- the pixels ``pdq_hash``
    hashes, so the survivor's device and every platform cut the same box."""
    a = np.asarray(pixels)
    boxes = survivor_windows(a.shape[1], a.shape[0], name)
    if len(boxes) != 1:
        raise ValueError(f"{name!r} is not a one-window set; shared windows: "
                         f"{sorted(k for k, v in WINDOW_SETS.items() if len(v) == 1)}")
    h, q, _ = core_pdq_hash(np.ascontiguousarray(_cut(a, boxes[0])), False)
    return h, int(q)


def survivor_hashes(pixels: np.ndarray, window_set: str = SURVIVOR_WINDOW_SET) -> np.ndarray:
    """uint8 (1 + K, 32): the survivor-side hashes of one picture, the whole picture's then one
    per window of the set."""
    a = np.asarray(pixels)
    return window_hashes(a, survivor_windows(a.shape[1], a.shape[0], window_set))
