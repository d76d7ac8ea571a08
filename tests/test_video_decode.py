"""Decoders behind hash_video: PyAV's decode skipping equals decoding every frame, PyAV and
OpenCV agree, the skip plan's pieces against brute-force oracles, and the reusable worker
survives crashes, hangs and deaths while idle.

Synthetic H.264 files are encoded here with PyAV's bundled libx264 (seeded moving patterns) in
GOP shapes the sample videos lack: open GOPs, many IDRs, no B-frames, MKV and MPEG-TS framing.
"""

from __future__ import annotations

import os
import signal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import ncii_hash
from ncii_hash.video import decode, frames as D
from ncii_hash.video import worker as W
from ncii_hash.video.vpdq import VideoError, _Collector, _check_input, _file_md5, hash_video

av = pytest.importorskip("av", reason="PyAV missing: pip install 'ncii-hash[video]'")
video_pyav = pytest.importorskip("ncii_hash.video.pyav")

HERE = Path(__file__).resolve().parent
BUNDLED = HERE / "data" / "vpdq" / "test-padded-dimensions.mp4"


def _sample_videos() -> list[Path]:
    env = os.environ.get("NCII_HASH_CONFORMANCE")
    for root in ([Path(env)] if env else []) + [HERE.parent.parent / "shared" / "conformance"]:
        folder = root / "vpdq" / "sample-videos"
        if folder.is_dir():
            return sorted(folder.glob("*.mp4"))
    return [BUNDLED]


SAMPLES = _sample_videos()


def _decode(path: Path, *, seconds_per_hash: float, skip: bool, decoder: str = "pyav", threads: int = 2):
    """hash_video's in-process path, also returning the decoder's stats message."""
    source, container = _check_input(path)
    opts = D.Options(seconds_per_hash=seconds_per_hash, max_frames=10**6, max_duration=1e6,
                     max_pixels=10**8, threads=threads, timeout=None, decoder=decoder, skip_unsampled=skip)
    collector = _Collector()
    decode.decode_and_hash(source, container, opts, collector)
    return collector.result(_file_md5(source)), collector.stats


def _assert_same(a, b) -> None:
    assert a.decoded_frames == b.decoded_frames
    assert np.array_equal(a.frame_numbers, b.frame_numbers)
    assert [f"{t:.3f}" for t in a.timestamps] == [f"{t:.3f}" for t in b.timestamps]
    assert np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.qualities, b.qualities)


# ------------------------------------------------------------------ skipping is exact


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_skipping_equals_decoding_every_frame_on_samples(path):
    for seconds in (1.0, 0.5):
        full, full_stats = _decode(path, seconds_per_hash=seconds, skip=False)
        fast, fast_stats = _decode(path, seconds_per_hash=seconds, skip=True)
        assert not full_stats["planned"] and full_stats["decoded"] == full.decoded_frames
        assert fast_stats["planned"], "the sample videos are plain H.264 in MP4: skipping applies"
        assert fast_stats["decoded"] < full.decoded_frames
        _assert_same(fast, full)


def _pattern_frames(count: int, width: int, height: int, seed: int) -> list[np.ndarray]:
    """Blocky random texture scrolling across the frame, with a cut halfway (new texture)."""
    rng = np.random.default_rng(seed)
    textures = [np.kron(rng.integers(0, 256, size=(height // 8, width // 4, 3), dtype=np.uint8),
                        np.ones((8, 8, 1), dtype=np.uint8)) for _ in range(2)]
    out = []
    for i in range(count):
        tex = textures[0] if i < count // 2 else textures[1]
        out.append(np.ascontiguousarray(np.roll(tex, 3 * i, axis=1)[:, :width]))
    return out


def _encode(path: Path, *, fmt: str, options: dict, fps: int = 30, count: int = 75,
            size: tuple[int, int] = (160, 96), seed: int = 7) -> Path:
    width, height = size
    with av.open(str(path), mode="w", format=fmt) as box:
        stream = box.add_stream("libx264", rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", **options}
        for img in _pattern_frames(count, width, height, seed):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)
    return path


GOPS = {
    "bframes-pyramid": ("mp4", {"bframes": "3", "b-pyramid": "normal", "g": "24"}, True),
    "open-gop": ("mp4", {"bframes": "3", "g": "20", "x264-params": "open-gop=1"}, True),
    "idr-every-5": ("mp4", {"bframes": "2", "g": "5", "keyint_min": "5"}, True),
    "no-bframes": ("mp4", {"bframes": "0", "g": "40"}, True),
    "mkv": ("matroska", {"bframes": "3", "g": "30"}, True),
    "mpegts-annexb": ("mpegts", {"bframes": "3", "g": "30"}, False),  # start codes: decoded in full
}


@pytest.mark.parametrize("name", sorted(GOPS))
@pytest.mark.parametrize("fps, seconds", [(30, 1.0), (25, 0.5), (24, 0.1)])
def test_skipping_equals_decoding_every_frame_on_gop_shapes(tmp_path, name, fps, seconds):
    fmt, options, plannable = GOPS[name]
    path = _encode(tmp_path / f"{name}.{ {'matroska': 'mkv', 'mpegts': 'ts'}.get(fmt, fmt) }",
                   fmt=fmt, options=options, fps=fps)
    full, _ = _decode(path, seconds_per_hash=seconds, skip=False)
    fast, stats = _decode(path, seconds_per_hash=seconds, skip=True)
    assert stats["planned"] == plannable
    assert full.decoded_frames == 75
    _assert_same(fast, full)
    every, _ = _decode(path, seconds_per_hash=0, skip=False)
    assert np.array_equal(fast.frames, every.frames[fast.frame_numbers])


def test_a_failed_numbering_check_falls_back_to_decoding_everything(monkeypatch):
    full, _ = _decode(BUNDLED, seconds_per_hash=1.0, skip=False)
    # A rank table that disagrees with the decoder's output must be caught, not trusted.
    monkeypatch.setattr(video_pyav.SkipPlan, "rank", lambda self, pts: 0)
    fast, stats = _decode(BUNDLED, seconds_per_hash=1.0, skip=True)
    assert not stats["planned"] and stats["decoded"] == full.decoded_frames
    _assert_same(fast, full)


def test_limits_apply_before_decoding_when_planning():
    with pytest.raises(VideoError, match="max_frames"):
        hash_video(BUNDLED, in_process=True, max_frames=100, decoder="pyav")


# ------------------------------------------------------------------ plan pieces vs oracles


def _needed_oracle(sampled: list[bool], idr: list[bool]) -> list[bool]:
    out = []
    for i in range(len(sampled)):
        j, need = i, False
        while j < len(sampled) and (j == i or not idr[j]):
            need = need or sampled[j]
            j += 1
        out.append(need)
    return out


@pytest.mark.parametrize("seed", range(20))
def test_needed_packets_match_a_brute_force_oracle(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    sampled = rng.random(n) < rng.random()
    idr = rng.random(n) < 0.15
    idr[0] = True
    got = video_pyav.needed_packets(sampled, idr)
    assert got.tolist() == _needed_oracle(sampled.tolist(), idr.tolist())


def _nal(kind: int, ref_idc: int, payload: bytes, length_size: int = 4) -> bytes:
    body = bytes([(ref_idc << 5) | kind]) + payload
    return len(body).to_bytes(length_size, "big") + body


def test_h264_idr_detection():
    sps, pps, sei = _nal(7, 3, b"\x42\x00"), _nal(8, 3, b"\xce"), _nal(6, 0, b"\x05\x01")
    assert video_pyav.h264_starts_idr(sps + pps + sei + _nal(5, 3, b"\x88\x84"), 4)
    assert not video_pyav.h264_starts_idr(sei + _nal(1, 2, b"\x9a"), 4)
    assert not video_pyav.h264_starts_idr(_nal(1, 0, b"\x9a") + _nal(5, 3, b"\x88"), 4)  # first slice decides
    assert video_pyav.h264_starts_idr(_nal(5, 3, b"\x88", 2), 2)
    for broken in (b"", b"\x00\x00", b"\x00\x00\x00\x09\x65", _nal(5, 3, b"\x88")[:-2] + b"\xff\xff\xff\xff"):
        assert not video_pyav.h264_starts_idr(broken, 4)
    assert video_pyav.h264_nal_length_size(b"\x01\x4d\x40\x1f\xff\xe1\x00") == 4
    assert video_pyav.h264_nal_length_size(b"\x01\x4d\x40\x1f\xfd\xe1\x00") == 2
    assert video_pyav.h264_nal_length_size(b"\x00\x00\x00\x01\x67") == 0  # Annex B
    assert video_pyav.h264_nal_length_size(None) == 0


# ------------------------------------------------------------------ decoders agree


def test_pyav_frames_match_pdq_of_the_decoded_frame():
    # Oracle: decode every frame with PyAV directly, hash with the image API.
    vh = hash_video(BUNDLED, seconds_per_hash=1.0, in_process=True, decoder="pyav")
    with av.open(str(BUNDLED)) as box:
        frames = [f.to_ndarray(format="rgb24") for f in box.decode(video=0)]
    rows = [ncii_hash.hash_pixels(frames[n]) for n in range(0, len(frames), 30)]
    assert vh.decoded_frames == len(frames)
    assert np.array_equal(vh.frames, np.stack([r.hash for r in rows]))
    assert vh.qualities.tolist() == [r.quality for r in rows]


def test_pyav_and_opencv_agree():
    pytest.importorskip("cv2")
    a = hash_video(BUNDLED, seconds_per_hash=0.2, in_process=True, decoder="pyav")
    b = hash_video(BUNDLED, seconds_per_hash=0.2, in_process=True, decoder="opencv")
    assert np.array_equal(a.frame_numbers, b.frame_numbers) and a.decoded_frames == b.decoded_frames
    d = np.unpackbits(a.frames ^ b.frames, axis=1).sum(axis=1)
    assert d.max() < 31


def test_unknown_decoder_is_rejected():
    with pytest.raises(ValueError, match="decoder must be one of"):
        hash_video(BUNDLED, decoder="gstreamer")


# ------------------------------------------------------------------ the reusable worker


@pytest.fixture
def fresh_pool():
    W.POOL.close()
    yield W.POOL
    W.POOL.close()


def test_worker_is_reused_across_files(fresh_pool):
    a = hash_video(BUNDLED)
    pids = fresh_pool.idle_pids()
    assert len(pids) == 1
    b = hash_video(BUNDLED, seconds_per_hash=0.5)
    assert fresh_pool.idle_pids() == pids
    assert len(b) == 10 and np.array_equal(a.frames, b.frames[::2])


@pytest.mark.parametrize("job, reason", [("crash-for-tests", "died"), ("hang-for-tests", "no progress")])
def test_worker_failure_is_contained_and_the_next_file_hashes(fresh_pool, job, reason):
    hash_video(BUNDLED)
    reused = fresh_pool.idle_pids()
    opts = D.Options(1.0, 10, 10.0, 10, 1, None)
    with pytest.raises(W.WorkerFailed, match=reason):
        W.run_in_worker(str(BUNDLED), "mp4/mov", opts, lambda k, p: None, timeout=None, stall_timeout=1.0, job=job)
    assert fresh_pool.idle_pids() == []  # the failed worker was killed, not returned
    for pid in reused:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    after = hash_video(BUNDLED)
    assert len(after) == 5 and fresh_pool.idle_pids() not in ([], reused)


def test_worker_killed_while_idle_is_replaced(fresh_pool):
    first = hash_video(BUNDLED)
    (pid,) = fresh_pool.idle_pids()
    os.kill(pid, signal.SIGKILL)
    again = hash_video(BUNDLED)
    assert np.array_equal(first.frames, again.frames)
    assert fresh_pool.idle_pids() != [pid]


def test_bad_file_error_keeps_the_worker(fresh_pool, tmp_path):
    hash_video(BUNDLED)
    pids = fresh_pool.idle_pids()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(BUNDLED.read_bytes()[:40] + bytes(range(256)) * 100)
    with pytest.raises(VideoError, match="cannot open"):
        hash_video(bad)
    assert fresh_pool.idle_pids() == pids  # a reported decoding error is not a dead worker
    assert len(hash_video(BUNDLED)) == 5
