"""vPDQ video hashing speed: ncii_hash.hash_video against Meta's ``vpdq`` package.

Both sides hash the same files in the same process, interleaved round by round, every frame
(``seconds_per_hash=0``) and one frame per second (``1.0``), on all cores (vpdq
``thread_count=0``, ours ``threads=0``). Throughput is **video frames per second: the frames
the files contain, whether a side decodes them or not**, the same count for every side. vpdq
decodes every frame; ours (PyAV) skips, for H.264, the frames no sampled frame needs, and the
JSON config records how many it really decoded.

Subjects: ``ncii_hash`` is the default, guarded path (decoder in a worker process started once
and reused across files; its start falls in the warm-up round); ``ncii_hash-fresh-worker``
starts a new worker for every file (the cost a one-video CLI run pays); ``ncii_hash-inprocess``
is ``in_process=True``; ``ncii_hash-opencv`` is in-process with the OpenCV fallback decoder
(decodes every frame). Target: >= 2x vpdq.

Checks: frame counts equal to vpdq's, and per-frame distance < 31 wherever both qualities
are >= 50 (the upstream vPDQ conformance rule; decoders differ, so not bit-exact).

Files: the vPDQ sample videos ($NCII_HASH_CONFORMANCE/vpdq or ../shared/conformance/vpdq),
else the one bundled in tests/data/vpdq. ``vpdq`` builds from source against FFmpeg:
``apt-get install -y libavcodec-dev libavformat-dev libavdevice-dev libavfilter-dev
libswscale-dev pkg-config && pip install vpdq``; without it the peer is reported skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmarks import harness

NAME = "video"
ROOT = Path(__file__).resolve().parent.parent
QUICK_FILES = ("doorknob-hd-no-bar", "test-padded-dimensions")
TARGET = 2.0


def _sample_dir() -> Path:
    env = os.environ.get("NCII_HASH_CONFORMANCE")
    for c in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "conformance"]:
        if (c / "vpdq" / "sample-videos").is_dir():
            return c / "vpdq" / "sample-videos"
    return ROOT / "tests" / "data" / "vpdq"


def _vpdq_arrays(features) -> tuple[np.ndarray, np.ndarray]:
    hashes = np.array([bytes.fromhex(f.hex) for f in features], dtype=object)
    frames = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(-1, 32) if len(hashes) else np.zeros((0, 32), np.uint8)
    return frames, np.array([f.quality for f in features], dtype=np.int32)


def _frames_decoded(path: Path, seconds_per_hash: float) -> int:
    from ncii_hash.video import vpdq as V
    from ncii_hash.video.decode import decode_and_hash
    from ncii_hash.video.frames import Options

    source, container = V._check_input(path)
    collector = V._Collector()
    decode_and_hash(source, container, Options(seconds_per_hash, 10**7, 1e7, 10**9, 0, None), collector)
    return int(collector.stats["decoded"])


def run(ctx: harness.Context) -> None:
    if ctx.peer("av") is None and ctx.peer("cv2", dist="opencv-python-headless") is None:
        ctx.note("ncii_hash video hashing needs PyAV or OpenCV (pip install 'ncii-hash[video]'); nothing measured")
        return
    from ncii_hash import hash_video
    from ncii_hash._util.optional import try_import
    from ncii_hash.video.worker import POOL

    have_opencv = try_import("cv2") is not None and try_import("av") is not None  # else it is the default
    vpdq = ctx.peer("vpdq")
    folder = _sample_dir()
    videos = sorted(folder.glob("*.mp4"))
    if ctx.quick:
        videos = [v for v in videos if v.stem in QUICK_FILES] or videos[:1]
    total_frames = 0
    sizes = {}
    for v in videos:
        vh = hash_video(v, seconds_per_hash=60.0, in_process=True)
        total_frames += vh.decoded_frames
        sizes[v.name] = f"{vh.width}x{vh.height}, {vh.decoded_frames} frames"
    ctx.config.update(files=sizes, folder=str(folder), total_frames=total_frames,
                      threads="all cores (0) on both sides", repeats=3,
                      throughput="video frames in the files per second (decoded or skipped), same count for all sides",
                      frames_decoded_by_ncii_hash={label: sum(_frames_decoded(v, sph) for v in videos)
                                                   for label, sph in (("every-frame", 0.0), ("1s", 1.0))})

    subjects = ("ncii_hash", "ncii_hash-fresh-worker", "ncii_hash-inprocess", "ncii_hash-opencv", "vpdq")
    groups, fps = [], {k: [] for k in subjects}
    for label, sph in (("every-frame", 0.0), ("1s", 1.0)):
        def ours(sph=sph):
            for v in videos:
                hash_video(v, seconds_per_hash=sph)

        def ours_fresh_worker(sph=sph):
            for v in videos:
                POOL.close()
                hash_video(v, seconds_per_hash=sph)

        def ours_inprocess(sph=sph):
            for v in videos:
                hash_video(v, seconds_per_hash=sph, in_process=True)

        ours_opencv = None
        if have_opencv:
            def ours_opencv(sph=sph):
                for v in videos:
                    hash_video(v, seconds_per_hash=sph, in_process=True, decoder="opencv")

        theirs = None
        if vpdq is not None:
            def theirs(sph=sph):
                for v in videos:
                    vpdq.computeHash(str(v), seconds_per_hash=sph, thread_count=0)

        name = f"hash_video/{label}"
        stats = ctx.compare(name, dict(zip(subjects, (ours, ours_fresh_worker, ours_inprocess, ours_opencv, theirs))),
                            items=total_frames, per="video frame", repeats=3)
        for subject in subjects[:-1]:
            ctx.ratio(name, subject, "vpdq", target=TARGET)
        groups.append(label)
        for subject in subjects:
            fps[subject].append(total_frames / stats[subject].median if subject in stats else None)

    if vpdq is not None:  # agreement with the peer, every frame, upstream tolerance
        worst, frames_equal, compared = 0, True, 0
        for v in videos:
            mine = hash_video(v, seconds_per_hash=0, in_process=True)
            frames, quals = _vpdq_arrays(vpdq.computeHash(str(v), seconds_per_hash=0, thread_count=0))
            if frames.shape[0] != len(mine):
                frames_equal = False
                continue
            d = np.unpackbits(frames ^ mine.frames, axis=1).sum(axis=1)
            good = (quals >= 50) & (mine.qualities >= 50)
            compared += int(good.sum())
            worst = max(worst, int(d[good].max()) if good.any() else 0)
        ctx.check("same frame count as vpdq", frames_equal)
        ctx.check("per-frame distance < 31 to vpdq where both qualities >= 50", frames_equal and worst < 31,
                  max_distance=worst, frames_compared=compared)
    ctx.plot_bars("video.png", "vPDQ hashing", groups, fps, ylabel="video frames/s")


def main(argv=None) -> int:
    return harness.main(run, NAME, argv)


if __name__ == "__main__":
    raise SystemExit(main())
