"""vPDQ conformance with Meta's reference hashes (every bundled frame; the sample videos at 1 s,
two at every frame -- NCII_HASH_VPDQ_EVERY_FRAME=1 for all), the hash fields and the vPDQ text format."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import ncii_hash
from ncii_hash.video import VideoError, VideoHash, hash_video

from video_helpers import (print_uncaptured, BUNDLED, BUNDLED_NAME, CONFORMANCE_DISTANCE_BELOW, CONFORMANCE_MIN_QUALITY,  # noqa: F401
                           EVERY_FRAME_FILES, HERE, SAMPLE_NAMES, VPDQ_ROOT, bits, expected_hash)



# ------------------------------------------------------------------ conformance

_REPORT: dict[str, dict] = {}


@pytest.fixture(scope="module", autouse=True)
def _distance_report(request):
    """Print the per-file distance distribution after the module (the closing note quotes it)."""
    yield
    if not _REPORT:
        return
    lines = ["vPDQ conformance: per-file Hamming distance to Meta's reference hashes",
             f"{'file':34} {'sampling':>9} {'frames':>6} {'both q>=50':>10} {'max':>4} {'mean':>5} "
             f"{'max(q>=50)':>10} {'mean(q>=50)':>11}"]
    for name in sorted(_REPORT):
        r = _REPORT[name]
        lines.append(f"{name:34} {r['sampling']:>9} {r['frames']:>6} {r['good']:>10} {r['max']:>4} "
                     f"{r['mean']:>5.2f} {r['max_good']:>10} {r['mean_good']:>11.2f}")
    print_uncaptured(request, lines)


def _check_conformance(name: str, video: Path, expected_txt: Path, every_frame: bool, in_process: bool) -> None:
    expected = expected_hash(expected_txt)
    # The expected files hash every frame; the sampled run is compared at its frames.
    got = hash_video(video, seconds_per_hash=0 if every_frame else 1.0, in_process=in_process)
    assert got.decoded_frames == len(expected)
    assert np.array_equal(expected.frame_numbers, np.arange(len(expected)))
    modulus = 1 if every_frame else int(got.fps)
    assert np.array_equal(got.frame_numbers, np.arange(0, len(expected), modulus))
    exp_rows = got.frame_numbers
    assert [f"{t:.3f}" for t in got.timestamps] == [f"{t:.3f}" for t in expected.timestamps[exp_rows]]
    d = bits(got.frames, expected.frames[exp_rows])
    good = (got.qualities >= CONFORMANCE_MIN_QUALITY) & (expected.qualities[exp_rows] >= CONFORMANCE_MIN_QUALITY)
    _REPORT[name] = {
        "sampling": "every" if every_frame else "1 s", "frames": int(len(d)), "good": int(good.sum()),
        "max": int(d.max()), "mean": float(d.mean()),
        "max_good": int(d[good].max()) if good.any() else 0,
        "mean_good": float(d[good].mean()) if good.any() else 0.0,
    }
    assert good.any(), f"{name}: no frame with quality >= 50 on both sides to compare"
    worst = int(d[good].max())
    assert worst < CONFORMANCE_DISTANCE_BELOW, f"{name}: frame distance {worst} >= {CONFORMANCE_DISTANCE_BELOW}"


def test_bundled_video_conforms_every_frame(cv2):
    # The default path: decoded in a subprocess.
    _check_conformance(f"{BUNDLED_NAME} (bundled)", BUNDLED / f"{BUNDLED_NAME}.mp4", BUNDLED / f"{BUNDLED_NAME}.txt",
                       every_frame=True, in_process=False)


@pytest.mark.parametrize("name", SAMPLE_NAMES or ["<no samples>"])
def test_sample_videos_conform(cv2, vpdq_root, name):
    every = name in EVERY_FRAME_FILES or os.environ.get("NCII_HASH_VPDQ_EVERY_FRAME") == "1"
    _check_conformance(name, vpdq_root / "sample-videos" / f"{name}.mp4",
                       vpdq_root / "sample-hashes" / f"{name}.txt", every_frame=every, in_process=True)


def test_video_hash_fields(cv2):
    path = BUNDLED / f"{BUNDLED_NAME}.mp4"
    vh = hash_video(path, seconds_per_hash=1.0, in_process=True)
    import hashlib

    assert vh.md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert (vh.width, vh.height) == (1080, 1080)
    assert vh.fps == pytest.approx(30.0)
    assert vh.frames.dtype == np.uint8 and vh.frames.shape == (len(vh), 32) and vh.frames.flags.c_contiguous
    assert vh.qualities.shape == vh.frame_numbers.shape == vh.timestamps.shape == (len(vh),)
    assert np.allclose(vh.timestamps, vh.frame_numbers / vh.fps)
    with pytest.raises(Exception):
        vh.md5 = "x"  # frozen


def test_sampling_picks_the_same_frames_as_every_frame(cv2):
    path = BUNDLED / f"{BUNDLED_NAME}.mp4"
    every = hash_video(path, seconds_per_hash=0, in_process=True)
    for spf, modulus in ((1.0, 30), (0.5, 15), (0.001, 1), (2.0, 60)):
        sampled = hash_video(path, seconds_per_hash=spf, in_process=True)
        assert np.array_equal(sampled.frame_numbers, np.arange(0, every.decoded_frames, modulus))
        assert np.array_equal(sampled.frames, every.frames[sampled.frame_numbers])
        assert np.array_equal(sampled.qualities, every.qualities[sampled.frame_numbers])


def test_threads_and_isolation_do_not_change_hashes(cv2):
    path = BUNDLED / f"{BUNDLED_NAME}.mp4"
    one = hash_video(path, seconds_per_hash=0.2, threads=1, in_process=True)
    two = hash_video(path, seconds_per_hash=0.2, threads=2, in_process=True)
    sub = hash_video(path, seconds_per_hash=0.2, threads=2)
    for other in (two, sub):
        assert np.array_equal(one.frames, other.frames)
        assert np.array_equal(one.qualities, other.qualities)
        assert np.array_equal(one.frame_numbers, other.frame_numbers)
        assert one.md5 == other.md5


def test_frames_match_pdq_of_the_decoded_frame(cv2):
    # Oracle: decode with OpenCV directly, hash with the image API.
    path = BUNDLED / f"{BUNDLED_NAME}.mp4"
    vh = hash_video(path, seconds_per_hash=1.0, in_process=True)
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    rows = []
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if n % 30 == 0:
            rows.append(ncii_hash.hash_pixels(np.ascontiguousarray(frame[:, :, ::-1])))
        n += 1
    cap.release()
    assert np.array_equal(vh.frames, np.stack([r.hash for r in rows]))
    assert vh.qualities.tolist() == [r.quality for r in rows]


def test_vpdq_text_round_trip(cv2):
    vh = hash_video(BUNDLED / f"{BUNDLED_NAME}.mp4", seconds_per_hash=1.0, in_process=True)
    back = VideoHash.from_vpdq_lines(vh.to_vpdq_lines())
    assert np.array_equal(back.frames, vh.frames)
    assert np.array_equal(back.qualities, vh.qualities)
    assert np.array_equal(back.frame_numbers, vh.frame_numbers)
    assert np.allclose(back.timestamps, vh.timestamps, atol=5e-4)


@pytest.mark.parametrize("line", ["0,100,zz,0.000", "0,100,abcd,0.000", "0,101," + "0" * 64 + ",0.0", "1,2,3"])
def test_vpdq_text_rejects_malformed_lines(line):
    with pytest.raises(VideoError, match="line 1"):
        VideoHash.from_vpdq_lines([line])
