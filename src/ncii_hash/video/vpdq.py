"""vPDQ: video hashing (PDQ of sampled frames) and the video matching rule.

Semantics follow Meta's vPDQ (facebook/ThreatExchange ``vpdq/``):

* Frames are numbered from 0 in presentation order (the order a decoder outputs them, which
  is how vPDQ counts). Frame ``n`` is hashed iff
  ``n % int(seconds_per_hash * fps) == 0`` (a modulus of 0 -- and ``seconds_per_hash=0`` --
  means every frame). Its timestamp is ``n / fps``.
* Each hashed frame is PDQ of the whole decoded frame in RGB, with no pre-resize, through our
  bit-exact core. With PyAV (the default decoder) the RGB is FFmpeg swscale's RGB24, as in
  vPDQ; with the OpenCV fallback it is OpenCV's BGR flipped to RGB. Hashes are not promised
  bit-identical to the reference tool's (FFmpeg versions differ), so conformance is checked
  with the upstream tolerance (distance < 31 where both qualities are >= 50).
* Only the frames the sampled frames need are decoded where that is provably exact (H.264 with
  PyAV, see :mod:`.pyav`); the result equals decoding every frame.
* Rotation metadata is ignored (frames are hashed as stored), as vPDQ does, so hashes stay
  comparable with banks made by Meta's tools.
* The frame rate is the stream's average frame rate, as vPDQ's, with PyAV; OpenCV reports
  FFmpeg's guess (r_frame_rate) instead. They agree for constant-rate video; variable-rate
  files may get different sampling and timestamps under OpenCV.

Safety (see DESIGN.md, "Privacy and safety rules"): only regular local files whose first bytes
are a known video container are passed to the decoder (no URLs, no playlists that could make
FFmpeg open a socket or another file); size limits are checked before and during decoding;
PyAV opens the file with the demuxer of the sniffed container only and the ``file`` protocol
only; by default the decoder runs in a worker process (:mod:`.worker`, reused across
files) that is killed on timeout, because a hang or crash inside a C decoder cannot be
interrupted from Python.

Thread-safety: ``hash_video`` and ``match_video`` may be called from several threads.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from ..errors import VideoError
from ..hashes import PDQ_HASH_BYTES, bit_count, PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY, as_hash_array, from_hex
from .decode import choose_decoder, decode_and_hash
from .frames import DECODERS, Abort, Options

PathLike = Union[str, "os.PathLike[str]"]
#: A video file's path, or the whole file's bytes (decoded from memory: PyAV only).
VideoSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]
#: How a video given as bytes is named in errors.
IN_MEMORY_NAME = "<video in memory>"

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
    decoded_frames: int = 0  #: frames in the video (hashed or not; decoded or skipped as unneeded)

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        """Seconds of video (decoded_frames / fps)."""
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
        close = bit_count(q64[start:start + block, None, :] ^ c64[None, :, :]) <= distance
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


def video_container(head: bytes) -> Optional[str]:
    """The container a file starting with ``head`` (512 bytes suffice) holds, or None."""
    return _looks_like_video_container(head)


def _check_input(path: VideoSource) -> tuple[Union[str, bytes], str]:
    """(absolute path, container name) of a readable regular file holding a known container,
    or (the bytes, container name) of a video given in memory; else VideoError."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        data = bytes(path)
        if not data:
            raise VideoError(IN_MEMORY_NAME, "empty file (0 bytes)")
        found = _looks_like_video_container(data[:512])
        if found is None:
            raise VideoError(IN_MEMORY_NAME, "not a recognised video container")
        return data, found
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str, os.PathLike or bytes, got {type(path).__name__}")
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
    container = _looks_like_video_container(head)
    if container is None:
        raise VideoError(
            name, "not a recognised video container (allowed: mp4/mov/3gp, mkv/webm, avi, flv, ogg, wmv, mpeg-ps/ts)"
        )
    return os.path.abspath(name), container


def _file_md5(path: Union[str, bytes]) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    if isinstance(path, bytes):
        digest.update(path)
        return digest.hexdigest()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- decoding


class _Collector:
    """Accumulates decoder messages (see :mod:`.frames`) into a VideoHash."""

    def __init__(self) -> None:
        self.meta: Optional[dict] = None
        self.stats: dict = {}
        self.payload: Optional[tuple] = None

    def __call__(self, kind: str, payload: Any) -> None:
        if kind == "meta":
            self.meta = payload
        elif kind == "stats":
            self.stats = payload
        elif kind == "done":
            self.payload = payload

    def result(self, md5: str) -> VideoHash:
        assert self.meta is not None and self.payload is not None
        numbers, frames, quals, count = self.payload
        fps = float(self.meta["fps"])
        return VideoHash(
            frames=np.ascontiguousarray(frames, dtype=np.uint8).reshape(-1, PDQ_HASH_BYTES),
            qualities=np.asarray(quals, dtype=np.int32), frame_numbers=np.asarray(numbers, dtype=np.int64),
            timestamps=np.asarray(numbers, dtype=np.int64) / fps, md5=md5, fps=fps,
            width=int(self.meta["width"]), height=int(self.meta["height"]),
            decoded_frames=int(count),
        )


def hash_video(
    path: VideoSource,
    *,
    seconds_per_hash: float = 1.0,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_duration: float = DEFAULT_MAX_VIDEO_DURATION,
    max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS,
    timeout: Optional[float] = DEFAULT_VIDEO_TIMEOUT,
    stall_timeout: Optional[float] = DEFAULT_STALL_TIMEOUT,
    threads: int = 0,
    in_process: bool = False,
    decoder: str = "auto",
) -> VideoHash:
    """vPDQ hash of a video file: PDQ of one frame every ``seconds_per_hash`` (0 = every frame).

    Raises :class:`VideoError` (a ValueError) naming the file for a missing, empty,
    unrecognised, corrupt or truncated file, a file over ``max_frames`` frames,
    ``max_duration`` seconds or ``max_pixels`` per frame, and on timeout. Needs the
    ``video`` extra (PyAV; OpenCV also works); without either raises ImportError naming it.

    By default the file is decoded in a worker process, started on first use (about half a
    second) and reused for later files: a decoder that hangs is killed after ``timeout``
    seconds in total or ``stall_timeout`` seconds without progress, and a decoder crash
    becomes a VideoError instead of taking the caller down. ``in_process=True`` skips the
    worker (for trusted input): limits still apply, timeouts are only checked between
    frames, and a hang or crash in FFmpeg hangs or crashes the caller.

    ``threads``: hashing threads and FFmpeg decoder threads (0 = all cores).
    ``decoder``: "auto" (PyAV if installed, else OpenCV), "pyav" or "opencv".

    ``path`` may also be the bytes of a whole video file: it is then decoded from memory
    (never written to a file), which needs PyAV; the MD5 is that of the bytes.
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
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}; got {decoder!r}")
    source, container = _check_input(path)
    if isinstance(source, bytes):
        if choose_decoder("pyav" if decoder == "auto" else decoder) != "pyav":
            raise ImportError("a video held in memory is decoded with PyAV only: pip install 'ncii-hash[video]'")
        decoder = "pyav"
    choose_decoder(decoder)  # fail fast, in the caller, when the extra is missing
    name = IN_MEMORY_NAME if isinstance(source, bytes) else source
    opts = Options(
        seconds_per_hash=float(seconds_per_hash), max_frames=int(max_frames),
        max_duration=float(max_duration), max_pixels=int(max_pixels), threads=int(threads),
        timeout=timeout if in_process else None, decoder=decoder,
    )
    collector = _Collector()
    try:
        if in_process:
            decode_and_hash(source, container, opts, collector)
        else:
            from .worker import WorkerFailed, run_in_worker

            try:
                run_in_worker(source, container, opts, collector, timeout=timeout, stall_timeout=stall_timeout)
            except WorkerFailed as exc:
                raise VideoError(name, exc.reason) from None
    except Abort as exc:
        raise VideoError(name, str(exc)) from None
    return collector.result(_file_md5(source))
