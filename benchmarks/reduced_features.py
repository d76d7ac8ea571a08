"""Reduced local-feature signals (issue 20): what a bank could hold instead of a full feature set.

A full feature set (``ncii_hash.features``) holds up to 256 keypoints, each with its position
to 1/8 pixel, orientation, pyramid level and 256-bit descriptor; the inversion benchmark
rebuilds a recognisable picture from it. Each :class:`ReducedSignal` keeps less on the bank
side, while the upload (the query, which the platform holds anyway) keeps its full geometry:

* ``features``: fewer keypoints a picture (the ones the suppression spreads widest);
* ``grid``: positions snapped to the centre of their cell in a ``grid`` x ``grid`` partition of
  the frame (``None``: exact; ``1``: no positions at all -- every keypoint at the centre).

Coarsening and matching are the library's (:mod:`ncii_hash.features.coarse`): exact positions
verify with :func:`ncii_hash.features.verify_features`, unchanged; grid positions with its
reprojection tolerance widened by half a cell diagonal; no positions with the upload's
geometry (one rotation and scale among the correspondences, spread measured on the query).

Used by ``bench_reduced_features.py`` (recall and false matches, scored by
``quality_features.evaluate``) and ``bench_inversion.py`` (what an attacker rebuilds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ncii_hash.features import FeatureSet
from ncii_hash.features import coarse
from ncii_hash.features import orb as F

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
            return coarse.coarsen_positions(fs, self.grid)
        return FeatureSet.from_bytes(fs.to_bytes())

    @property
    def has_positions(self) -> bool:
        return self.grid is None or self.grid > 1

    def verify(self, q: FeatureSet, c: FeatureSet, **rule) -> F.GeometricMatch:
        if self.grid is None:
            return F.verify_features(q, c, **rule)
        return coarse.verify_coarse(q, c, grid=self.grid, **rule)

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
