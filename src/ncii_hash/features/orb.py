"""Local binary features: a geometry-robust second signal beside PDQ (project issue #8).

PDQ looks at the whole picture through a 64x64 grid, so a 10% crop, a 5 degree rotation, a
caption banner or a screenshot frame moves it past any safe threshold. Local features survive
those edits: an image becomes a small set of keypoints (position, orientation, scale), each
with a 256-bit binary descriptor of the patch around it (OpenCV's ORB: oriented FAST corners
and rotated BRIEF intensity comparisons). Two images match when enough descriptors agree *and*
their keypoints agree on one similarity transform (RANSAC), which distinct photos almost never
do.

**Privacy.** A feature set reveals much more than a PDQ hash. Descriptors are intensity
comparisons of small patches at known places; they can be inverted into a recognisable
approximation of the scene (Pittaluga et al., "Revealing scenes by inverting structure from
motion reconstructions", CVPR 2019; ``benchmarks/bench_inversion.py`` measures it for these
features). Feature sets are therefore never computed unless asked for (``features=True`` /
``--features``), a submission that carries them says so, and banks that hold them are as
sensitive as the images' thumbnails. See docs/accuracy.md, "Local features".

Pipeline (all of it versioned by :data:`FEATURE_VERSION`; a change of any constant below that
alters the features means a new version):

1. grey luma of the upright image, resized (area filter) so the longer side is at most
   :data:`WORK_SIDE` pixels -- features then live in the same frame whatever the resolution;
2. ORB corners on an 8-level pyramid (x1.2), :data:`DETECT` candidates;
3. adaptive non-maximal suppression keeps the :data:`MAX_FEATURES` corners that are strongest
   in the largest neighbourhood -- fewer, stronger and spread over the whole picture, so a crop
   or a banner cannot remove most of them;
4. the 256-bit rotated-BRIEF descriptor of each kept corner.

Serialized (:meth:`FeatureSet.to_bytes`) as ``b"NCIILF"``, version, frame size, count, then
per feature x, y (uint16, 1/8 pixel), angle (uint8, 360/256 degrees), octave (uint8) and the
32 descriptor bytes: 38 bytes a feature, under 10 KiB an image.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..errors import FeatureError
from .._core import hamming_knn, lf_anms
from .._util.optional import optional_import
from ..image.io import ImageError, ImageSource, describe_source, load_pixels

FEATURE_VERSION = 1
MAGIC = b"NCIILF"
#: Images are resized (up or down) to about this many pixels before detection, so features
#: live at the same scale whatever the resolution, and the longer side is capped.
WORK_AREA = 512 * 384
WORK_SIDE = 1024
#: Corners detected before suppression, and kept after it: banked sets hold MAX_FEATURES;
#: a query keeps QUERY_FEATURES (more corners on the query side find a picture that fills
#: only part of the upload -- a phone screenshot -- and are never stored).
DETECT = 1500
MAX_FEATURES = 256
QUERY_FEATURES = 512
#: A query is described twice: in the bank's frame and in one of twice the area. The second
#: meets pictures that fill only part of the upload (a phone screenshot shows the photo at
#: about 0.6 of its size) at the bank's scale; the first serves everything else.
QUERY_AREAS = (1.0, 2.0)
#: The most features a serialized set may hold.
MAX_SET_FEATURES = 1024
#: FAST corner contrast threshold (grey levels).
FAST_THRESHOLD = 8
DESCRIPTOR_BYTES = 32
#: Images with a shorter side below this carry too little detail to describe (an upscaled
#: thumbnail's corners are interpolation artefacts): they get an empty, unusable set.
MIN_INPUT_SIDE = 32
#: Below this many features an image cannot be matched by this signal (flat or tiny images).
MIN_FEATURES = 12
_HEADER = struct.Struct("<6sHHHH")  # magic, version, width, height, count
_RECORD = np.dtype([("x", "<u2"), ("y", "<u2"), ("angle", "u1"), ("octave", "u1"),
                    ("desc", "u1", (DESCRIPTOR_BYTES,))])
_SUBPIXEL = 8.0


def _cv2() -> Any:
    return optional_import("cv2", extra="features", purpose="local features", package="OpenCV (opencv-python-headless)")


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """The local features of one image, in a frame of ``width`` x ``height`` pixels."""

    width: int
    height: int
    xy: np.ndarray  #: float32 (N, 2) keypoint positions in the frame
    angle: np.ndarray  #: float32 (N,) orientation in degrees, 0..360
    octave: np.ndarray  #: uint8 (N,) pyramid level (scale 1.2**octave)
    descriptors: np.ndarray  #: uint8 (N, 32)

    def __len__(self) -> int:
        return int(self.descriptors.shape[0])

    @property
    def usable(self) -> bool:
        """Whether there are enough features to match on."""
        return len(self) >= MIN_FEATURES

    def to_bytes(self) -> bytes:
        rec = np.zeros(len(self), dtype=_RECORD)
        rec["x"] = np.clip(np.rint(self.xy[:, 0] * _SUBPIXEL), 0, 65535)
        rec["y"] = np.clip(np.rint(self.xy[:, 1] * _SUBPIXEL), 0, 65535)
        rec["angle"] = np.rint(self.angle * (256.0 / 360.0)).astype(np.int64) % 256
        rec["octave"] = self.octave
        rec["desc"] = self.descriptors
        return _HEADER.pack(MAGIC, FEATURE_VERSION, self.width, self.height, len(self)) + rec.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<feature bytes>") -> "FeatureSet":
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise FeatureError(f"{source}: truncated feature set ({len(data)} bytes)")
        magic, version, width, height, count = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise FeatureError(f"{source}: not an ncii_hash feature set")
        if version != FEATURE_VERSION:
            raise FeatureError(f"{source}: feature set version {version}; this ncii_hash reads "
                               f"version {FEATURE_VERSION} (re-extract the features)")
        if not (1 <= width <= WORK_SIDE and 1 <= height <= WORK_SIDE) or count > MAX_SET_FEATURES:
            raise FeatureError(f"{source}: implausible feature set header "
                               f"({width}x{height}, {count} features)")
        body = data[_HEADER.size:]
        if len(body) != count * _RECORD.itemsize:
            raise FeatureError(f"{source}: {len(body)} bytes of features, expected "
                               f"{count * _RECORD.itemsize} for {count}")
        rec = np.frombuffer(body, dtype=_RECORD)
        xy = np.stack([rec["x"], rec["y"]], axis=1).astype(np.float32) / _SUBPIXEL
        if count and (xy[:, 0].max() > width or xy[:, 1].max() > height):
            raise FeatureError(f"{source}: keypoint outside the {width}x{height} frame")
        if count and rec["octave"].max() > 7:
            raise FeatureError(f"{source}: pyramid level out of range")
        return cls(width, height, xy, rec["angle"].astype(np.float32) * (360.0 / 256.0),
                   rec["octave"].copy(), np.ascontiguousarray(rec["desc"]))

    @classmethod
    def empty(cls, width: int = 1, height: int = 1) -> "FeatureSet":
        return cls(width, height, np.zeros((0, 2), np.float32), np.zeros(0, np.float32),
                   np.zeros(0, np.uint8), np.zeros((0, DESCRIPTOR_BYTES), np.uint8))


def _grey_frame(pixels: np.ndarray, area: float = 1.0) -> np.ndarray:
    cv2 = _cv2()
    if pixels.ndim == 3:
        grey = cv2.cvtColor(np.ascontiguousarray(pixels[:, :, :3]), cv2.COLOR_RGB2GRAY)
    else:
        grey = np.ascontiguousarray(pixels)
    h, w = grey.shape
    size = _frame_size(w, h, area)
    if size != (w, h):
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR)
    return grey


def _frame_size(w: int, h: int, area: float = 1.0) -> tuple[int, int]:
    """(width, height) of the work frame for a ``w`` x ``h`` image (``area`` x WORK_AREA)."""
    scale = min(float(np.sqrt(area * WORK_AREA / (h * w))), WORK_SIDE / max(h, w))
    if abs(scale - 1.0) <= 1e-3:
        return w, h
    return max(1, min(WORK_SIDE, round(w * scale))), max(1, min(WORK_SIDE, round(h * scale)))


def _suppress(pts: np.ndarray, response: np.ndarray, keep: int) -> np.ndarray:
    """Adaptive non-maximal suppression: for each corner the distance to the nearest corner
    that is clearly stronger (response > own / 0.9); keep the ``keep`` largest (C++ core).
    Returns indices into ``pts``, largest radius first."""
    order = np.argsort(-response, kind="stable")
    chosen = lf_anms(np.ascontiguousarray(pts[order], dtype=np.float32),
                           np.ascontiguousarray(response[order], dtype=np.float32), keep)
    return order[chosen]


def extract_features(pixels: np.ndarray, *, max_features: int = MAX_FEATURES, area: float = 1.0) -> FeatureSet:
    """The feature set of decoded pixels (``(H, W, 3)`` RGB or ``(H, W)`` grey uint8), in a
    frame of ``area`` times the bank's work area (1 for banked sets)."""
    cv2 = _cv2()
    if not 1 <= max_features <= MAX_SET_FEATURES:
        raise ValueError(f"max_features must be 1..{MAX_SET_FEATURES}, got {max_features}")
    if not 0.25 <= area <= 4.0:
        raise ValueError(f"area must be within 0.25..4, got {area}")
    if min(pixels.shape[:2]) < MIN_INPUT_SIDE:
        return FeatureSet.empty(*_frame_size(pixels.shape[1], pixels.shape[0], area))
    grey = _grey_frame(pixels, area)
    h, w = grey.shape
    orb = cv2.ORB_create(nfeatures=DETECT, scaleFactor=1.2, nlevels=8, edgeThreshold=31,
                         firstLevel=0, WTA_K=2, patchSize=31, fastThreshold=FAST_THRESHOLD)
    kps = orb.detect(grey, None)
    if not kps:
        return FeatureSet.empty(w, h)
    pts = np.array([k.pt for k in kps], dtype=np.float32)
    resp = np.array([k.response for k in kps], dtype=np.float32)
    kept = [kps[i] for i in _suppress(pts, resp, max_features)]
    kept, desc = orb.compute(grey, kept)
    if desc is None or not kept:
        return FeatureSet.empty(w, h)
    xy = np.array([k.pt for k in kept], dtype=np.float32)
    ang = np.array([k.angle for k in kept], dtype=np.float32) % 360.0
    octave = np.array([k.octave for k in kept], dtype=np.uint8)
    # the serialized form is the canonical one: round-trip so that a set matched right after
    # extraction behaves exactly like the same set read back from a bank or a submission
    fs = FeatureSet(w, h, xy, ang, octave, np.ascontiguousarray(desc, dtype=np.uint8))
    return FeatureSet.from_bytes(fs.to_bytes())


def query_features(pixels: np.ndarray) -> list[FeatureSet]:
    """The sets a query image is searched with: :data:`QUERY_FEATURES` corners in each frame
    of :data:`QUERY_AREAS`. A banked image matches the query if it verifies against any."""
    return [extract_features(pixels, max_features=QUERY_FEATURES, area=a) for a in QUERY_AREAS]


def image_features(source: ImageSource, *, query: bool = False, max_pixels: Optional[int] = None) -> FeatureSet:
    """Decode an image (path, bytes, PIL image or array; EXIF orientation applied) and
    return its feature set: :data:`MAX_FEATURES` for a bank, :data:`QUERY_FEATURES` with
    ``query=True`` (in the bank's frame; :func:`query_features` gives every query frame).
    Raises :class:`ImageError` for undecodable input."""
    pixels = load_pixels(source, max_pixels=max_pixels)
    try:
        return extract_features(pixels, max_features=QUERY_FEATURES if query else MAX_FEATURES)
    except ImageError:
        raise
    except Exception as exc:  # pragma: no cover - OpenCV failures are not expected
        raise FeatureError(f"{describe_source(source)}: feature extraction failed: {exc}") from exc


# --------------------------------------------------------------------------------------------
# pairwise verification


#: Descriptor pairs farther apart than this (of 256 bits) are not correspondences.
MATCH_DISTANCE = 64
#: Lowe's ratio test on Hamming distances: best < RATIO * second best.
RATIO = 0.8
#: RANSAC / guided-matching tolerance, pixels in the work frame.
REPROJECTION = 6.0
#: Accepted similarity-transform scale range (a 2x zoom of a crop up to a 1/4 screenshot).
SCALE_RANGE = (0.2, 5.0)
#: Decision rule: at least this many geometrically consistent correspondences ...
MIN_INLIERS = 40
#: ... of which at least this many have descriptors within TIGHT_DISTANCE bits: a copy of the
#: same picture reproduces its patches closely; two different photos of the same scene (the
#: same monument from elsewhere, the same objects rearranged) agree on geometry but their
#: patches differ more (measured: docs/accuracy.md) ...
MIN_TIGHT_INLIERS = 18
TIGHT_DISTANCE = 32
#: ... and whose convex hull covers at least this share of the *candidate's* frame (the banked
#: picture: a crop or a screenshot shows a part of it, distinct photos that share a logo, a
#: text or a texture agree on a small patch only).
MIN_SPREAD = 0.06


@dataclass(frozen=True)
class GeometricMatch:
    """The outcome of verifying one query against one candidate."""

    inliers: int  #: correspondences consistent with the transform
    spread: float  #: convex-hull area of the inliers in the candidate / candidate frame area
    transform: Optional[np.ndarray]  #: 2x3 similarity, query frame -> candidate frame
    is_match: bool
    #: inliers / features of the smaller side that fall inside the other's frame: the share
    #: of the common area's corners the transform explains
    explained: float = 0.0
    tight: int = 0  #: inliers whose descriptors are within TIGHT_DISTANCE bits

    @property
    def scale(self) -> float:
        if self.transform is None:
            return 0.0
        return float(np.sqrt(abs(np.linalg.det(self.transform[:, :2]))))

    @property
    def rotation_degrees(self) -> float:
        if self.transform is None:
            return 0.0
        return float(np.degrees(np.arctan2(self.transform[1, 0], self.transform[0, 0])))


NO_MATCH = GeometricMatch(0, 0.0, None, False)


def _two_nearest(q: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids (Nq, 2), distances (Nq, 2)) of each query descriptor's two nearest in ``c``."""
    ids, dist = hamming_knn(c, q, 2, threads=1)
    return ids.reshape(len(q), 2), dist.reshape(len(q), 2)


def correspondences(q: FeatureSet, c: FeatureSet) -> np.ndarray:
    """Putative correspondences (M, 2) [query index, candidate index]: mutual nearest
    neighbours within :data:`MATCH_DISTANCE` that pass the ratio test."""
    if len(q) < 2 or len(c) < 2:
        return np.zeros((0, 2), np.int64)
    fwd_ids, fwd_d = _two_nearest(q.descriptors, c.descriptors)
    back_ids, _ = _two_nearest(c.descriptors, q.descriptors)
    qi = np.arange(len(q))
    best = fwd_ids[:, 0]
    ok = (fwd_d[:, 0] <= MATCH_DISTANCE) & (fwd_d[:, 0] < RATIO * fwd_d[:, 1])
    ok &= back_ids[best, 0] == qi
    return np.stack([qi[ok], best[ok]], axis=1)


def _hull_area(pts: np.ndarray) -> float:
    if len(pts) < 3:
        return 0.0
    cv2 = _cv2()
    hull = cv2.convexHull(pts.astype(np.float32))
    return float(cv2.contourArea(hull))


def verify_features(q: FeatureSet, c: FeatureSet, *, min_inliers: int = MIN_INLIERS,
           min_spread: float = MIN_SPREAD, min_tight: int = MIN_TIGHT_INLIERS, seed: int = 0,
           reprojection: float = REPROJECTION) -> GeometricMatch:
    """Geometric verification: do ``q`` and ``c`` show the same picture up to a similarity
    transform (crop, scale, rotation, translation)? Deterministic for a given ``seed``.
    ``reprojection`` (pixels of the candidate's frame) is how far a projected query keypoint
    may land from its candidate keypoint: wider for candidates whose positions were coarsened."""
    if not reprojection > 0:
        raise ValueError(f"reprojection must be a positive number of pixels; got {reprojection!r}")
    if not (q.usable and c.usable):
        return NO_MATCH
    pairs = correspondences(q, c)
    if len(pairs) < 6:
        return GeometricMatch(0, 0.0, None, False)
    cv2 = _cv2()
    src = q.xy[pairs[:, 0]]
    dst = c.xy[pairs[:, 1]]
    cv2.setRNGSeed(seed)
    transform, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=reprojection, maxIters=2000,
        confidence=0.999, refineIters=10)
    if transform is None or mask is None:
        return GeometricMatch(0, 0.0, None, False)
    scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    if not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]:
        return GeometricMatch(0, 0.0, transform, False)
    inl_q, inl_c = _guided_inliers(q, c, transform, reprojection)
    n = len(inl_q)
    spread = _hull_area(c.xy[inl_c]) / float(c.width * c.height) if n else 0.0
    overlap = _overlap_counts(q, c, transform)
    explained = n / max(1, min(overlap))
    tight = tight_count(q, c, inl_q, inl_c)
    ok = n >= min_inliers and spread >= min_spread and tight >= min_tight
    return GeometricMatch(n, spread, transform, ok, explained, tight)


def tight_count(q: FeatureSet, c: FeatureSet, qi: np.ndarray, ci: np.ndarray) -> int:
    """How many of the pairs ``(qi[k], ci[k])`` have descriptors within :data:`TIGHT_DISTANCE` bits."""
    d = np.bitwise_count(q.descriptors[qi].view(np.uint64) ^ c.descriptors[ci].view(np.uint64)).sum(axis=1)
    return int((d <= TIGHT_DISTANCE).sum())


def _overlap_counts(q: FeatureSet, c: FeatureSet, transform: np.ndarray) -> tuple[int, int]:
    """How many query features land inside the candidate's frame under ``transform``, and how
    many candidate features land inside the query's frame under its inverse."""
    proj = q.xy @ transform[:, :2].T + transform[:, 2]
    nq = int(((proj[:, 0] >= 0) & (proj[:, 0] <= c.width) & (proj[:, 1] >= 0) & (proj[:, 1] <= c.height)).sum())
    a = transform[:, :2]
    try:
        inv = np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return nq, 0
    back = (c.xy - transform[:, 2]) @ inv.T
    nc = int(((back[:, 0] >= 0) & (back[:, 0] <= q.width) & (back[:, 1] >= 0) & (back[:, 1] <= q.height)).sum())
    return nq, nc


def _guided_inliers(q: FeatureSet, c: FeatureSet, transform: np.ndarray,
                    reprojection: float = REPROJECTION) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (query, candidate): features whose projections under ``transform`` fall
    near each other, with descriptors within :data:`MATCH_DISTANCE`, each the other's closest. Counting these (not only RANSAC's
    ratio-tested sample) uses every corner the transform explains."""
    proj = (q.xy @ transform[:, :2].T + transform[:, 2]).astype(np.float32)
    dx = proj[:, 0, None] - c.xy[None, :, 0]
    dy = proj[:, 1, None] - c.xy[None, :, 1]
    near = dx * dx + dy * dy <= np.float32(reprojection * reprojection)
    if not near.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    qi, ci = np.nonzero(near)
    a = q.descriptors[qi].view(np.uint64)
    b = c.descriptors[ci].view(np.uint64)
    dist = np.bitwise_count(a ^ b).sum(axis=1)
    good = dist <= MATCH_DISTANCE
    qi, ci, dist = qi[good], ci[good], dist[good]
    # one-to-one: keep the pairs that are each other's closest descriptor (ties: lower index)
    order = np.lexsort((ci, dist, qi))  # per query feature, closest first
    first_q = np.r_[True, qi[order][1:] != qi[order][:-1]]
    best_for_q = order[first_q]
    order_c = np.lexsort((qi, dist, ci))  # per candidate feature, closest first
    first_c = np.r_[True, ci[order_c][1:] != ci[order_c][:-1]]
    best_for_c = order_c[first_c]
    keep = np.intersect1d(best_for_q, best_for_c)
    arr = np.stack([qi[keep], ci[keep]], axis=1).astype(np.int64)
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    return arr[:, 0], arr[:, 1]
