"""Frames in, hashes out: vPDQ (:mod:`.vpdq`), the decoders (:mod:`.pyav`, :mod:`.opencv`,
chosen by :mod:`.decode`), what they share (:mod:`.frames`) and the reusable decoder process
(:mod:`.worker`). PyAV or OpenCV is imported only when a video is decoded (``video`` extra)."""

from ..errors import VideoError
from .vpdq import VideoHash, VideoMatch, hash_video, match_video, video_container

__all__ = ["VideoError", "VideoHash", "VideoMatch", "hash_video", "match_video", "video_container"]
