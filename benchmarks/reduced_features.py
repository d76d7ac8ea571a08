"""Reduced local-feature signals (issue 20): what a bank could hold instead of a full feature set.

A full feature set (``ncii_hash.features``) holds up to 256 keypoints, each with its position
to 1/8 pixel, orientation, pyramid level and 256-bit descriptor; the inversion benchmark
rebuilds a recognisable picture from it. Each :class:`ReducedSignal` keeps less on the bank
side, while the upload (the query, which the platform holds anyway) keeps its full geometry:

* ``features``: fewer keypoints a picture (the ones the suppression spreads widest);
* ``grid``: positions snapped to the centre of their cell in a ``grid`` x ``grid`` partition of
  the frame (``None``: exact; ``1``: no positions at all -- every keypoint at the centre).

How each is matched (:meth:`ReducedSignal.verify`):

* exact positions: :func:`ncii_hash.features.verify_features`, unchanged;
* grid positions: the same verification with the reprojection tolerance widened by half a
  cell diagonal (a banked keypoint is somewhere in its cell);
* no positions: no transform can be fitted on the bank side, so the rule uses the upload's
  geometry: mutual nearest descriptors that pass the ratio test, kept if they agree on one
  rotation and scale (the fullest bin of orientation and pyramid-level differences, as the
  index's Hough vote does), and the spread of those inliers measured on the *query* (the
  share of the hull of the query's keypoints that the inliers' hull covers).

Used by ``bench_reduced_features.py`` (recall and false matches, scored by
``quality_features.evaluate``) and ``bench_inversion.py`` (what an attacker rebuilds).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from ncii_hash.features import FeatureSet
from ncii_hash.features import orb as F

#: Bins of orientation difference (degrees) of the positionless rule's rotation vote.
ANGLE_BIN = 30.0


def quantise_positions(fs: FeatureSet, grid: int) -> FeatureSet:
    """``fs`` with every keypoint moved to the centre of its cell of a ``grid`` x ``grid``
    partition of the frame (``grid`` 1: all at the frame's centre). Descriptors, orientations
    and levels are kept; the set still serializes (positions stay inside the frame)."""
    if grid < 1:
        raise ValueError(f"grid must be at least 1 cell a side; got {grid}")
    size = np.array([fs.width, fs.height], np.float64)
    cell = size / grid
    idx = np.clip(np.floor(fs.xy / cell), 0, grid - 1)
    xy = ((idx + 0.5) * cell).astype(np.float32)
    return replace(fs, xy=xy)


def cell_tolerance(width: int, height: int, grid: int) -> float:
    """Reprojection tolerance (pixels) for positions snapped to a grid: the exact rule's
    tolerance plus half a cell diagonal."""
    return F.REPROJECTION + 0.5 * float(np.hypot(width / grid, height / grid))


def verify_positionless(q: FeatureSet, c: FeatureSet, *, min_inliers: int = F.MIN_INLIERS,
                        min_spread: float = F.MIN_SPREAD, min_tight: int = F.MIN_TIGHT_INLIERS) -> F.GeometricMatch:
    """Verification when the banked set ``c`` has no positions: correspondences that agree on
    one rotation (``ANGLE_BIN`` bins, each with its neighbour) and one level difference; the
    spread is the inliers' hull on the query ``q`` over the hull of all of its keypoints (the
    upload's geometry)."""
    if not (q.usable and c.usable):
        return F.NO_MATCH
    pairs = F.correspondences(q, c)
    if len(pairs) < 6:
        return F.GeometricMatch(0, 0.0, None, False)
    qi, ci = pairs[:, 0], pairs[:, 1]
    nbins = int(round(360.0 / ANGLE_BIN))
    turn = np.floor(((c.angle[ci] - q.angle[qi]) % 360.0) / ANGLE_BIN).astype(np.int64) % nbins
    level = c.octave[ci].astype(np.int64) - q.octave[qi].astype(np.int64)
    best = np.zeros(len(pairs), bool)
    for b in range(nbins):
        in_turn = (turn == b) | (turn == (b + 1) % nbins)
        for lv in np.unique(level[in_turn]):
            sel = in_turn & (np.abs(level - lv) <= 1)
            if sel.sum() > best.sum():
                best = sel
    n = int(best.sum())
    # the share of the query's own keypoint hull the inliers span: a phone screenshot shows the
    # picture in part of the upload, where nearly all of the upload's corners are
    spread = F._hull_area(q.xy[qi[best]]) / max(1.0, F._hull_area(q.xy)) if n else 0.0
    d = np.bitwise_count(q.descriptors[qi[best]].view(np.uint64) ^ c.descriptors[ci[best]].view(np.uint64)).sum(axis=1)
    tight = int((d <= F.TIGHT_DISTANCE).sum())
    ok = n >= min_inliers and spread >= min_spread and tight >= min_tight
    return F.GeometricMatch(n, spread, None, ok, 0.0, tight)


@dataclass(frozen=True)
class ReducedSignal:
    """What the bank keeps of a picture's local features, and how a query is verified against it."""

    name: str
    features: int = F.MAX_FEATURES  #: keypoints kept a picture
    grid: Optional[int] = None  #: None: exact positions; g: snapped to a g x g grid; 1: none

    def bank(self, pixels: np.ndarray) -> FeatureSet:
        """The banked set of decoded pixels, serialized and read back (what a bank stores)."""
        fs = F.extract_features(pixels, max_features=self.features)
        return self.reduce(fs)

    def reduce(self, fs: FeatureSet) -> FeatureSet:
        """A full banked set reduced to this signal: the first ``features`` keypoints (the
        suppression's order, widest-spread first), positions coarsened, stored in an order
        that depends only on what is kept (cell, then descriptor bytes)."""
        if len(fs) > self.features:
            fs = FeatureSet(fs.width, fs.height, fs.xy[: self.features], fs.angle[: self.features],
                            fs.octave[: self.features], fs.descriptors[: self.features])
        if self.grid is not None:
            fs = quantise_positions(fs, self.grid)
            # the stored order (the suppression's, widest-spread first) says something of where
            # a keypoint was: store by cell, then descriptor
            cell = np.floor(fs.xy / (np.array([fs.width, fs.height]) / self.grid)).astype(np.int64)
            keys = [fs.descriptors[:, k] for k in range(F.DESCRIPTOR_BYTES - 1, -1, -1)]
            order = np.lexsort(keys + [cell[:, 0], cell[:, 1]])
            fs = FeatureSet(fs.width, fs.height, fs.xy[order], fs.angle[order], fs.octave[order],
                            fs.descriptors[order])
        return FeatureSet.from_bytes(fs.to_bytes())

    @property
    def has_positions(self) -> bool:
        return self.grid is None or self.grid > 1

    def verify(self, q: FeatureSet, c: FeatureSet, **rule) -> F.GeometricMatch:
        if self.grid is None:
            return F.verify_features(q, c, **rule)
        if self.grid == 1:
            return verify_positionless(q, c, **rule)
        return F.verify_features(q, c, reprojection=cell_tolerance(c.width, c.height, self.grid), **rule)

    def bytes_per_feature(self) -> float:
        """What the signal really needs a keypoint: descriptor 32 B, angle and level 1 B each,
        position 4 B exact, ceil(2 log2(grid) / 8) B on a grid, none without positions."""
        pos = 4.0 if self.grid is None else float(np.ceil(2 * np.log2(self.grid) / 8)) if self.grid > 1 else 0.0
        return F.DESCRIPTOR_BYTES + 2.0 + pos


#: Most telling first (a benchmark that runs out of time has measured these).
SIGNALS = (
    ReducedSignal("full (today's opt-in)"),
    ReducedSignal("no positions", grid=1),
    ReducedSignal("grid 8x8", grid=8),
    ReducedSignal("64 features", features=64),
    ReducedSignal("grid 16x16", grid=16),
    ReducedSignal("64 features, grid 8x8", features=64, grid=8),
)


class SignalRule:
    """What ``quality_features.evaluate`` reads of the features module, for one signal: its
    verification and the decision rule's constants (the library's, unchanged)."""

    def __init__(self, signal: ReducedSignal):
        self.signal = signal
        self.MIN_INLIERS = F.MIN_INLIERS
        self.MIN_SPREAD = F.MIN_SPREAD
        self.MIN_TIGHT_INLIERS = F.MIN_TIGHT_INLIERS
        self.TIGHT_DISTANCE = F.TIGHT_DISTANCE
        self.MAX_FEATURES = F.MAX_FEATURES
        self.FEATURE_VERSION = F.FEATURE_VERSION

    def verify_features(self, q: FeatureSet, c: FeatureSet) -> F.GeometricMatch:
        return self.signal.verify(q, c)


# --------------------------------------------------------------------------------------------
# a stronger attack for coarse positions: learned layout


#: Descriptor principal components summed per cell by :func:`layout_vector`.
LAYOUT_COMPONENTS = 4
#: Cells a side of the layout attack when the signal keeps exact positions.
LAYOUT_GRID_EXACT = 16


def descriptor_basis(descriptor_sets, components: int = LAYOUT_COMPONENTS) -> np.ndarray:
    """(256, components): the leading principal axes of descriptor bits (as +1/-1) of training sets."""
    x = np.concatenate([np.unpackbits(d, axis=1).astype(np.float64) * 2 - 1 for d in descriptor_sets])
    x -= x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return vt[:components].T


def layout_vector(fs: FeatureSet, grid: int, basis: np.ndarray) -> np.ndarray:
    """(grid * grid * (3 + components),) float32: per cell of a ``grid`` x ``grid`` partition,
    the keypoints' count, the sum of their orientation vectors (ORB's orientation points to
    the brighter side of the patch: a local brightness gradient) and the sum of their
    descriptors' principal components. What an attacker can read off a set with coarse
    positions, in a fixed order a regression can learn from."""
    k = 3 + basis.shape[1]
    out = np.zeros((grid * grid, k), np.float64)
    if len(fs):
        cell = np.array([fs.width, fs.height], np.float64) / grid
        ix = np.clip(np.floor(fs.xy / cell), 0, grid - 1).astype(np.int64)
        idx = ix[:, 1] * grid + ix[:, 0]
        a = np.deg2rad(fs.angle.astype(np.float64))
        signs = np.unpackbits(fs.descriptors, axis=1).astype(np.float64) * 2 - 1
        vals = np.column_stack([np.ones(len(fs)), np.cos(a), np.sin(a), signs @ basis])
        np.add.at(out, idx, vals)
    return out.ravel().astype(np.float32)
