"""vPDQ: conformance with Meta's reference hashes, the matching rule, and bad inputs.

Conformance data: `tests/data/vpdq` (one video) always; the 14 sample videos from
$NCII_HASH_CONFORMANCE/vpdq or ../shared/conformance/vpdq when present. Most of them are checked
at 1 s sampling to keep CI short; two at every frame (set NCII_HASH_VPDQ_EVERY_FRAME=1 for all).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ncii_hash
from ncii_hash.video import vpdq as V
from ncii_hash.video import worker as W
from ncii_hash.video import VideoError, VideoHash, hash_video, match_video

HERE = Path(__file__).resolve().parent
BUNDLED = HERE / "data" / "vpdq"
BUNDLED_NAME = "test-padded-dimensions"

# Upstream rule (vpdq/cpp/regtest.py + match-hashes-byline): distance < 31 where both
# qualities are >= 50.
CONFORMANCE_DISTANCE_BELOW = 31
CONFORMANCE_MIN_QUALITY = 50
EVERY_FRAME_FILES = {"doorknob-hd-no-bar", "pattern-sd-with-small-logo-bar"}


def _vpdq_root() -> Path | None:
    env = os.environ.get("NCII_HASH_CONFORMANCE")
    candidates = [Path(env)] if env else []
    candidates.append(HERE.parent.parent / "shared" / "conformance")
    for c in candidates:
        if (c / "vpdq" / "sample-videos").is_dir() and (c / "vpdq" / "sample-hashes").is_dir():
            return c / "vpdq"
    return None


VPDQ_ROOT = _vpdq_root()
SAMPLE_NAMES = sorted(p.stem for p in (VPDQ_ROOT / "sample-videos").glob("*.mp4")) if VPDQ_ROOT else []
SKIP_FULL = "vPDQ sample videos not found (set NCII_HASH_CONFORMANCE or place them at ../shared/conformance/vpdq)"


@pytest.fixture(scope="session")
def vpdq_root() -> Path:
    if VPDQ_ROOT is None:
        pytest.skip(SKIP_FULL)
    return VPDQ_ROOT


@pytest.fixture(scope="module")
def cv2():
    return pytest.importorskip("cv2", reason="OpenCV missing: pip install 'ncii-hash[video]'")


def _bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Oracle: per-row Hamming distance by unpacking bits."""
    return np.unpackbits(np.bitwise_xor(a, b), axis=-1).sum(axis=-1)


def _expected(path: Path) -> VideoHash:
    with open(path) as f:
        return VideoHash.from_vpdq_lines(f, source=str(path))


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
    _print_uncaptured(request, lines)


def _print_uncaptured(request, lines: list[str]) -> None:
    """Print past pytest's output capture (shown with -q too)."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        print("\n" + "\n".join(lines), flush=True)


def _check_conformance(name: str, video: Path, expected_txt: Path, every_frame: bool, in_process: bool) -> None:
    expected = _expected(expected_txt)
    # The expected files hash every frame; the sampled run is compared at its frames.
    got = hash_video(video, seconds_per_hash=0 if every_frame else 1.0, in_process=in_process)
    assert got.decoded_frames == len(expected)
    assert np.array_equal(expected.frame_numbers, np.arange(len(expected)))
    modulus = 1 if every_frame else int(got.fps)
    assert np.array_equal(got.frame_numbers, np.arange(0, len(expected), modulus))
    exp_rows = got.frame_numbers
    assert [f"{t:.3f}" for t in got.timestamps] == [f"{t:.3f}" for t in expected.timestamps[exp_rows]]
    d = _bits(got.frames, expected.frames[exp_rows])
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


# ------------------------------------------------------------------ matching rule


def _brute_force_match(q, qq, c, cq, distance, quality):
    """Oracle: the vPDQ rule written out with Python sets and loops."""
    def prep(frames, quals):
        return sorted({bytes(f) for f, k in zip(frames, quals) if k >= quality})

    qs, cs = prep(q, qq), prep(c, cq)

    def dist(a, b):
        return bin(int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).count("1")

    qm = sum(any(dist(a, b) <= distance for b in cs) for a in qs)
    cm = sum(any(dist(b, a) <= distance for a in qs) for b in cs)
    return len(qs), len(cs), qm, cm


def _video(frames, qualities) -> VideoHash:
    n = len(frames)
    return VideoHash(frames=np.ascontiguousarray(frames, dtype=np.uint8), qualities=np.asarray(qualities, np.int32),
                     frame_numbers=np.arange(n), timestamps=np.arange(n) / 30.0, md5="", fps=30.0, width=0, height=0)


def _flip_bits(h: np.ndarray, k: int, rng) -> np.ndarray:
    out = h.copy()
    bits = np.unpackbits(out)
    idx = rng.choice(256, size=k, replace=False)
    bits[idx] ^= 1
    return np.packbits(bits)


@pytest.mark.parametrize("seed", range(6))
def test_match_video_agrees_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(40, 32), dtype=np.uint8)
    q = base[rng.integers(0, 40, size=60)]  # duplicates on purpose
    c = np.stack([_flip_bits(base[i], int(rng.integers(20, 45)), rng) for i in rng.integers(0, 40, size=50)])
    qq = rng.integers(30, 101, size=len(q))
    cq = rng.integers(30, 101, size=len(c))
    res = match_video(_video(q, qq), _video(c, cq))
    nq, nc, qm, cm = _brute_force_match(q, qq, c, cq, 31, 50)
    assert (res.query_frames, res.compared_frames, res.query_matched, res.compared_matched) == (nq, nc, qm, cm)
    assert res.query_pct == pytest.approx(100.0 * qm / nq)
    assert res.compared_pct == pytest.approx(100.0 * cm / nc)
    assert res.is_match == (res.query_pct >= 80.0 and res.compared_pct >= 0.0)


def test_match_distance_is_inclusive():
    rng = np.random.default_rng(7)
    h = rng.integers(0, 256, size=(1, 32), dtype=np.uint8)
    at31 = _flip_bits(h[0], 31, rng)[None]
    at32 = _flip_bits(h[0], 32, rng)[None]
    assert match_video(h, at31).is_match
    assert match_video(h, at31).query_pct == 100.0
    assert not match_video(h, at32).is_match
    assert match_video(h, at32, distance=32).is_match


def test_match_dedupes_and_filters_quality():
    rng = np.random.default_rng(8)
    a, b, x = rng.integers(0, 256, size=(3, 32), dtype=np.uint8)
    # The query repeats `a` 9 times; deduped, it is 1 of 2 frames (50 %), not 9 of 10.
    query = _video([a] * 9 + [x], [90] * 10)
    cand = _video([a, b], [90, 90])
    res = match_video(query, cand)
    assert (res.query_frames, res.query_matched, res.query_pct) == (2, 1, 50.0)
    assert not res.is_match
    # A low-quality frame is ignored: dropping x makes the query fully contained.
    res = match_video(_video([a] * 9 + [x], [90] * 9 + [10]), cand)
    assert (res.query_frames, res.query_pct, res.compared_pct, res.is_match) == (1, 100.0, 50.0, True)
    assert not match_video(_video([a] * 9 + [x], [90] * 9 + [10]), cand, compared_pct=60.0).is_match


def test_match_with_nothing_left_is_no_match():
    rng = np.random.default_rng(9)
    h = rng.integers(0, 256, size=(3, 32), dtype=np.uint8)
    res = match_video(_video(h, [10, 20, 30]), _video(h, [90, 90, 90]))
    assert (res.query_frames, res.query_pct, res.is_match) == (0, 0.0, False)
    with pytest.raises(ValueError):
        match_video(h, h, distance=-1)
    with pytest.raises(TypeError):
        match_video(h.astype(np.int64), h)


def test_match_large_inputs_are_blocked_correctly():
    # More query rows than one block: the blocked loop must equal the brute force.
    rng = np.random.default_rng(10)
    c = rng.integers(0, 256, size=(3000, 32), dtype=np.uint8)
    q = np.concatenate([c[:100], rng.integers(0, 256, size=(250, 32), dtype=np.uint8)])
    res = match_video(q, c)
    assert (res.query_matched, res.compared_matched) == (100, 100)


# ------------------------------------------------------------------ re-encoded copies, unrelated videos


def _scene(name: str) -> str:
    """The scene a sample shows: the first token of its file name. The `chair-*` files are
    one recording with different lengths, colours and logos, `pattern-*` another; videos of
    different scenes are unrelated."""
    return name.split("-")[0]


def _reencode(cv2, src: Path, dst: Path, fourcc: str) -> None:
    cap = cv2.VideoCapture(str(src), cv2.CAP_FFMPEG)
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    fps = cap.get(cv2.CAP_PROP_FPS)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) // 2, int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) // 2
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert out.isOpened(), f"cannot write {fourcc}"
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.write(cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA))
    out.release()
    cap.release()


@pytest.fixture(scope="module")
def sample_hashes(cv2, vpdq_root) -> dict[str, VideoHash]:
    return {n: hash_video(vpdq_root / "sample-videos" / f"{n}.mp4", seconds_per_hash=1.0, in_process=True)
            for n in SAMPLE_NAMES}


@pytest.mark.parametrize("index", range(len(SAMPLE_NAMES) or 1))
def test_sample_matches_its_reencoded_copy(cv2, vpdq_root, sample_hashes, tmp_path, index):
    name = SAMPLE_NAMES[index]
    fourcc, ext = (("MJPG", "avi"), ("mp4v", "mp4"))[index % 2]  # alternate codec and container
    copy = tmp_path / f"{name}-half.{ext}"
    _reencode(cv2, vpdq_root / "sample-videos" / f"{name}.mp4", copy, fourcc)
    original = sample_hashes[name]
    reencoded = hash_video(copy, seconds_per_hash=1.0, in_process=True)
    assert (reencoded.width, reencoded.height) == (original.width // 2, original.height // 2)
    for query, cand in ((reencoded, original), (original, reencoded)):
        res = match_video(query, cand)
        assert res.is_match, f"{name} vs its {fourcc} copy: {res}"
        assert res.query_pct >= 90.0


def test_unrelated_samples_do_not_match(sample_hashes):
    names = list(sample_hashes)
    pairs = [(a, b) for a in names for b in names if _scene(a) != _scene(b)]
    assert pairs
    worst = max((match_video(sample_hashes[a], sample_hashes[b]).query_pct, a, b) for a, b in pairs)
    for a, b in pairs:
        res = match_video(sample_hashes[a], sample_hashes[b])
        assert not res.is_match, f"{a} should not match {b}: {res}"
    assert worst[0] < 80.0


def test_same_scene_edits_are_reported(sample_hashes, request):
    # Not asserted beyond sanity: how much of an edited chair/pattern video vPDQ finds in
    # another edit of the same recording (printed for the notes).
    names = list(sample_hashes)
    lines = ["same-scene vPDQ (query_pct of the row video in each other video of its scene)"]
    for a in names:
        row = [f"{b}={match_video(sample_hashes[a], sample_hashes[b]).query_pct:.0f}"
               for b in names if _scene(a) == _scene(b) and a != b]
        if row:
            lines.append(f"  {a}: " + " ".join(row))
    _print_uncaptured(request, lines)
    orig, grey = sample_hashes.get("chair-orig-22-sd-bar"), sample_hashes.get("chair-22-sd-grey-bar")
    if orig is not None and grey is not None:  # greyscale keeps the luma PDQ uses
        assert match_video(grey, orig).is_match


# ------------------------------------------------------------------ bad inputs, limits, timeouts


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
    _reencode(cv2, BUNDLED / f"{BUNDLED_NAME}.mp4", full, "MJPG")
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
