"""The vPDQ matching rule against a brute-force oracle, and real videos against re-encoded copies."""

from __future__ import annotations


import numpy as np
import pytest

from ncii_hash.video import VideoHash, hash_video, match_video

from video_helpers import (print_uncaptured, reencode, BUNDLED, BUNDLED_NAME, CONFORMANCE_DISTANCE_BELOW, CONFORMANCE_MIN_QUALITY,  # noqa: F401
                           EVERY_FRAME_FILES, HERE, SAMPLE_NAMES, VPDQ_ROOT, bits, expected_hash)


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


def flip_bits(h: np.ndarray, k: int, rng) -> np.ndarray:
    unpacked = np.unpackbits(h.copy())
    idx = rng.choice(256, size=k, replace=False)
    unpacked[idx] ^= 1
    return np.packbits(unpacked)


@pytest.mark.parametrize("seed", range(6))
def test_match_video_agrees_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(40, 32), dtype=np.uint8)
    q = base[rng.integers(0, 40, size=60)]  # duplicates on purpose
    c = np.stack([flip_bits(base[i], int(rng.integers(20, 45)), rng) for i in rng.integers(0, 40, size=50)])
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
    at31 = flip_bits(h[0], 31, rng)[None]
    at32 = flip_bits(h[0], 32, rng)[None]
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


@pytest.fixture(scope="module")
def sample_hashes(cv2, vpdq_root) -> dict[str, VideoHash]:
    return {n: hash_video(vpdq_root / "sample-videos" / f"{n}.mp4", seconds_per_hash=1.0, in_process=True)
            for n in SAMPLE_NAMES}


@pytest.mark.parametrize("index", range(len(SAMPLE_NAMES) or 1))
def test_sample_matches_its_reencoded_copy(cv2, vpdq_root, sample_hashes, tmp_path, index):
    name = SAMPLE_NAMES[index]
    fourcc, ext = (("MJPG", "avi"), ("mp4v", "mp4"))[index % 2]  # alternate codec and container
    copy = tmp_path / f"{name}-half.{ext}"
    reencode(cv2, vpdq_root / "sample-videos" / f"{name}.mp4", copy, fourcc)
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
    print_uncaptured(request, lines)
    orig, grey = sample_hashes.get("chair-orig-22-sd-bar"), sample_hashes.get("chair-22-sd-grey-bar")
    if orig is not None and grey is not None:  # greyscale keeps the luma PDQ uses
        assert match_video(grey, orig).is_match
