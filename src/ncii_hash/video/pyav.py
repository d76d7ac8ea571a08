"""The PyAV decoder for vPDQ, with decode skipping for H.264.

Why skipping is exact: at 1 s sampling only 1 frame in ~30 is hashed, yet a plain decoder
decodes all of them. A frame that is hashed needs the reference frames decoded before it, but
never a non-reference frame (H.264 ``nal_ref_idc == 0``), and nothing after an IDR frame
refers to anything before it. So for H.264 we

1. demux the file once without decoding, recording each packet's pts and whether it starts
   an IDR picture; a frame's number is the rank of its pts (presentation order, which is the
   order a decoder outputs frames in, and so vPDQ's numbering);
2. decode again, sending a packet only if a sampled frame lies at or after it in decode order
   before the next IDR, with ``skip_frame = NONREF`` for the unsampled ones, so FFmpeg drops
   non-reference frames itself (it copies ``skip_frame`` per packet, also with frame threads).

The numbering is then checked rather than trusted: every decoded frame's pts must be one of
the demuxed pts, in increasing order, and every sampled frame must come out. If a file breaks
any assumption (missing or duplicate pts, discard-flagged packets from edit lists, a stream
not starting with an IDR frame, Annex B framing, another codec) or the check fails, the file
is decoded in full instead, numbering frames by count as vPDQ does.

Colour: frames are converted by FFmpeg's swscale to RGB24 (``VideoFrame.to_ndarray``), the
conversion vPDQ applies; the RGB reaches the PDQ core unchanged.
"""

from __future__ import annotations

import io
from array import array
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np

from .frames import (
    Abort, Emit, FrameHasher, Options, Progress, check_complete, check_frame_count, check_stream,
    sampling_modulus,
)
from .._util.optional import optional_import
from .._util.threads import default_threads

# Demuxer for each container the input sniffing allows: FFmpeg opens the file with exactly
# that demuxer, never by probing (which could pick a playlist or another text format).
DEMUXERS = {
    "mp4/mov": "mov", "matroska/webm": "matroska", "avi": "avi", "flv": "flv", "ogg": "ogg",
    "asf/wmv": "asf", "mpeg-ps": "mpeg", "mpeg-ts": "mpegts",
}
_H264_IDR = 5
_H264_SLICE = 1


def _rgb24(frame: Any) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def _open(av: Any, path: Union[str, bytes], container: str) -> Any:
    """The file at ``path``, or a whole file's bytes read from memory (never a temp file)."""
    try:
        return av.open(io.BytesIO(path) if isinstance(path, bytes) else path, mode="r", format=DEMUXERS.get(container),
                       options={"protocol_whitelist": "file"})
    except Exception as exc:  # av.FFmpegError subclasses (InvalidDataError...), OSError
        raise Abort(f"cannot open as video (corrupt, truncated, or no decodable video stream): {exc}") from None


def _video_stream(box: Any) -> Any:
    if not box.streams.video:
        raise Abort("cannot open as video (corrupt, truncated, or no decodable video stream): no video stream")
    return box.streams.best("video") or box.streams.video[0]


def h264_nal_length_size(extradata: Optional[bytes]) -> int:
    """Bytes of each NAL length prefix for avcC-framed H.264 (MP4, MKV), or 0 otherwise."""
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return 0  # Annex B (start codes) or unknown
    size = (extradata[4] & 3) + 1
    return size if size in (1, 2, 4) else 0


def h264_starts_idr(data: bytes, length_size: int) -> bool:
    """Whether the first slice NAL of a length-prefixed H.264 access unit is an IDR slice.
    Malformed data answers False (which only makes the caller decode more)."""
    i = 0
    while i + length_size < len(data):
        size = int.from_bytes(data[i:i + length_size], "big")
        i += length_size
        if size == 0 or i + size > len(data):
            return False
        kind = data[i] & 0x1F
        if _H264_SLICE <= kind <= _H264_IDR:
            return kind == _H264_IDR
        i += size
    return False


@dataclass(frozen=True)
class SkipPlan:
    """What to decode, per packet in decode (demux) order."""

    sorted_pts: np.ndarray  # int64, ascending: rank = presentation frame number
    sampled: np.ndarray  # bool per packet: its frame is hashed
    needed: np.ndarray  # bool per packet: some sampled frame at or after it before the next IDR
    modulus: int

    @property
    def frames(self) -> int:
        return int(self.sampled.shape[0])

    def rank(self, pts: Optional[int]) -> int:
        """Presentation frame number of ``pts``; -1 if it is not a demuxed pts."""
        if pts is None:
            return -1
        r = int(np.searchsorted(self.sorted_pts, pts))
        return r if r < self.sorted_pts.shape[0] and self.sorted_pts[r] == pts else -1


def make_skip_plan(av: Any, path: Union[str, bytes], container: str, opts: Options, fps: float,
                   modulus: int, progress: Progress) -> Optional[SkipPlan]:
    """Demux without decoding and plan which packets to decode; None where skipping cannot be
    proven exact. Raises Abort for the frame and duration limits (checked before decoding)."""
    with _open(av, path, container) as box:
        stream = _video_stream(box)
        length_size = h264_nal_length_size(stream.codec_context.extradata)
        if stream.codec_context.name != "h264" or length_size == 0 or not hasattr(av.Packet, "is_discard"):
            return None
        pts_list = array("q")
        idr = bytearray()
        exact = True
        for packet in box.demux(stream):
            if packet.size == 0:
                continue
            check_frame_count(opts, len(pts_list), fps)
            if packet.pts is None or packet.is_discard or packet.is_corrupt:
                exact = False  # keep counting: the limits still apply
                pts_list.append(0)
                idr.append(0)
            else:
                pts_list.append(packet.pts)
                idr.append(bool(packet.is_keyframe) and h264_starts_idr(bytes(packet), length_size))
            progress.tick(len(pts_list))
    if not exact or not pts_list or not idr[0]:
        return None
    pts = np.frombuffer(pts_list, dtype=np.int64)
    order = np.argsort(pts, kind="stable")
    sorted_pts = pts[order]
    if np.any(sorted_pts[1:] == sorted_pts[:-1]):
        return None
    ranks = np.empty_like(order)
    ranks[order] = np.arange(order.shape[0])
    sampled = ranks % modulus == 0
    needed = needed_packets(sampled, np.frombuffer(bytes(idr), dtype=np.uint8).astype(bool))
    return SkipPlan(sorted_pts=sorted_pts, sampled=sampled, needed=needed, modulus=modulus)


def needed_packets(sampled: np.ndarray, idr: np.ndarray) -> np.ndarray:
    """Per packet in decode order: does a sampled packet lie at or after it, before the next
    IDR packet? (``idr[0]`` must be True: the first packet starts the first segment.)"""
    segment = np.cumsum(idr) - 1
    last_sampled = np.full(int(segment[-1]) + 1, -1, dtype=np.int64)
    positions = np.flatnonzero(sampled)
    np.maximum.at(last_sampled, segment[positions], positions)
    return np.arange(sampled.shape[0]) <= last_sampled[segment]


def _configure(stream: Any, threads: int) -> Any:
    codec = stream.codec_context
    codec.thread_type = "AUTO"  # frame and slice threads, as FFmpeg picks
    codec.thread_count = threads
    return codec


def _decode_planned(av: Any, path: Union[str, bytes], container: str, opts: Options, plan: SkipPlan,
                    threads: int, progress: Progress) -> Optional[tuple]:
    """Decode what ``plan`` says; the hashed frames, or None if the numbering check fails."""
    with _open(av, path, container) as box, FrameHasher(threads) as hasher:
        stream = _video_stream(box)
        codec = _configure(stream, threads)
        mode = ""
        index = 0
        last_rank = -1
        hashed = 0
        decoded = 0
        for packet in box.demux(stream):
            if packet.size:
                if index >= plan.frames:
                    return None  # the file changed between the passes
                take, sampled = plan.needed[index], plan.sampled[index]
                index += 1
                progress.tick(index)
                if not take:
                    continue
                want = "DEFAULT" if sampled else "NONREF"
                if want != mode:
                    codec.skip_frame = mode = want
            for frame in codec.decode(packet):
                rank = plan.rank(frame.pts)
                if rank <= last_rank:
                    return None  # not a demuxed pts, or out of presentation order
                last_rank = rank
                decoded += 1
                if frame.width * frame.height > opts.max_pixels:
                    raise Abort(f"frame {rank}: size {frame.width}x{frame.height} exceeds max_pixels")
                if rank % plan.modulus == 0:
                    hasher.add(rank, _rgb24, frame)
                    hashed += 1
        if index != plan.frames or hashed != int(plan.sampled.sum()):
            return None
        return (*hasher.finish(), decoded)


def _decode_all(av: Any, path: Union[str, bytes], container: str, opts: Options, fps: float, modulus: int,
                threads: int, progress: Progress) -> tuple:
    """Decode every frame, numbering frames by output count (vPDQ's own rule)."""
    with _open(av, path, container) as box, FrameHasher(threads) as hasher:
        stream = _video_stream(box)
        codec = _configure(stream, threads)
        n = 0
        for packet in box.demux(stream):
            for frame in codec.decode(packet):
                check_frame_count(opts, n, fps)
                if frame.width * frame.height > opts.max_pixels:
                    raise Abort(f"frame {n}: size {frame.width}x{frame.height} exceeds max_pixels")
                if n % modulus == 0:
                    hasher.add(n, _rgb24, frame)
                n += 1
            progress.tick(n)
        return (*hasher.finish(), n)


def decode_pyav(path: Union[str, bytes], container: str, opts: Options, emit: Emit) -> None:
    """Decode ``path`` with PyAV and hash the sampled frames (see the module docstring)."""
    av = optional_import("av", extra="video", purpose="video decoding with PyAV")
    threads = opts.threads or default_threads()
    with _open(av, path, container) as box:
        stream = _video_stream(box)
        rate = stream.average_rate or stream.guessed_rate  # vPDQ uses the average frame rate
        fps = float(rate) if rate else 0.0
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        announced = int(stream.frames or 0)
    check_stream(opts, fps, width, height, announced)
    emit("meta", {"fps": fps, "width": width, "height": height, "announced": announced})
    progress = Progress(emit, opts.timeout)
    modulus = sampling_modulus(opts.seconds_per_hash, fps)
    plan = None
    if opts.skip_unsampled and modulus > 1:
        plan = make_skip_plan(av, path, container, opts, fps, modulus, progress)
    planned = None
    if plan is not None:
        check_complete(plan.frames, announced)
        planned = _decode_planned(av, path, container, opts, plan, threads, progress)
    if planned is not None:
        numbers, hashes, quals, decoded = planned
        result = (numbers, hashes, quals, plan.frames)
    else:
        result = _decode_all(av, path, container, opts, fps, modulus, threads, progress)
        decoded = result[3]
        check_complete(decoded, announced)
    # How the file was read, for tests and benchmarks: frames the decoder output (the rest
    # were skipped) and whether the skip plan was used.
    emit("stats", {"decoder": "pyav", "planned": planned is not None, "decoded": decoded})
    emit("done", result)
