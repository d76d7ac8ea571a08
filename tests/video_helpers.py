"""Shared by the vPDQ tests: where the conformance data is, the fixtures that need it, and the
bit-count oracle.

Conformance data: `tests/data/vpdq` (one video) always; the 14 sample videos from
$NCII_HASH_CONFORMANCE/vpdq or ../shared/conformance/vpdq when present.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ncii_hash.video import VideoHash

HERE = Path(__file__).resolve().parent
BUNDLED = HERE / "data" / "vpdq"
BUNDLED_NAME = "test-padded-dimensions"

# Upstream rule (vpdq/cpp/regtest.py + match-hashes-byline): distance < 31 where both
# qualities are >= 50.
CONFORMANCE_DISTANCE_BELOW = 31
CONFORMANCE_MIN_QUALITY = 50
EVERY_FRAME_FILES = {"doorknob-hd-no-bar", "pattern-sd-with-small-logo-bar"}


def find_vpdq_root() -> Path | None:
    env = os.environ.get("NCII_HASH_CONFORMANCE")
    candidates = [Path(env)] if env else []
    candidates.append(HERE.parent.parent / "shared" / "conformance")
    for c in candidates:
        if (c / "vpdq" / "sample-videos").is_dir() and (c / "vpdq" / "sample-hashes").is_dir():
            return c / "vpdq"
    return None


VPDQ_ROOT = find_vpdq_root()
SAMPLE_NAMES = sorted(p.stem for p in (VPDQ_ROOT / "sample-videos").glob("*.mp4")) if VPDQ_ROOT else []
SKIP_FULL = "vPDQ sample videos not found (set NCII_HASH_CONFORMANCE or place them at ../shared/conformance/vpdq)"


def bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Oracle: per-row Hamming distance by unpacking bits."""
    return np.unpackbits(np.bitwise_xor(a, b), axis=-1).sum(axis=-1)


def expected_hash(path: Path) -> VideoHash:
    with open(path) as f:
        return VideoHash.from_vpdq_lines(f, source=str(path))


def reencode(cv2, src: Path, dst: Path, fourcc: str) -> None:
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


def print_uncaptured(request, lines: list[str]) -> None:
    """Print past pytest's output capture (shown with -q too)."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        print("\n" + "\n".join(lines), flush=True)
