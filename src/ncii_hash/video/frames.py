"""What every video decoder shares: options, limits, sampling, the frame hasher and progress
messages (the worker side of :mod:`ncii_hash.video.vpdq`).

Two decoders sit behind :func:`ncii_hash.video.decode.decode_and_hash`:

* PyAV (``av``, the ``video`` extra; FFmpeg bundled in its wheels), preferred. For H.264 it
  decodes only what the sampled frames need (:mod:`.pyav`); hashes equal its
  decode-everything output bit for bit.
* OpenCV (``cv2.VideoCapture``, :mod:`.opencv`), the fallback when PyAV is not installed.

Both number frames from 0 in presentation (decoder output) order, as vPDQ does, and hash frame
``n`` iff ``n % modulus == 0`` with ``modulus = int(seconds_per_hash * fps) or 1``.

Messages go to ``emit(kind, payload)``: ``("meta", dict)`` once, ``("progress", frames)`` at
least every ``PROGRESS_INTERVAL_S`` while the file is read, ``("stats", dict)`` (decoder used,
frames it decoded), then ``("done", (numbers, hashes, qualities, frames_in_video))``. Problems raise :class:`Abort` with the reason.

Thread-safety: every call builds its own decoder and thread pool; calls may run concurrently.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from .._core import pdq_hash
from ..hashes import PDQ_HASH_BYTES

#: Decoders :func:`decode_and_hash` knows; "auto" = PyAV when installed, else OpenCV.
DECODERS = ("auto", "pyav", "opencv")
INSTALL_HINT = "video hashing needs PyAV (or OpenCV): pip install 'ncii-hash[video]'"
# A decoded file may have a few frames fewer than its header announces (edit lists, a
# dropped last B-frame); more missing than this means the file is truncated or corrupt.
MISSING_FRAMES_TOLERANCE = 2
MISSING_FRAMES_FRACTION = 0.01
# Worker -> parent messages are sent at least this often while a file is read.
PROGRESS_INTERVAL_S = 0.25

Emit = Callable[[str, Any], None]


@dataclass(frozen=True)
class Options:
    seconds_per_hash: float
    max_frames: int
    max_duration: float
    max_pixels: int
    threads: int
    timeout: Optional[float]  # only used in-process (between frames)
    decoder: str = "auto"
    # PyAV + H.264 only: skip decoding frames no sampled frame needs. False = decode all.
    skip_unsampled: bool = True


class Abort(Exception):
    """Raised inside a decoder with a reason for VideoError."""


def sampling_modulus(seconds_per_hash: float, fps: float) -> int:
    """vPDQ's rule: truncate, and a modulus of 0 means every frame."""
    return int(seconds_per_hash * fps) or 1


def check_stream(opts: Options, fps: float, width: int, height: int, announced: int) -> None:
    """Limits that can be checked from the container header, before any decoding."""
    if not (fps > 0 and np.isfinite(fps)):
        raise Abort("video has no usable frame rate")
    if width <= 0 or height <= 0:
        raise Abort("video has no frame size")
    if width * height > opts.max_pixels:
        raise Abort(f"frame size {width}x{height} exceeds max_pixels={opts.max_pixels}")
    if announced > opts.max_frames:
        raise Abort(f"video announces {announced} frames, more than max_frames={opts.max_frames}")
    if announced / fps > opts.max_duration:
        raise Abort(f"video lasts {announced / fps:.1f} s, more than max_duration={opts.max_duration} s")


def check_frame_count(opts: Options, n: int, fps: float) -> None:
    """Limits on the frames seen so far (``n`` = index of the frame about to be counted)."""
    if n >= opts.max_frames:
        raise Abort(f"more than max_frames={opts.max_frames} frames")
    if n / fps > opts.max_duration:
        raise Abort(f"longer than max_duration={opts.max_duration} s")


def check_complete(n: int, announced: int) -> None:
    if n == 0:
        raise Abort("no decodable video frames")
    if announced > 0 and n < announced - max(MISSING_FRAMES_TOLERANCE, MISSING_FRAMES_FRACTION * announced):
        raise Abort(f"truncated or corrupt: decoded {n} of {announced} frames")


class FrameHasher:
    """Hashes frames on a thread pool (colour conversion and the PDQ core release the GIL)
    while the caller keeps decoding; at most ``2 * threads + 2`` frames are in flight.
    ``add(n, to_rgb, frame)`` hashes ``to_rgb(frame)`` as frame ``n``; results come out
    sorted by frame number."""

    def __init__(self, threads: int):
        self.threads = threads
        self.pool = None
        if threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ncii-vpdq")
        self.pending: deque = deque()
        self.rows: list[tuple[int, np.ndarray, int]] = []

    @staticmethod
    def _hash(to_rgb: Callable[[Any], np.ndarray], frame: Any) -> tuple[np.ndarray, int]:
        h, q, _ = pdq_hash(to_rgb(frame), False)
        return h, int(q)

    def add(self, n: int, to_rgb: Callable[[Any], np.ndarray], frame: Any) -> None:
        if self.pool is None:
            self.rows.append((n, *self._hash(to_rgb, frame)))
            return
        self.pending.append((n, self.pool.submit(self._hash, to_rgb, frame)))
        while len(self.pending) > 2 * self.threads + 2:
            self._collect()
        while self.pending and self.pending[0][1].done():
            self._collect()

    def _collect(self) -> None:
        n, fut = self.pending.popleft()
        self.rows.append((n, *fut.result()))

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        while self.pending:
            self._collect()
        self.rows.sort(key=lambda r: r[0])
        numbers = np.array([r[0] for r in self.rows], dtype=np.int64)
        hashes = np.array([r[1] for r in self.rows], dtype=np.uint8).reshape(-1, PDQ_HASH_BYTES)
        quals = np.array([r[2] for r in self.rows], dtype=np.int32)
        return numbers, hashes, quals

    def close(self) -> None:
        if self.pool is not None:
            for _, fut in self.pending:
                fut.cancel()
            self.pool.shutdown(wait=True)
            self.pool = None

    def __enter__(self) -> "FrameHasher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Progress:
    """Rate-limited liveness messages and the in-process timeout."""

    def __init__(self, emit: Emit, timeout: Optional[float]):
        self.emit = emit
        self.timeout = timeout
        self.started = self.last = time.monotonic()

    def tick(self, n: int) -> None:
        now = time.monotonic()
        if self.timeout is not None and now - self.started > self.timeout:
            raise Abort(f"timed out after {self.timeout} s")
        if now - self.last >= PROGRESS_INTERVAL_S:
            self.emit("progress", n)
            self.last = now
