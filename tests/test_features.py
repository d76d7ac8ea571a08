"""Local features (issue #8): serialization, verification on real edits, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

cv2 = pytest.importorskip("cv2")

from ncii_hash.features import orb as F  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "examples" / "survivor" / "IMG_0001.jpg"
OTHERS = sorted((ROOT / "tests" / "data" / "pdq" / "data" / "reg-test-input" / "labelme-subset").glob("*.jpg"))


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(PHOTO).convert("RGB")


@pytest.fixture(scope="module")
def photo_features(photo):
    return F.extract_features(np.asarray(photo))


def _crop(im, frac, dx=0.0):
    w, h = im.size
    cw, ch = round(w * (1 - frac)), round(h * (1 - frac))
    x0 = round((w - cw) * (0.5 + dx))
    y0 = (h - ch) // 2
    return im.crop((x0, y0, x0 + cw, y0 + ch))


def _banner(im):
    out = im.copy()
    w, h = out.size
    ImageDraw.Draw(out).rectangle((0, int(h * 0.85), w, h), fill=(255, 255, 255))
    return out


def _letterbox(im, frac=0.2):
    w, h = im.size
    pad = round(h * frac / 2)
    out = Image.new("RGB", (w, h + 2 * pad), (0, 0, 0))
    out.paste(im, (0, pad))
    return out


EDITS = {
    "crop_10_offcentre": lambda im: _crop(im, 0.10, dx=0.4),
    "crop_20": lambda im: _crop(im, 0.20),
    "rotate_+5": lambda im: im.rotate(5, resample=Image.BILINEAR, expand=False),
    "rotate_-5": lambda im: im.rotate(-5, resample=Image.BILINEAR, expand=True),
    "caption_banner": _banner,
    "letterbox_20": _letterbox,
    "half_size": lambda im: im.resize((im.width // 2, im.height // 2), Image.LANCZOS),
}


def test_extract_is_bounded_spread_and_deterministic(photo, photo_features):
    fs = photo_features
    assert F.MIN_FEATURES <= len(fs) <= F.MAX_FEATURES
    assert fs.descriptors.shape == (len(fs), 32) and fs.descriptors.dtype == np.uint8
    assert (fs.xy[:, 0] <= fs.width).all() and (fs.xy[:, 1] <= fs.height).all()
    # area-normalised frame, aspect ratio kept
    assert abs(fs.width * fs.height - F.WORK_AREA) < 0.02 * F.WORK_AREA
    assert abs(fs.width / fs.height - photo.width / photo.height) < 0.01
    # well spread: every quadrant of the frame holds a fair share of the features
    qx = fs.xy[:, 0] < fs.width / 2
    qy = fs.xy[:, 1] < fs.height / 2
    for a in (True, False):
        for b in (True, False):
            assert ((qx == a) & (qy == b)).sum() >= len(fs) // 10
    again = F.extract_features(np.asarray(photo))
    assert again.to_bytes() == fs.to_bytes()


def test_serialization_round_trip(photo_features):
    data = photo_features.to_bytes()
    assert len(data) <= 10 * 1024
    back = F.FeatureSet.from_bytes(data)
    assert back.to_bytes() == data
    np.testing.assert_array_equal(back.descriptors, photo_features.descriptors)
    np.testing.assert_allclose(back.xy, photo_features.xy)
    np.testing.assert_array_equal(back.octave, photo_features.octave)


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:5], "truncated"),
    (lambda b: b"XXXXXX" + b[6:], "not an ncii_hash feature set"),
    (lambda b: b[:6] + (99).to_bytes(2, "little") + b[8:], "version 99"),
    (lambda b: b[:-1], "bytes of features"),
    (lambda b: b + b"\0", "bytes of features"),
    (lambda b: b[:8] + (0).to_bytes(2, "little") + b[10:], "implausible"),
])
def test_bad_bytes_are_rejected(photo_features, mutate, message):
    with pytest.raises(F.FeatureError, match=message):
        F.FeatureSet.from_bytes(mutate(photo_features.to_bytes()))


def test_keypoint_outside_frame_is_rejected(photo_features):
    data = bytearray(photo_features.to_bytes())
    # first record's x := 65535 / 8 px, far outside a <=1024 px frame
    off = 14
    data[off:off + 2] = (65535).to_bytes(2, "little")
    with pytest.raises(F.FeatureError, match="outside"):
        F.FeatureSet.from_bytes(bytes(data))


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_geometric_edits_verify(photo, photo_features, edit):
    edited = EDITS[edit](photo)
    g = max((F.verify_features(q, photo_features) for q in F.query_features(np.asarray(edited))),
            key=lambda r: (r.is_match, r.inliers))
    assert g.is_match, (edit, g)
    assert g.inliers >= F.MIN_INLIERS
    if edit.startswith("rotate"):
        assert abs(abs(g.rotation_degrees) - 5) < 1.5
    if edit == "half_size":
        assert 0.9 < g.scale < 1.1  # the work frame normalises resolution away


def test_distinct_photos_do_not_verify(photo_features):
    sets = [photo_features] + [F.extract_features(np.asarray(Image.open(p).convert("RGB"))) for p in OTHERS]
    for i, a in enumerate(sets):
        for j, b in enumerate(sets):
            if i != j:
                g = F.verify_features(a, b)
                assert not g.is_match
                assert g.inliers < F.MIN_INLIERS // 2


def test_flat_and_tiny_images_are_unusable_not_errors():
    flat = np.full((300, 400, 3), 128, np.uint8)
    fs = F.extract_features(flat)
    assert len(fs) == 0 and not fs.usable
    tiny = F.extract_features(np.random.default_rng(1).integers(0, 255, (20, 300, 3), dtype=np.uint8))
    assert len(tiny) == 0 and not F.verify_features(tiny, tiny).is_match
    assert F.FeatureSet.from_bytes(tiny.to_bytes()).width == tiny.width
    assert F.FeatureSet.from_bytes(fs.to_bytes()).to_bytes() == fs.to_bytes()


def test_grey_and_rgb_agree(photo):
    rgb = np.asarray(photo)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert F.extract_features(rgb).to_bytes() == F.extract_features(grey).to_bytes()


def test_image_features_reads_files_and_reports_bad_ones(tmp_path):
    fs = F.image_features(PHOTO)
    assert fs.usable
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    from ncii_hash import ImageError
    with pytest.raises(ImageError):
        F.image_features(bad)


def _anms_numpy(pts, response, keep):
    """Straightforward float32 ANMS: the oracle for the C++ one."""
    order = np.argsort(-response, kind="stable")
    p = pts[order].astype(np.float32)
    r = response[order].astype(np.float32)
    n = len(p)
    radius = np.full(n, np.inf, dtype=np.float32)
    for i in range(1, n):
        stronger = r[:i] * np.float32(0.9) > r[i]
        if stronger.any():
            d = p[:i][stronger] - p[i]
            radius[i] = (d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1]).min()
    return order[np.argsort(-radius, kind="stable")[:keep]]


@pytest.mark.parametrize("seed", range(5))
def test_anms_equals_numpy_oracle(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    pts = (rng.random((n, 2)) * 500).astype(np.float32)
    if seed == 1 and n:
        pts[: n // 2] = pts[0]  # coincident points
    resp = rng.random(n).astype(np.float32)
    if seed == 2:
        resp = np.round(resp * 4).astype(np.float32)  # many ties
    keep = int(rng.integers(1, 300))
    np.testing.assert_array_equal(F._suppress(pts, resp, keep), _anms_numpy(pts, resp, keep))


def test_reprojection_tolerance_keyword(photo, photo_features):
    edited = np.asarray(_crop(photo, 0.10, dx=0.4))
    q = F.query_features(edited)[0]
    # the default is the module constant: the same verification with and without it
    a, b = F.verify_features(q, photo_features), F.verify_features(q, photo_features, reprojection=F.REPROJECTION)
    assert (a.inliers, a.tight, a.is_match) == (b.inliers, b.tight, b.is_match)
    # candidate keypoints moved by up to 20 px: the exact tolerance loses them, a wider one keeps them
    rng = np.random.default_rng(5)
    jitter = rng.uniform(-14, 14, photo_features.xy.shape).astype(np.float32)
    xy = np.clip(photo_features.xy + jitter, 0, [photo_features.width - 1, photo_features.height - 1]).astype(np.float32)
    moved = F.FeatureSet(photo_features.width, photo_features.height, xy, photo_features.angle,
                         photo_features.octave, photo_features.descriptors)
    tight, wide = F.verify_features(q, moved), F.verify_features(q, moved, reprojection=26.0)
    assert wide.is_match and wide.inliers > 2 * tight.inliers
    with pytest.raises(ValueError, match="reprojection"):
        F.verify_features(q, photo_features, reprojection=0.0)
