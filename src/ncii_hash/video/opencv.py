"""The OpenCV video decoder (``cv2.VideoCapture``): the fallback when PyAV is not installed.
Frames are numbered in decoder output order; unsampled frames are grabbed, not converted."""

from __future__ import annotations

import numpy as np

from .._util.optional import optional_import
from .._util.threads import default_threads
from .frames import Abort, Emit, FrameHasher, Options, Progress, check_complete, check_frame_count, check_stream, sampling_modulus


def decode_opencv(path: str, opts: Options, emit: Emit) -> None:
    """OpenCV decoder: unsampled frames are grabbed (decoded, not colour-converted)."""
    cv2 = optional_import("cv2", extra="video", purpose="video decoding with OpenCV",
                          package="opencv-python-headless")

    def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    threads = opts.threads or default_threads()
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])
    try:
        if not cap.isOpened():
            raise Abort("cannot open as video (corrupt, truncated, or no decodable video stream)")
        # vPDQ hashes frames as stored; don't let OpenCV apply rotation metadata.
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
        # OpenCV's rate is FFmpeg's guess (r_frame_rate); equal to vPDQ's average rate for
        # constant-rate video.
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        check_stream(opts, fps, width, height, announced)
        emit("meta", {"fps": fps, "width": width, "height": height, "announced": announced})
        modulus = sampling_modulus(opts.seconds_per_hash, fps)
        progress = Progress(emit, opts.timeout)
        n = 0
        with FrameHasher(threads) as hasher:
            while True:
                if n % modulus == 0:
                    ok, frame = cap.read()
                else:
                    ok, frame = cap.grab(), None
                if not ok:
                    break
                check_frame_count(opts, n, fps)
                if frame is not None:
                    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                        raise Abort(f"frame {n}: unexpected decoded frame {frame.dtype} {frame.shape}")
                    if frame.shape[0] * frame.shape[1] > opts.max_pixels:
                        raise Abort(f"frame {n}: size {frame.shape[1]}x{frame.shape[0]} exceeds max_pixels")
                    hasher.add(n, bgr_to_rgb, frame)
                n += 1
                progress.tick(n)
            result = hasher.finish()
        check_complete(n, announced)
        emit("stats", {"decoder": "opencv", "planned": False, "decoded": n})
        emit("done", (*result, n))
    finally:
        cap.release()
