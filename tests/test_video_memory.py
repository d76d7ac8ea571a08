"""hash_video on a whole file's bytes (the local app's path: nothing is written to disk) gives
exactly what hashing the file gives, and bad bytes get the same plain errors."""

from pathlib import Path

import numpy as np
import pytest

from ncii_hash.errors import VideoError
from ncii_hash.video import hash_video, video_container

pytest.importorskip("av")
SAMPLE = Path(__file__).parent / "data" / "vpdq" / "test-padded-dimensions.mp4"


def test_bytes_hash_equals_file_hash():
    from_file = hash_video(SAMPLE)
    data = SAMPLE.read_bytes()
    from_memory = hash_video(data)
    assert len(from_file) > 0
    assert np.array_equal(from_file.frames, from_memory.frames)
    assert np.array_equal(from_file.qualities, from_memory.qualities)
    assert from_file.md5 == from_memory.md5
    assert np.array_equal(hash_video(bytearray(data), in_process=True).frames, from_file.frames)


def test_bad_bytes_are_refused_by_name_not_path():
    assert video_container(SAMPLE.read_bytes()[:512]) == "mp4/mov"
    assert video_container(b"\x89PNG\r\n\x1a\n" + bytes(100)) is None
    with pytest.raises(VideoError, match="in memory.*empty"):
        hash_video(b"")
    with pytest.raises(VideoError, match="not a recognised video container"):
        hash_video(b"#EXTM3U\nhttp://example.org/x.ts\n")
    with pytest.raises(VideoError, match="in memory"):
        hash_video(SAMPLE.read_bytes()[:2000])  # truncated
    with pytest.raises(TypeError):
        hash_video(12)  # type: ignore[arg-type]
