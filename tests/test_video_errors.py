"""vPDQ bad inputs: corrupt, truncated and foreign files, limits, hanging and crashing decoders,
missing decoders, and no decoder imported by `import ncii_hash`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ncii_hash.video import vpdq as V
from ncii_hash.video import worker as W
from ncii_hash.video import VideoError, hash_video

from video_helpers import (reencode, BUNDLED, BUNDLED_NAME, CONFORMANCE_DISTANCE_BELOW, CONFORMANCE_MIN_QUALITY,  # noqa: F401
                           EVERY_FRAME_FILES, HERE, SAMPLE_NAMES, VPDQ_ROOT, bits, expected_hash)


@pytest.fixture
def bundled_copy(tmp_path) -> Path:
    dst = tmp_path / "clip.mp4"
    dst.write_bytes((BUNDLED / f"{BUNDLED_NAME}.mp4").read_bytes())
    return dst


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(1234)
    data = (BUNDLED / f"{BUNDLED_NAME}.mp4").read_bytes()
    files = {
        "empty": (b"", "empty file"),
        "random": (rng.integers(0, 256, size=20000, dtype=np.uint8).tobytes(), "not a recognised video"),
        "text": (b"this is not a video, just some text\n" * 50, "not a recognised video"),
        "playlist": (b"#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1:9/x.ts\n", "not a recognised video"),
        "truncated": (data[: len(data) // 2], "cannot open"),  # moov is at the end: lost
        "ftyp-then-garbage": (data[:40] + rng.integers(0, 256, size=30000, dtype=np.uint8).tobytes(), "cannot open"),
    }
    out = {}
    for key, (payload, reason) in files.items():
        p = tmp_path / f"{key}.mp4"
        p.write_bytes(payload)
        out[key] = (p, reason)
    return out


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "subprocess"])
def test_bad_files_raise_video_error(cv2, tmp_path, in_process):
    for key, (path, reason) in _bad_inputs(tmp_path).items():
        with pytest.raises(VideoError, match=reason) as info:
            hash_video(path, in_process=in_process)
        assert str(path) in str(info.value), key
        assert isinstance(info.value, ValueError)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(VideoError, match="file not found"):
        hash_video(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match="not a regular file"):
        hash_video(tmp_path)
    with pytest.raises(TypeError):
        hash_video(123)  # type: ignore[arg-type]


def test_truncated_avi_is_detected(cv2, tmp_path):
    # An AVI decodes without its index, so a cut file opens and yields fewer frames than its
    # header announces: that must be an error, not a silently shorter hash.
    full = tmp_path / "full.avi"
    reencode(cv2, BUNDLED / f"{BUNDLED_NAME}.mp4", full, "MJPG")
    assert hash_video(full, in_process=True).decoded_frames == 150
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])
    with pytest.raises(VideoError, match="truncated"):
        hash_video(cut, in_process=True)


@pytest.mark.parametrize(
    "limits, reason",
    [
        ({"max_frames": 10}, "max_frames"),
        ({"max_pixels": 1000 * 1000}, "max_pixels"),
        ({"max_duration": 1.5}, "max_duration"),
    ],
)
def test_limits(cv2, bundled_copy, limits, reason):
    with pytest.raises(VideoError, match=reason):
        hash_video(bundled_copy, in_process=True, **limits)
    with pytest.raises(VideoError, match=reason):
        hash_video(bundled_copy, **limits)


@pytest.mark.parametrize("kwargs", [{"seconds_per_hash": -1}, {"seconds_per_hash": float("nan")},
                                    {"max_frames": 0}, {"max_duration": 0}, {"timeout": 0},
                                    {"threads": -1}])
def test_invalid_options(bundled_copy, kwargs):
    with pytest.raises(ValueError):
        hash_video(bundled_copy, **kwargs)


def _job_options() -> "V.Options":
    return V.Options(seconds_per_hash=1.0, max_frames=10, max_duration=10.0, max_pixels=10, threads=1, timeout=None)


def test_hanging_decoder_is_killed(bundled_copy):
    collected = []
    with pytest.raises(W.WorkerFailed, match="no progress"):
        W.run_in_worker(str(bundled_copy), "mp4/mov", _job_options(), lambda k, p: collected.append(k),
                        timeout=None, stall_timeout=1.0, job="hang-for-tests")
    # The fake worker got as far as its first message before hanging: it really ran.
    assert collected == ["meta"]


def test_crashing_decoder_becomes_worker_failure(bundled_copy):
    with pytest.raises(W.WorkerFailed, match="decoder process died .signal"):
        W.run_in_worker(str(bundled_copy), "mp4/mov", _job_options(), lambda k, p: None,
                        timeout=None, stall_timeout=60.0, job="crash-for-tests")


def test_total_timeout(cv2, bundled_copy):
    with pytest.raises(VideoError, match="timed out"):
        hash_video(bundled_copy, timeout=1e-3)


@pytest.mark.parametrize("in_process", [True, False], ids=["in-process", "worker"])
def test_missing_decoders_name_the_extra(bundled_copy, monkeypatch, in_process):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ImportError, match=r"ncii-hash\[video\]"):
        hash_video(bundled_copy, in_process=in_process)


def test_importing_ncii_hash_does_not_import_a_decoder():
    code = "import sys, ncii_hash; ncii_hash.hash_video; print('cv2' in sys.modules, 'av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False False"
