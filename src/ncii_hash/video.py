"""vPDQ: video hashing (PDQ of sampled frames) and the video matching rule.

Semantics follow Meta's vPDQ (facebook/ThreatExchange ``vpdq/``):

* Frames are numbered from 0 in decode order. Frame ``n`` is hashed iff
  ``n % int(seconds_per_hash * fps) == 0`` (a modulus of 0 -- and ``seconds_per_hash=0`` --
  means every frame). Its timestamp is ``n / fps``.
* Each hashed frame is PDQ of the whole decoded frame in RGB, with no pre-resize, through our
  bit-exact core. Hashes are not bit-identical to the reference tool's: decoders and colour
  converters differ (FFmpeg version, swscale filter), so conformance is checked with the
  upstream tolerance (distance < 31 where both qualities are >= 50).
* Rotation metadata is ignored (frames are hashed as stored), as vPDQ does, so hashes stay
  comparable with banks made by Meta's tools.
* The frame rate is OpenCV's (FFmpeg's guess from the stream's frame rates); vPDQ uses the
  stream's average frame rate. They agree for constant-rate video; variable-rate files may
  get different sampling and timestamps.

Safety (see DESIGN.md, "Privacy and safety rules"): only regular local files whose first bytes
are a known video container are passed to the decoder (no URLs, no playlists that could make
FFmpeg open a socket or another file); size limits are checked before and during decoding;
by default the decoder runs in a spawned subprocess that is killed on timeout, because a
hang or crash inside a C decoder cannot be interrupted from Python.

Thread-safety: ``hash_video`` and ``match_video`` may be called from several threads.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np

from . import _core
from .hashes import PDQ_HASH_BYTES, PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY, as_hash_array, from_hex

PathLike = Union[str, "os.PathLike[str]"]

#: Decoded frames allowed per video (about 4.6 hours at 30 fps).
DEFAULT_MAX_FRAMES = 500_000
#: Seconds of video allowed.
DEFAULT_MAX_VIDEO_DURATION = 4 * 3600.0
#: Pixels per frame allowed (8K UHD, 7680 x 4320).
DEFAULT_MAX_VIDEO_PIXELS = 7680 * 4320
#: Seconds the whole decode may take (subprocess mode kills the decoder after this).
DEFAULT_VIDEO_TIMEOUT = 1800.0
#: Seconds the decoder may go without producing a frame.
DEFAULT_STALL_TIMEOUT = 60.0

#: vPDQ match thresholds (python-threatexchange defaults): share of the query's frames that
#: must be found in the candidate, and share of the candidate's frames found in the query.
VPDQ_QUERY_MATCH_PCT = 80.0
VPDQ_COMPARED_MATCH_PCT = 0.0

# A decoded file may have a few frames fewer than its header announces (edit lists, a
# dropped last B-frame); more missing than this means the file is truncated or corrupt.
_MISSING_FRAMES_TOLERANCE = 2
_MISSING_FRAMES_FRACTION = 0.01
# Worker -> parent messages are sent at least this often while frames decode.
_PROGRESS_INTERVAL_S = 0.25
_INSTALL_HINT = "video hashing needs OpenCV: pip install 'ncii-hash[video]'"


class VideoError(ValueError):
    """A video could not be hashed; the message names the file and the reason."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    return cv2


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class VideoHash:
    """The vPDQ hash of one video: one PDQ hash per sampled frame, in frame order."""

    frames: np.ndarray  #: uint8 (F, 32) PDQ hashes
    qualities: np.ndarray  #: int32 (F,) PDQ quality 0..100
    frame_numbers: np.ndarray  #: int64 (F,) 0-based decode-order frame numbers
    timestamps: np.ndarray  #: float64 (F,) seconds, frame_number / fps
    md5: str  #: hex MD5 of the file bytes ("" when unknown, e.g. parsed from text)
    fps: float
    width: int
    height: int
    decoded_frames: int = 0  #: frames decoded in total (hashed or not)

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        """Seconds of video decoded (decoded_frames / fps)."""
        return self.decoded_frames / self.fps if self.fps > 0 else 0.0

    def to_vpdq_lines(self) -> list[str]:
        """Lines in vPDQ's text format: ``FRAME,QUALITY,PDQ_HEX,TIMESTAMP`` (3 decimals)."""
        return [
            f"{int(n)},{int(q)},{h.tobytes().hex()},{t:.3f}"
            for n, q, h, t in zip(self.frame_numbers, self.qualities, self.frames, self.timestamps)
        ]

    @classmethod
    def from_vpdq_lines(cls, lines: Any, *, source: str = "<vpdq text>") -> "VideoHash":
        """Parse vPDQ's text format (one ``FRAME,QUALITY,PDQ_HEX,TIMESTAMP`` per line).

        ``fps``, ``width`` and ``height`` are unknown in this format and set to 0.
        Raises :class:`VideoError` naming the line for anything malformed.
        """
        rows = []
        for lineno, line in enumerate(lines, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(",")
            try:
                if len(parts) != 4:
                    raise ValueError(f"expected 4 comma-separated fields, got {len(parts)}")
                n, q, t = int(parts[0]), int(parts[1]), float(parts[3])
                h = from_hex(parts[2]).tobytes()  # exactly 64 hex digits (fromhex allows spaces)
                # Frame numbers are stored as int64; a timestamp is a finite, non-negative time.
                if not 0 <= q <= 100 or not 0 <= n < 2**63 or not 0.0 <= t < float("inf"):
                    raise ValueError("quality must be 0..100, frame 0..2^63-1, timestamp finite and >= 0")
            except ValueError as exc:
                raise VideoError(source, f"line {lineno}: {exc}: {line[:100]!r}") from None
            rows.append((n, q, h, t))
        frames = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.uint8).reshape(-1, PDQ_HASH_BYTES).copy()
        return cls(
            frames=frames,
            qualities=np.array([r[1] for r in rows], dtype=np.int32),
            frame_numbers=np.array([r[0] for r in rows], dtype=np.int64),
            timestamps=np.array([r[3] for r in rows], dtype=np.float64),
            md5="", fps=0.0, width=0, height=0,
            decoded_frames=(rows[-1][0] + 1) if rows else 0,  # at least; the format doesn't say
        )


@dataclass(frozen=True)
class VideoMatch:
    """The vPDQ comparison of a query video with a candidate video."""

    query_pct: float  #: % of the query's unique good frames with a match in the candidate
    compared_pct: float  #: % of the candidate's unique good frames matched by the query
    is_match: bool  #: both percentages reach their thresholds
    query_frames: int  #: unique frames of the query with quality >= the quality threshold
    compared_frames: int  #: same for the candidate
    query_matched: int
    compared_matched: int


# --------------------------------------------------------------------------- matching


def _unique_good_frames(video: Union[VideoHash, np.ndarray], quality: int, name: str) -> np.ndarray:
    if isinstance(video, VideoHash):
        frames = as_hash_array(video.frames, name=f"{name}.frames")
        keep = np.asarray(video.qualities) >= quality
        frames = frames[keep]
    else:  # a bare (F, 32) array: no qualities, every frame counts
        frames = as_hash_array(video, name=name)
    if frames.shape[0] == 0:
        return frames
    return np.ascontiguousarray(np.unique(frames, axis=0))


if hasattr(np, "bitwise_count"):
    def _popcount64(x: np.ndarray) -> np.ndarray:
        return np.bitwise_count(x).sum(axis=-1, dtype=np.int32)
else:  # pragma: no cover - numpy < 2.0
    _POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount64(x: np.ndarray) -> np.ndarray:
        bytes_ = x.view(np.uint8).reshape(x.shape[:-1] + (x.shape[-1] * 8,))
        return _POPCOUNT8[bytes_].sum(axis=-1, dtype=np.int32)


def _any_within(q: np.ndarray, c: np.ndarray, distance: int) -> tuple[np.ndarray, np.ndarray]:
    """For (Q,32) and (C,32) hashes: which rows of q have some row of c within
    ``distance`` (inclusive), and which rows of c have some row of q within it."""
    q_hit = np.zeros(q.shape[0], dtype=bool)
    c_hit = np.zeros(c.shape[0], dtype=bool)
    if q.shape[0] == 0 or c.shape[0] == 0:
        return q_hit, c_hit
    q64 = q.view(np.uint64)  # (Q, 4): popcount of XOR is byte-order independent
    c64 = c.view(np.uint64)
    block = max(1, (1 << 19) // c.shape[0])  # ~16 MB of XOR words per block
    for start in range(0, q.shape[0], block):
        close = _popcount64(q64[start:start + block, None, :] ^ c64[None, :, :]) <= distance
        q_hit[start:start + block] = close.any(axis=1)
        c_hit |= close.any(axis=0)
    return q_hit, c_hit


def match_video(
    query: Union[VideoHash, np.ndarray],
    candidate: Union[VideoHash, np.ndarray],
    *,
    distance: int = PDQ_MATCH_THRESHOLD,
    quality: int = PDQ_MIN_QUALITY,
    query_pct: float = VPDQ_QUERY_MATCH_PCT,
    compared_pct: float = VPDQ_COMPARED_MATCH_PCT,
) -> VideoMatch:
    """Compare two videos with the vPDQ rule.

    In each video, frames with quality < ``quality`` are dropped, then identical hashes are
    counted once. A frame matches when some frame of the other video is within ``distance``
    bits, **inclusive** (the library-wide PDQ rule and python-threatexchange's vPDQ matcher;
    the C++ ``match-hashes-brute`` tool uses ``< distanceTolerance``, so our ``distance=31``
    equals its tolerance 32). ``is_match`` iff the query's matched share >= ``query_pct`` and
    the candidate's matched share >= ``compared_pct`` (80 and 0 by default: the query is
    largely contained in the candidate; a candidate may be a longer video containing it).
    A video with no frame left after filtering has 0 % and never matches.

    Bare ``(F, 32)`` arrays are accepted (every frame then counts, no quality filter).
    """
    if not 0 <= distance <= 256:
        raise ValueError(f"distance must be 0..256 bits; got {distance}")
    q = _unique_good_frames(query, quality, "query")
    c = _unique_good_frames(candidate, quality, "candidate")
    q_hit, c_hit = _any_within(q, c, distance)
    qn, cn = int(q_hit.sum()), int(c_hit.sum())
    q_pct = 100.0 * qn / q.shape[0] if q.shape[0] else 0.0
    c_pct = 100.0 * cn / c.shape[0] if c.shape[0] else 0.0
    ok = q.shape[0] > 0 and c.shape[0] > 0 and q_pct >= query_pct and c_pct >= compared_pct
    return VideoMatch(
        query_pct=q_pct, compared_pct=c_pct, is_match=bool(ok),
        query_frames=int(q.shape[0]), compared_frames=int(c.shape[0]),
        query_matched=qn, compared_matched=cn,
    )


# --------------------------------------------------------------------------- input checks


def _looks_like_video_container(head: bytes) -> Optional[str]:
    """Name of the container whose signature starts ``head``, or None.

    An allow-list: FFmpeg also opens text formats (HLS playlists, concat lists, SDP...) that
    can point it at URLs or other files, which the survivor path must never do.
    """
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
        return "mp4/mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska/webm"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf/wmv"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg-ps"
    if len(head) >= 377 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "mpeg-ts"
    return None


def _check_input(path: PathLike) -> str:
    """Absolute path of a readable regular file holding a known container; else VideoError."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    name = os.fsdecode(path)
    if not os.path.exists(name):
        raise VideoError(name, "file not found")
    if not os.path.isfile(name):
        raise VideoError(name, "not a regular file")
    try:
        with open(name, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise VideoError(name, f"cannot read: {exc.strerror or exc}") from None
    if not head:
        raise VideoError(name, "empty file (0 bytes)")
    if _looks_like_video_container(head) is None:
        raise VideoError(
            name, "not a recognised video container (allowed: mp4/mov/3gp, mkv/webm, avi, flv, ogg, wmv, mpeg-ps/ts)"
        )
    return os.path.abspath(name)


def _file_md5(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class _Options:
    seconds_per_hash: float
    max_frames: int
    max_duration: float
    max_pixels: int
    threads: int
    timeout: Optional[float]  # only used in-process (between frames)


class _Abort(Exception):
    """Raised inside the decode loop with a reason for VideoError."""


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _hash_bgr(frame: np.ndarray, cv2: Any) -> tuple[np.ndarray, int]:
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    h, q, _ = _core.pdq_hash(rgb, False)
    return h, int(q)


def _decode_and_hash(path: str, opts: _Options, emit: Callable[[str, Any], None]) -> None:
    """:func:`_decode_frames`, with any failure of OpenCV or the core turned into ``_Abort``."""
    try:
        _decode_frames(path, opts, emit)
    except (_Abort, ImportError):
        raise
    except Exception as exc:  # cv2.error, ValueError from the core, MemoryError...
        raise _Abort(f"decoding failed: {type(exc).__name__}: {exc}") from None


def _decode_frames(path: str, opts: _Options, emit: Callable[[str, Any], None]) -> None:
    """Decode ``path`` and hash the sampled frames, reporting through ``emit``:

    ``("meta", dict)`` once, then ``("frames", (numbers, hashes, qualities, decoded))``
    batches in frame order, then ``("done", decoded_frames)``. Problems raise ``_Abort``.
    Hashing runs on a thread pool (cvtColor and the PDQ core release the GIL) while this
    thread keeps decoding; at most ``2 * threads + 2`` frames are in flight.
    """
    cv2 = _import_cv2()
    threads = opts.threads or _default_threads()
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])
    try:
        if not cap.isOpened():
            raise _Abort("cannot open as video (corrupt, truncated, or no decodable video stream)")
        # vPDQ hashes frames as stored; don't let OpenCV apply rotation metadata.
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if not (fps > 0 and np.isfinite(fps)):
            raise _Abort("video has no usable frame rate")
        if width <= 0 or height <= 0:
            raise _Abort("video has no frame size")
        if width * height > opts.max_pixels:
            raise _Abort(f"frame size {width}x{height} exceeds max_pixels={opts.max_pixels}")
        if announced > opts.max_frames:
            raise _Abort(f"video announces {announced} frames, more than max_frames={opts.max_frames}")
        if announced / fps > opts.max_duration:
            raise _Abort(f"video lasts {announced / fps:.1f} s, more than max_duration={opts.max_duration} s")
        emit("meta", {"fps": fps, "width": width, "height": height, "announced": announced})

        modulus = int(opts.seconds_per_hash * fps) or 1  # as vPDQ: truncation, 0 -> every frame
        pool = None
        if threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ncii-vpdq")
        pending: deque = deque()
        numbers: list[int] = []
        hashes: list[np.ndarray] = []
        quals: list[int] = []
        started = last_sent = time.monotonic()
        n = 0

        def collect(number: int, result: Any) -> None:
            h, q = result.result() if pool is not None else result
            numbers.append(number)
            hashes.append(h)
            quals.append(q)

        def flush() -> None:
            batch = (
                np.array(numbers, dtype=np.int64),
                np.array(hashes, dtype=np.uint8).reshape(-1, PDQ_HASH_BYTES),
                np.array(quals, dtype=np.int32),
                n,
            )
            numbers.clear()
            hashes.clear()
            quals.clear()
            emit("frames", batch)

        try:
            while True:
                sampled = n % modulus == 0
                if sampled:
                    ok, frame = cap.read()
                else:
                    ok, frame = cap.grab(), None
                if not ok:
                    break
                if n >= opts.max_frames:
                    raise _Abort(f"more than max_frames={opts.max_frames} frames")
                if n / fps > opts.max_duration:
                    raise _Abort(f"longer than max_duration={opts.max_duration} s")
                if frame is not None:
                    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                        raise _Abort(f"frame {n}: unexpected decoded frame {frame.dtype} {frame.shape}")
                    if frame.shape[0] * frame.shape[1] > opts.max_pixels:
                        raise _Abort(f"frame {n}: size {frame.shape[1]}x{frame.shape[0]} exceeds max_pixels")
                    if pool is not None:
                        pending.append((n, pool.submit(_hash_bgr, frame, cv2)))
                        while len(pending) > 2 * threads + 2:
                            collect(*pending.popleft())
                    else:
                        collect(n, _hash_bgr(frame, cv2))
                n += 1
                now = time.monotonic()
                if opts.timeout is not None and now - started > opts.timeout:
                    raise _Abort(f"timed out after {opts.timeout} s")
                if now - last_sent >= _PROGRESS_INTERVAL_S:
                    while pending and pending[0][1].done():
                        collect(*pending.popleft())
                    flush()
                    last_sent = now
            while pending:
                collect(*pending.popleft())
        finally:
            if pool is not None:
                for _, fut in pending:
                    fut.cancel()
                pool.shutdown(wait=True)
        flush()
        if n == 0:
            raise _Abort("no decodable video frames")
        if announced > 0 and n < announced - max(_MISSING_FRAMES_TOLERANCE, _MISSING_FRAMES_FRACTION * announced):
            raise _Abort(f"truncated or corrupt: decoded {n} of {announced} frames")
        emit("done", n)
    finally:
        cap.release()


def _worker_main(path: str, opts: _Options, conn: Any) -> None:
    """Decode and hash in the worker process, streaming messages to ``conn``."""
    try:
        _decode_and_hash(path, opts, lambda kind, payload: conn.send((kind, payload)))
    except _Abort as exc:
        conn.send(("error", str(exc)))
    except ImportError as exc:
        conn.send(("import-error", str(exc)))
    except BaseException as exc:  # report anything to the parent rather than die silently
        conn.send(("error", f"decoding failed: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _subprocess_entry(argv: list[str]) -> None:
    """``python -c`` entry point of the worker: ``argv = [options_json, path, worker]``.

    Messages go to the original stdout; fd 1 is then pointed at stderr so that nothing a C
    library prints can corrupt the message stream.
    """
    import json
    from multiprocessing.connection import Connection

    # Belt and braces with the container allow-list: FFmpeg may open local files only.
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "protocol_whitelist;file")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    msg_fd = os.dup(1)
    os.dup2(2, 1)
    conn = Connection(msg_fd, readable=False)
    opts = _Options(**json.loads(argv[0]))
    worker = globals()[argv[2]] if argv[2] in _WORKERS else _worker_main
    worker(argv[1], opts, conn)


_WORKERS = ("_worker_main", "_worker_hang_for_tests", "_worker_crash_for_tests")


def _worker_crash_for_tests(path: str, opts: _Options, conn: Any) -> None:
    """A worker that dies like a decoder with memory corruption (used by the tests)."""
    os.abort()


def _worker_hang_for_tests(path: str, opts: _Options, conn: Any) -> None:
    """A worker that hangs like a stuck decoder (used by the timeout tests)."""
    conn.send(("meta", {"fps": 1.0, "width": 1, "height": 1, "announced": 0}))
    time.sleep(3600)


class _Collector:
    """Accumulates worker messages into a VideoHash."""

    def __init__(self) -> None:
        self.meta: Optional[dict] = None
        self.parts: list[tuple] = []
        self.decoded = 0
        self.done = False

    def __call__(self, kind: str, payload: Any) -> None:
        if kind == "meta":
            self.meta = payload
        elif kind == "frames":
            self.parts.append(payload)
            self.decoded = payload[3]
        elif kind == "done":
            self.decoded = payload
            self.done = True

    def result(self, md5: str) -> VideoHash:
        assert self.meta is not None and self.done
        numbers = np.concatenate([p[0] for p in self.parts]) if self.parts else np.zeros(0, np.int64)
        frames = np.concatenate([p[1] for p in self.parts]) if self.parts else np.zeros((0, 32), np.uint8)
        quals = np.concatenate([p[2] for p in self.parts]) if self.parts else np.zeros(0, np.int32)
        fps = float(self.meta["fps"])
        return VideoHash(
            frames=np.ascontiguousarray(frames), qualities=quals, frame_numbers=numbers,
            timestamps=numbers / fps, md5=md5, fps=fps,
            width=int(self.meta["width"]), height=int(self.meta["height"]),
            decoded_frames=int(self.decoded),
        )


def _run_in_subprocess(
    path: str,
    opts: _Options,
    collector: Callable[[str, Any], None],
    *,
    timeout: Optional[float],
    stall_timeout: Optional[float],
    worker: str = "_worker_main",
) -> None:
    """Run ``worker`` on ``path`` in a fresh Python process, feeding its messages to
    ``collector`` until it reports done or an error. The process is killed on timeout
    (total ``timeout``, or ``stall_timeout`` without a message) and on any exit path.

    A plain subprocess rather than multiprocessing's spawn: spawn re-imports the caller's
    ``__main__``, which breaks scripts without a ``__main__`` guard and costs start-up time.
    """
    import json
    import subprocess
    import sys
    import tempfile
    from multiprocessing.connection import Connection

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from ncii_hash.video import _subprocess_entry; _subprocess_entry(sys.argv[2:])"
    )
    options = json.dumps(opts.__dict__)
    started = time.monotonic()
    with tempfile.TemporaryFile() as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, package_parent, options, path, worker],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errlog, close_fds=True,
        )
        assert proc.stdout is not None
        recv = Connection(os.dup(proc.stdout.fileno()), writable=False)
        proc.stdout.close()
        try:
            while True:
                waits = []
                if timeout is not None:
                    waits.append(timeout - (time.monotonic() - started))
                if stall_timeout is not None:
                    waits.append(stall_timeout)
                wait = max(0.0, min(waits)) if waits else None
                if not recv.poll(wait):
                    if timeout is not None and time.monotonic() - started >= timeout:
                        raise VideoError(path, f"timed out after {timeout} s (decoder killed)")
                    raise VideoError(path, f"decoder made no progress for {stall_timeout} s (killed)")
                try:
                    kind, payload = recv.recv()
                except EOFError:
                    code_ = proc.wait(5)
                    how = f"signal {-code_}" if code_ < 0 else f"exit code {code_}"
                    errlog.seek(0)
                    tail = errlog.read()[-300:].decode("utf-8", "replace").strip().splitlines()
                    detail = f": {tail[-1]}" if tail else ""
                    raise VideoError(path, f"decoder process died ({how}){detail}") from None
                if kind == "error":
                    raise VideoError(path, payload)
                if kind == "import-error":
                    raise ImportError(payload)
                collector(kind, payload)
                if kind == "done":
                    return
        finally:
            recv.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def hash_video(
    path: PathLike,
    *,
    seconds_per_hash: float = 1.0,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_duration: float = DEFAULT_MAX_VIDEO_DURATION,
    max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS,
    timeout: Optional[float] = DEFAULT_VIDEO_TIMEOUT,
    stall_timeout: Optional[float] = DEFAULT_STALL_TIMEOUT,
    threads: int = 0,
    in_process: bool = False,
) -> VideoHash:
    """vPDQ hash of a video file: PDQ of one frame every ``seconds_per_hash`` (0 = every frame).

    Raises :class:`VideoError` (a ValueError) naming the file for a missing, empty,
    unrecognised, corrupt or truncated file, a file over ``max_frames`` decoded frames,
    ``max_duration`` seconds or ``max_pixels`` per frame, and on timeout. Needs the
    ``video`` extra (OpenCV); without it raises ImportError naming the extra.

    By default the file is decoded in a spawned subprocess (about half a second of
    start-up per call): a decoder that hangs is killed after ``timeout`` seconds in total or
    ``stall_timeout`` seconds without a decoded frame, and a decoder crash becomes a
    VideoError instead of taking the caller down. ``in_process=True`` skips the subprocess
    (faster for many short videos, and for trusted input): limits still apply, timeouts are
    only checked between frames, and a hang or crash in FFmpeg hangs or crashes the caller.

    ``threads``: hashing threads in the decoding process (0 = all cores); FFmpeg's decoder
    uses the same number of threads.
    """
    if not (seconds_per_hash >= 0 and np.isfinite(seconds_per_hash)):
        raise ValueError(f"seconds_per_hash must be >= 0 (0 = every frame); got {seconds_per_hash}")
    for name, value in (("max_frames", max_frames), ("max_pixels", max_pixels)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if not max_duration > 0:
        raise ValueError(f"max_duration must be > 0 seconds; got {max_duration!r}")
    for name, value in (("timeout", timeout), ("stall_timeout", stall_timeout)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0 seconds or None; got {value!r}")
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 = all cores); got {threads}")
    source = _check_input(path)
    opts = _Options(
        seconds_per_hash=float(seconds_per_hash), max_frames=int(max_frames),
        max_duration=float(max_duration), max_pixels=int(max_pixels), threads=int(threads),
        timeout=timeout if in_process else None,
    )
    collector = _Collector()
    if in_process:
        try:
            _decode_and_hash(source, opts, collector)
        except _Abort as exc:
            raise VideoError(source, str(exc)) from None
    else:
        _import_cv2()  # fail fast, in the caller, when the extra is missing
        _run_in_subprocess(source, opts, collector, timeout=timeout, stall_timeout=stall_timeout)
    return collector.result(_file_md5(source))
