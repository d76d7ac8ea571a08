"""vPDQ video hashing speed: ncii_hash.hash_video against Meta's ``vpdq`` package.

Both sides hash the same files in the same process, interleaved round by round, every frame
(``seconds_per_hash=0``) and one frame per second (``1.0``), on all cores (vpdq
``thread_count=0``, ours ``threads=0``). Throughput is *decoded* video frames per second
(at 1 s sampling every frame is still decoded; only 1 in ~30 is hashed). ``ncii_hash`` is the
default, guarded path (decoder in a subprocess, which costs a process start per file);
``ncii_hash-inprocess`` is ``in_process=True``. Target: >= 2x vpdq.

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


def run(ctx: harness.Context) -> None:
    cv2 = ctx.peer("cv2", dist="opencv-python-headless")
    if cv2 is None:
        ctx.note("ncii_hash video hashing needs OpenCV (pip install 'ncii-hash[video]'); nothing measured")
        return
    from ncii_hash import hash_video

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
                      threads="all cores (0) on both sides", repeats=3)

    groups, ours_fps, inproc_fps, vpdq_fps = [], [], [], []
    for label, sph in (("every-frame", 0.0), ("1s", 1.0)):
        def ours(sph=sph):
            for v in videos:
                hash_video(v, seconds_per_hash=sph)

        def ours_inprocess(sph=sph):
            for v in videos:
                hash_video(v, seconds_per_hash=sph, in_process=True)

        theirs = None
        if vpdq is not None:
            def theirs(sph=sph):
                for v in videos:
                    vpdq.computeHash(str(v), seconds_per_hash=sph, thread_count=0)

        name = f"hash_video/{label}"
        stats = ctx.compare(name, {"ncii_hash": ours, "ncii_hash-inprocess": ours_inprocess, "vpdq": theirs},
                            items=total_frames, per="decoded frame", repeats=3)
        ctx.ratio(name, "ncii_hash", "vpdq", target=TARGET)
        ctx.ratio(name, "ncii_hash-inprocess", "vpdq", target=TARGET)
        groups.append(label)
        ours_fps.append(total_frames / stats["ncii_hash"].median)
        inproc_fps.append(total_frames / stats["ncii_hash-inprocess"].median)
        vpdq_fps.append(total_frames / stats["vpdq"].median if "vpdq" in stats else None)

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
    ctx.plot_bars("video.png", "vPDQ hashing", groups,
                  {"ncii_hash": ours_fps, "ncii_hash in-process": inproc_fps, "vpdq": vpdq_fps},
                  ylabel="decoded frames/s")


def main(argv=None) -> int:
    return harness.main(run, NAME, argv)


if __name__ == "__main__":
    raise SystemExit(main())
