"""Coarsened feature sets: local features with less of *where* each keypoint is (issue 20).

A full feature set places each keypoint to 1/8 pixel, and a picture can be rebuilt from the
descriptors laid back at their places (``benchmarks/bench_inversion.py``). A coarsened set
keeps every descriptor, orientation and pyramid level but moves each keypoint to the centre of
its cell of a ``grid`` x ``grid`` partition of the frame; ``grid`` 1 keeps no position at all
(every keypoint at the frame's centre). The records are then stored by cell and descriptor,
so their order says nothing of the original one (the suppression's, which follows position).

Matching a query (an upload, which keeps its exact geometry) against a coarsened set:

* ``grid`` >= 2: :func:`~ncii_hash.features.verify_features` with its reprojection tolerance
  widened by half a cell diagonal (:func:`coarse_tolerance`);
* ``grid`` 1: no transform can be fitted, so :func:`verify_without_positions` uses the
  upload's geometry: the correspondences must agree on one rotation and one scale (the fullest
  bin of orientation and pyramid-level differences, as the feature index's vote does), and the
  spread is that of the inliers on the *query*, against the hull of the query's own keypoints.

Nothing here is a default: sets are coarsened only when a caller asks. The serialized form is
the ordinary one (a position-free set still stores its 4 position bytes, all equal); a format
that drops them would be a new feature version.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .orb import (DESCRIPTOR_BYTES, MIN_INLIERS, MIN_SPREAD, MIN_TIGHT_INLIERS, NO_MATCH, REPROJECTION, FeatureSet,
                  GeometricMatch, _hull_area, correspondences, tight_count, verify_features)

#: Width (degrees) of a bin of the rotation vote without positions; each bin is counted with
#: its neighbour, so a rotation anywhere within one bin width is found whole.
ANGLE_BIN = 30.0


def _check_grid(grid: int) -> None:
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
        raise ValueError(f"grid must be a whole number of cells a side, at least 1; got {grid!r}")


def coarsen_positions(fs: FeatureSet, grid: int) -> FeatureSet:
    """``fs`` with every keypoint at the centre of its cell of a ``grid`` x ``grid`` partition
    of the frame (1: no positions), stored by cell, then by descriptor bytes."""
    _check_grid(grid)
    cell = np.array([fs.width, fs.height], np.float64) / grid
    idx = np.clip(np.floor(fs.xy / cell), 0, grid - 1)
    xy = ((idx + 0.5) * cell).astype(np.float32)
    keys = [fs.descriptors[:, k] for k in range(DESCRIPTOR_BYTES - 1, -1, -1)]
    order = np.lexsort(keys + [idx[:, 0], idx[:, 1]])
    out = replace(fs, xy=xy[order], angle=fs.angle[order], octave=fs.octave[order],
                  descriptors=np.ascontiguousarray(fs.descriptors[order]))
    return FeatureSet.from_bytes(out.to_bytes())


def coarse_tolerance(width: int, height: int, grid: int) -> float:
    """Reprojection tolerance (pixels) against positions on a ``grid`` x ``grid`` partition of a
    ``width`` x ``height`` frame: the exact rule's plus half a cell diagonal."""
    _check_grid(grid)
    return REPROJECTION + 0.5 * float(np.hypot(width / grid, height / grid))


def verify_without_positions(q: FeatureSet, c: FeatureSet, *, min_inliers: int = MIN_INLIERS,
                             min_spread: float = MIN_SPREAD, min_tight: int = MIN_TIGHT_INLIERS) -> GeometricMatch:
    """Does query ``q`` show the picture of ``c``, whose positions are not known? Correspondences
    that agree on one rotation and one pyramid-level difference are the inliers; ``spread`` is
    their hull on the query over the hull of all the query's keypoints. ``transform`` is None."""
    if not (q.usable and c.usable):
        return NO_MATCH
    pairs = correspondences(q, c)
    if len(pairs) < 6:
        return GeometricMatch(0, 0.0, None, False)
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
    spread = _hull_area(q.xy[qi[best]]) / max(1.0, _hull_area(q.xy)) if n else 0.0
    tight = tight_count(q, c, qi[best], ci[best])
    ok = n >= min_inliers and spread >= min_spread and tight >= min_tight
    return GeometricMatch(n, spread, None, ok, 0.0, tight)


def verify_coarse(q: FeatureSet, c: FeatureSet, *, grid: int, **rule) -> GeometricMatch:
    """Verify query ``q`` against ``c``, a set coarsened to ``grid`` (:func:`coarsen_positions`);
    ``rule``: the decision rule's keywords (``min_inliers``, ``min_spread``, ``min_tight``)."""
    _check_grid(grid)
    if grid == 1:
        return verify_without_positions(q, c, **rule)
    return verify_features(q, c, reprojection=coarse_tolerance(c.width, c.height, grid), **rule)
