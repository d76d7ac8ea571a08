"""A simple inversion attack on banked signals, used by ``bench_inversion.py``.

What an attacker who holds a bank record can rebuild of the picture, with no neural network:

* **feature inversion** (:class:`PatchModel`, :func:`invert_features`): a ridge regression,
  learned on public images, from a keypoint's 256 rotated-BRIEF bits to the 32x32 grey patch
  the descriptor was computed on (the keypoint's own frame: centred on it, rotated by its
  angle, at its pyramid scale 1.2**octave). Each predicted patch is rotated and scaled back
  and laid at its keypoint with a Gaussian weight. Two ways to assemble the picture:
  ``splat`` (weighted average of the patches, the rest filled by inpainting from the mean
  grey) and ``gradient`` (the patches' gradients are averaged and the image that best has
  those gradients is solved for, so overlapping patches also fix each other's brightness);
* **PDQ inversion** (:func:`invert_pdq`): the 256 bits are the signs of the 16x16 low DCT
  coefficients of the 64x64 luma against their median; the attack puts each coefficient at
  its sign times its mean magnitude (learned on the same public images) and inverts the DCT;
* **several PDQ hashes of one picture** (:func:`window_operator`, :func:`invert_pdq_windows`,
  :class:`HashModel`): a survivor may share, besides the whole picture's hash, the hashes of
  a few windows of it (boxes given as fractions of the picture, :data:`Box`). Each window's
  hash is the sign pattern of the low DCT of *that box* squashed to 64x64, a linear function
  of the picture's pixels. Two attacks use all of them at once: ``least squares`` (each
  window's coefficients set to sign times learned magnitude, and the smallest picture on an
  n x n grid that has all of them) and ``learned`` (a ridge regression from the signs of all
  the hashes to the 32x32 picture, trained on public photos and their random crops);
* baselines: a keypoint density map (positions only, no descriptors) and the
  constant mean grey.

Only what a bank stores is used: callers pass a :class:`~ncii_hash.features.FeatureSet`
read back with ``from_bytes`` and a 32-byte PDQ hash. Invariant of the patch frame (the same
as OpenCV's ORB descriptor): patch pixel (u, v), u to the right and v down, centre 15.5,
lies at ``(x, y) + s * R(angle) @ (u - 15.5, v - 15.5)`` in the work frame, with
``R = [[cos, -sin], [sin, cos]]`` in image coordinates (y down) and ``s = 1.2**octave``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ncii_hash.features import FeatureSet

PATCH = 32
CENTRE = (PATCH - 1) / 2.0
SCALE_FACTOR = 1.2
#: Gaussian splat weight, in patch pixels (the patch radius is 16).
SPLAT_SIGMA = 8.0
#: Ridge penalties tried on held-out training keypoints (per-sample scale).
RIDGE_GRID = (1.0, 10.0, 100.0, 1000.0, 10000.0)
#: Smoothness weight of the gradient-domain solve where no patch speaks.
GRADIENT_EPS = 0.02


def _cv2() -> Any:
    import cv2

    return cv2


# --------------------------------------------------------------------------------------------
# patch geometry


def _frame_matrix(x: float, y: float, angle_deg: float, s: float) -> np.ndarray:
    """2x3 map from patch pixel (u, v) to work-frame (x, y) (see the module invariant)."""
    a = np.deg2rad(angle_deg)
    c, n = np.cos(a) * s, np.sin(a) * s
    return np.array([[c, -n, x - (c * CENTRE - n * CENTRE)],
                     [n, c, y - (n * CENTRE + c * CENTRE)]], dtype=np.float64)


def pyramid(grey: np.ndarray, levels: int = 8) -> list[np.ndarray]:
    """ORB's pyramid of the work frame: level k downscaled by 1.2**k (area filter)."""
    cv2 = _cv2()
    h, w = grey.shape
    out = [grey.astype(np.float32)]
    for k in range(1, levels):
        s = SCALE_FACTOR ** k
        size = (max(1, round(w / s)), max(1, round(h / s)))
        out.append(cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32))
    return out


def sample_patches(grey: np.ndarray, fs: FeatureSet) -> np.ndarray:
    """(N, 32, 32) float32: the grey patch of each keypoint in its own frame, sampled at its
    pyramid level (so a large-scale patch is not aliased)."""
    cv2 = _cv2()
    pyr = pyramid(grey)
    out = np.empty((len(fs), PATCH, PATCH), np.float32)
    for i in range(len(fs)):
        k = int(fs.octave[i])
        s = SCALE_FACTOR ** k
        m = _frame_matrix(fs.xy[i, 0] / s, fs.xy[i, 1] / s, float(fs.angle[i]), 1.0)
        out[i] = cv2.warpAffine(pyr[k], m, (PATCH, PATCH), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REFLECT_101)
    return out


def descriptor_signs(fs: FeatureSet) -> np.ndarray:
    """(N, 256) float32 in {-1, +1}: the descriptor bits as regression inputs."""
    return np.unpackbits(fs.descriptors, axis=1).astype(np.float32) * 2.0 - 1.0


# --------------------------------------------------------------------------------------------
# the learned model: descriptor bits -> patch


@dataclass(frozen=True)
class PatchModel:
    """Ridge regression from 256 descriptor signs to a 32x32 patch (grey levels)."""

    weights: np.ndarray  #: (257, 1024) float32; last row is the intercept
    ridge: float  #: the chosen penalty
    held_out_r2: float  #: share of patch variance (around each patch's mean) explained on held-out keypoints
    samples: int
    mean_grey: float  #: mean grey level of the training frames (the attacker's fill value)

    def predict(self, fs: FeatureSet) -> np.ndarray:
        """(N, 32, 32) float32 predicted patches."""
        x = descriptor_signs(fs)
        return (x @ self.weights[:-1] + self.weights[-1]).reshape(-1, PATCH, PATCH)


def _ridge_solver(x: np.ndarray, y: np.ndarray):
    """penalty -> ridge weights (D + 1, K), intercept last. One eigendecomposition of the
    smaller of X^T X (D x D) and X X^T (N x N) serves every penalty."""
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    scale = len(x) / 1000.0
    if x.shape[1] <= len(x):  # primal: w = V (V^T X^T y) / (s + lam)
        s, v = np.linalg.eigh(xc.T @ xc)
        proj = v.T @ (xc.T @ yc)
        weights = lambda lam: v @ (proj / (s + lam * scale)[:, None])
    else:  # dual: w = X^T U (U^T y) / (s + lam)
        s, u = np.linalg.eigh(xc @ xc.T)
        proj = u.T @ yc
        weights = lambda lam: xc.T @ (u @ (proj / (s + lam * scale)[:, None]))

    def solve(lam: float) -> np.ndarray:
        w = weights(lam)
        return np.vstack([w, (ym - xm @ w)[None]]).astype(np.float32)
    return solve


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    return _ridge_solver(x, y)(lam)


def _centred_r2(pred: np.ndarray, y: np.ndarray) -> float:
    """R^2 of the patch *shape* (each patch minus its own mean), which is what a
    comparison-based descriptor can know."""
    pc = pred - pred.mean(1, keepdims=True)
    yc = y - y.mean(1, keepdims=True)
    return float(1.0 - ((yc - pc) ** 2).sum() / max(1e-9, (yc ** 2).sum()))


def fit_ridge(x: np.ndarray, y: np.ndarray, image_of: np.ndarray, *, seed: int = 0
              ) -> tuple[np.ndarray, float, float]:
    """(weights (D + 1, K) with the intercept last, penalty, held-out centred R^2): a ridge
    regression of ``y`` (N, K) on ``x`` (N, D) whose penalty is chosen on the samples of a
    held-out fifth of the training *images* (samples of one image are not independent)."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    images = np.unique(image_of)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(images, size=max(1, len(images) // 5), replace=False).tolist())
    val = np.array([i in held for i in image_of])
    best = (-np.inf, RIDGE_GRID[0])
    if val.any() and (~val).any():
        solve = _ridge_solver(x[~val], y[~val])
        for lam in RIDGE_GRID:
            w = solve(lam)
            r2 = _centred_r2(x[val] @ w[:-1] + w[-1], y[val])
            best = max(best, (r2, lam))
    r2, lam = best
    return _ridge(x, y, lam), float(lam), float(r2)


def fit_patch_model(signs: np.ndarray, patches: np.ndarray, image_of: np.ndarray,
                    mean_grey: float, *, seed: int = 0) -> PatchModel:
    """Fit on (signs (N, 256), patches (N, 32, 32)) with :func:`fit_ridge`."""
    w, lam, r2 = fit_ridge(signs, patches.reshape(len(patches), -1), image_of, seed=seed)
    return PatchModel(w, lam, r2, int(len(signs)), float(mean_grey))


# --------------------------------------------------------------------------------------------
# feature inversion


def _gaussian_window() -> np.ndarray:
    r2 = (np.arange(PATCH) - CENTRE) ** 2
    return np.exp(-(r2[:, None] + r2[None, :]) / (2 * SPLAT_SIGMA ** 2)).astype(np.float32)


def _splat_fields(fs: FeatureSet, patches: np.ndarray, shape: tuple[int, int], scale: float) -> dict:
    """Accumulate the patches, laid back in the frame (scaled by ``scale``), into weighted
    sums of values and of horizontal/vertical differences."""
    cv2 = _cv2()
    h, w = shape
    fields = {k: np.zeros(shape, np.float64) for k in ("v", "wv", "gx", "wx", "gy", "wy")}
    win = _gaussian_window()
    for i in range(len(fs)):
        s = SCALE_FACTOR ** int(fs.octave[i]) * scale
        x, y = fs.xy[i] * scale
        r = int(np.ceil(CENTRE * s * 1.42)) + 2
        x0, y0 = max(0, int(x) - r), max(0, int(y) - r)
        x1, y1 = min(w, int(x) + r + 1), min(h, int(y) + r + 1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        m = _frame_matrix(x - x0, y - y0, float(fs.angle[i]), s)
        size = (x1 - x0, y1 - y0)
        p = cv2.warpAffine(patches[i], m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        wt = cv2.warpAffine(win, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        sl = (slice(y0, y1), slice(x0, x1))
        fields["v"][sl] += wt * p
        fields["wv"][sl] += wt
        wx = np.minimum(wt[:, 1:], wt[:, :-1])
        fields["gx"][y0:y1, x0:x1 - 1] += wx * np.diff(p, axis=1)
        fields["wx"][y0:y1, x0:x1 - 1] += wx
        wy = np.minimum(wt[1:], wt[:-1])
        fields["gy"][y0:y1 - 1, x0:x1] += wy * np.diff(p, axis=0)
        fields["wy"][y0:y1 - 1, x0:x1] += wy
    return fields


def _solve_gradients(f: dict, mean: float) -> np.ndarray:
    """The image whose differences best match the averaged patch differences (weighted by
    how many patches speak there), smooth where none does, with mean ``mean``."""
    from scipy.sparse import coo_matrix, diags, vstack
    from scipy.sparse.linalg import spsolve

    h, w = f["v"].shape
    idx = np.arange(h * w).reshape(h, w)
    rows, eqs, rhs, wts = [], [], [], []

    def add(a: np.ndarray, b: np.ndarray, g: np.ndarray, wsum: np.ndarray) -> None:
        target = np.where(wsum > 1e-6, g / np.maximum(wsum, 1e-6), 0.0)
        rows.append((a.ravel(), b.ravel()))
        rhs.append(target.ravel())
        wts.append(np.minimum(wsum, 1.0).ravel() + GRADIENT_EPS)

    add(idx[:, :-1], idx[:, 1:], f["gx"][:, :-1], f["wx"][:, :-1])
    add(idx[:-1, :], idx[1:, :], f["gy"][:-1, :], f["wy"][:-1, :])
    for a, b in rows:
        n = len(a)
        r = np.arange(n)
        eqs.append(coo_matrix((np.r_[-np.ones(n), np.ones(n)], (np.r_[r, r], np.r_[a, b])), shape=(n, h * w)))
    d = vstack(eqs).tocsr()
    wt = np.concatenate(wts)
    g = np.concatenate(rhs)
    # a faint pull to the mean fixes the free constant
    lhs = (d.T @ diags(wt) @ d + diags(np.full(h * w, 1e-4))).tocsc()
    out = spsolve(lhs, d.T @ (wt * g) + 1e-4 * mean)
    out = out.reshape(h, w)
    return out - out.mean() + mean


def invert_features(fs: FeatureSet, model: PatchModel, *, method: str = "gradient",
                    scale: float = 0.5) -> np.ndarray:
    """Reconstruct the grey work frame (``fs.height`` x ``fs.width``, float32) from a
    feature set alone. ``method`` is ``"splat"`` or ``"gradient"``; the assembly runs at
    ``scale`` times the frame size and is resized up."""
    cv2 = _cv2()
    if method not in ("splat", "gradient"):
        raise ValueError(f"method must be 'splat' or 'gradient'; got {method!r}")
    h, w = max(2, round(fs.height * scale)), max(2, round(fs.width * scale))
    if len(fs) == 0:
        return np.full((fs.height, fs.width), model.mean_grey, np.float32)
    f = _splat_fields(fs, model.predict(fs), (h, w), scale)
    if method == "splat":
        covered = f["wv"] > 0.05
        img = np.where(covered, f["v"] / np.maximum(f["wv"], 1e-6), model.mean_grey)
        img8 = np.clip(img, 0, 255).astype(np.uint8)
        img = cv2.inpaint(img8, (~covered).astype(np.uint8), 5, cv2.INPAINT_TELEA).astype(np.float32)
    else:
        img = _solve_gradients(f, model.mean_grey).astype(np.float32)
    return cv2.resize(img, (fs.width, fs.height), interpolation=cv2.INTER_LINEAR)


def density_map(fs: FeatureSet) -> np.ndarray:
    """(H, W) float32: keypoint positions only (no descriptors), smoothed: where corners are
    dense, the picture is busy."""
    cv2 = _cv2()
    img = np.zeros((fs.height, fs.width), np.float32)
    for x, y in fs.xy:
        xi, yi = min(fs.width - 1, int(x)), min(fs.height - 1, int(y))
        img[yi, xi] += 1.0
    return cv2.GaussianBlur(img, (0, 0), sigmaX=12.0)


# --------------------------------------------------------------------------------------------
# PDQ inversion


def _dct_rows() -> np.ndarray:
    """(16, 64): PDQ's DCT-II basis rows for frequencies 1..16 over 64 samples."""
    i = np.arange(1, 17)[:, None]
    j = np.arange(64)[None, :]
    return np.sqrt(2.0 / 64.0) * np.cos(np.pi / 128.0 * i * (2 * j + 1))


def pdq_signs(h: np.ndarray) -> np.ndarray:
    """(16, 16) of +1/-1 from a 32-byte PDQ hash: entry (i, j) is the sign of the DCT
    coefficient (vertical frequency i+1, horizontal j+1) against the median. Bit k = 16i+j
    lives in 16-bit word i at position j; the bytes are the words from 15 down to 0, high
    byte first."""
    h = np.asarray(h, np.uint8).reshape(32)
    words = h.view(">u2")[::-1].astype(np.int64)  # word 0 first
    bits = (words[:, None] >> np.arange(16)[None, :]) & 1
    return bits.astype(np.float64) * 2.0 - 1.0


def pdq_coefficients(grey: np.ndarray) -> np.ndarray:
    """(16, 16) low DCT coefficients of a grey image squashed to 64x64 (area filter; PDQ's own
    Jarosz filter differs a little, enough for learning magnitudes)."""
    cv2 = _cv2()
    a = cv2.resize(np.asarray(grey, np.float32), (64, 64), interpolation=cv2.INTER_AREA).astype(np.float64)
    d = _dct_rows()
    return d @ a @ d.T


def learn_pdq_magnitudes(greys: Sequence[np.ndarray]) -> np.ndarray:
    """(16, 16) mean |coefficient - median| over training images: the attacker's prior."""
    mags = []
    for g in greys:
        c = pdq_coefficients(g)
        mags.append(np.abs(c - np.median(c)))
    return np.mean(mags, axis=0)


def invert_pdq(h: np.ndarray, magnitudes: Optional[np.ndarray] = None, *, mean: float = 128.0,
               shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Reconstruct grey luma from a PDQ hash: each coefficient at its sign times its
    magnitude (``None``: all 1), inverse DCT to 64x64, resized to ``shape`` (H, W) if given."""
    c = pdq_signs(h) * (np.ones((16, 16)) if magnitudes is None else magnitudes)
    d = _dct_rows()
    img = (d.T @ c @ d).astype(np.float32)
    if magnitudes is None:  # unit coefficients: bring to a visible contrast
        img *= 40.0 / max(1e-6, float(img.std()))
    img += mean
    if shape is not None:
        cv2 = _cv2()
        img = cv2.resize(img, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return img


# --------------------------------------------------------------------------------------------
# several PDQ hashes of one picture: the whole picture and windows of it

#: A window as fractions of the picture: (top, bottom, left, right), 0 <= top < bottom <= 1.
Box = tuple[float, float, float, float]
WHOLE: Box = (0.0, 1.0, 0.0, 1.0)
#: Grid of the least-squares rebuild (PDQ's own 64x64: windows of 70 % still fit 16 cycles).
LS_GRID = 64
#: Penalty of the least-squares rebuild, against the operator's unit scale (a whole-picture
#: hash alone is then :func:`invert_pdq` shrunk by 1 / (1 + LS_RIDGE)).
LS_RIDGE = 0.05
#: Window edges are snapped to this fraction of the picture before solving (cache key).
LS_SNAP = 256


def fraction_boxes(boxes, width: int, height: int) -> list[Box]:
    """Pixel boxes (top, bottom, left, right) of a ``width`` x ``height`` picture as fractions."""
    return [(t / height, b / height, l / width, r / width) for t, b, l, r in boxes]


def area_matrix(lo: float, hi: float, n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) float64: the area average that squashes the span [lo, hi] of an axis
    (fractions of it; the axis is n_in cells) to n_out cells. Rows sum to 1."""
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"span must satisfy 0 <= lo < hi <= 1; got [{lo}, {hi}]")
    e = (lo + (hi - lo) * np.arange(n_out + 1) / n_out) * n_in
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(e[1:, None], j + 1) - np.maximum(e[:-1, None], j), 0.0, None)
    return overlap / overlap.sum(1, keepdims=True)


def window_operator(box: Box, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows (16, n), columns (16, n)): the 16x16 PDQ coefficients of window ``box`` of a
    picture held on an n x n grid ``x`` are ``rows @ x @ columns.T`` (the box squashed to
    64x64 by area averaging, then PDQ's DCT frequencies 1..16)."""
    t, b, l, r = box
    d = _dct_rows()
    return d @ area_matrix(t, b, 64, n), d @ area_matrix(l, r, 64, n)


def window_coefficients(x: np.ndarray, box: Box) -> np.ndarray:
    """(16, 16) PDQ-like coefficients of window ``box`` of the square grid ``x``."""
    rows, cols = window_operator(box, x.shape[0])
    return rows @ np.asarray(x, np.float64) @ cols.T


def _gram(ops: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(256 K, 256 K): A A^T of the stacked window operators, A_k = kron(rows_k, columns_k)
    acting on the row-major flattened grid -- block (k, j) is kron(rows_k rows_j^T,
    columns_k columns_j^T), so A itself (256 K x n^2) is never formed."""
    k = len(ops)
    out = np.empty((256 * k, 256 * k))
    for a, (ra, ca) in enumerate(ops):
        for b, (rb, cb) in enumerate(ops):
            out[256 * a:256 * (a + 1), 256 * b:256 * (b + 1)] = np.kron(ra @ rb.T, ca @ cb.T)
    return out


_LS_CACHE: dict = {}


def invert_pdq_windows(hashes: Sequence[np.ndarray], boxes: Sequence[Box], magnitudes: Optional[np.ndarray] = None,
                       *, mean: float = 128.0, n: int = LS_GRID, ridge: float = LS_RIDGE) -> np.ndarray:
    """Least-squares rebuild (n x n float32) from the PDQ hashes of windows ``boxes`` of one
    picture: every coefficient at its sign times its magnitude (``None``: all 1), and the
    smallest picture whose windows have those coefficients (ridge ``ridge``), plus ``mean``.
    With the whole picture alone this is :func:`invert_pdq` on a 64 grid, scaled."""
    from scipy.linalg import cho_factor, cho_solve

    if len(hashes) != len(boxes) or not boxes:
        raise ValueError(f"need one box per hash; got {len(hashes)} hashes and {len(boxes)} boxes")
    mags = np.ones((16, 16)) if magnitudes is None else np.asarray(magnitudes, np.float64)
    target = np.concatenate([(pdq_signs(h) * mags).ravel() for h in hashes])
    # boxes snapped to 1/LS_SNAP of the picture (under a pixel of the 64 grid): pictures of
    # nearly the same shape share one factorisation
    snapped = tuple(tuple(round(v * LS_SNAP) / LS_SNAP for v in b) for b in boxes)
    key = (n, ridge, snapped)
    cached = _LS_CACHE.get(key)
    if cached is None:  # x = A^T (A A^T + ridge I)^-1 t: the small side is 256 K, not n^2
        ops = [window_operator(b, n) for b in snapped]
        cached = (ops, cho_factor(_gram(ops) + ridge * np.eye(256 * len(ops))))
        if len(_LS_CACHE) > 64:
            _LS_CACHE.clear()
        _LS_CACHE[key] = cached
    ops, factor = cached
    z = cho_solve(factor, target).reshape(len(ops), 16, 16)
    img = sum(r.T @ zk @ c for (r, c), zk in zip(ops, z)).astype(np.float32)
    if magnitudes is None:
        img *= 40.0 / max(1e-6, float(img.std()))
    return img + np.float32(mean)


@dataclass(frozen=True)
class HashModel:
    """Ridge regression from the signs of a fixed list of PDQ hashes of one picture (the
    whole picture and its windows, always in the same order) to the 32x32 picture."""

    weights: np.ndarray  #: (256 K + 1, 1024) float32; last row is the intercept
    ridge: float
    held_out_r2: float  #: share of the pictures' variance (around each one's mean) explained, held out
    samples: int

    @property
    def hashes(self) -> int:
        return (self.weights.shape[0] - 1) // 256

    def predict(self, hashes: Sequence[np.ndarray]) -> np.ndarray:
        """(32, 32) float32 rebuilt picture."""
        if len(hashes) != self.hashes:
            raise ValueError(f"this model reads {self.hashes} hashes a picture; got {len(hashes)}")
        x = hash_signs(hashes)
        return (x @ self.weights[:-1] + self.weights[-1]).reshape(PATCH, PATCH)


def hash_signs(hashes: Sequence[np.ndarray]) -> np.ndarray:
    """(256 K,) float32 of +1/-1: the bits of K hashes in a fixed order, as regression inputs."""
    return np.concatenate([pdq_signs(h).ravel() for h in hashes]).astype(np.float32)


def fit_hash_model(signs: np.ndarray, pictures: np.ndarray, image_of: np.ndarray, *, seed: int = 0) -> HashModel:
    """Fit on (signs (N, 256 K), pictures (N, 32, 32)); ``image_of`` names the training photo
    each sample was cut from (the penalty is chosen on held-out photos, see :func:`fit_ridge`)."""
    w, lam, r2 = fit_ridge(signs, pictures.reshape(len(pictures), -1), image_of, seed=seed)
    return HashModel(w, lam, r2, int(len(signs)))
