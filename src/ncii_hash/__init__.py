"""ncii_hash: private PDQ hashing for survivors, exact hash matching for platforms.

The public API is re-exported here; the packages behind it are::

    image/     pixels in, hashes out (decoding, PDQ, borders)
    video/     frames in, hashes out (vPDQ, decoders, worker process)
    features/  local features and their index (the geometry-robust second stage)
    index/     HashIndex: codes in, matches out; knows no images
    bank/      HashBank: the durable bank, its index, feature store and exchange formats
    scale/     Ray: sharded index and catalogue backfill (loaded on first use)
    cli/       the ``ncii-hash`` command (nothing imports it)

See docs/architecture.md for what each may import.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._core import simd_level
from .bank import (BankMatch, BankStats, CaseInfo, ChangeSet, FeatureBankMatch, HashBank, ImageBankMatch,
                   ImageMatchReport, VideoBankMatch)
from .errors import (BankError, FeatureError, ImageError, IndexFileError, NciiHashError, ShardUnavailableError,
                     StoreUnavailableError, SubmissionError, VideoError)
# features/ and video/ import OpenCV / PyAV only when features are extracted or a video is decoded.
from .features import (FeatureHit, FeatureIndex, FeatureSet, GeometricMatch, extract_features, image_features,
                       query_features, verify_features)
from .hashes import (PDQ_HASH_BITS, PDQ_HASH_BYTES, PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY, as_hash_array, from_hex,
                     hamming, hamming_matrix, to_hex)
from .image import (DEFAULT_MAX_PIXELS, DIHEDRAL_NAMES, PDQBatch, PDQResult, allowed_formats, border_robust_distance,
                    border_robust_match, find_content_box, hash_pixels, load_pixels, pdq_hash, pdq_hash_many,
                    trim_borders)
from .index import BACKENDS, EXACT_BACKENDS, HashIndex, KnnResult, Match, RangeResult
from .submission import (ImageWindow, Submission, SubmittedVideo, image_windows, make_submission, parse_submission, read_submission,
                         video_item, write_submission)
from .video import VideoHash, VideoMatch, hash_video, match_video

try:  # the version is written once, in pyproject.toml
    __version__ = version("ncii-hash")
except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
    __version__ = "0+unknown"

# scale/ needs Ray (the optional `distributed` extra): its names load on first use, so
# `import ncii_hash` never imports Ray or pyarrow.
_LAZY_SCALE = frozenset({"ShardedIndex", "BackfillReport", "backfill"})


def __getattr__(name: str):
    if name in _LAZY_SCALE:
        from . import scale

        return getattr(scale, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    # hashes and thresholds
    "PDQ_HASH_BITS", "PDQ_HASH_BYTES", "PDQ_MATCH_THRESHOLD", "PDQ_MIN_QUALITY",
    "as_hash_array", "from_hex", "to_hex", "hamming", "hamming_matrix", "simd_level",
    # images
    "DEFAULT_MAX_PIXELS", "DIHEDRAL_NAMES", "PDQBatch", "PDQResult", "allowed_formats", "load_pixels",
    "hash_pixels", "pdq_hash", "pdq_hash_many", "find_content_box", "trim_borders",
    "border_robust_distance", "border_robust_match",
    # videos
    "VideoHash", "VideoMatch", "hash_video", "match_video",
    # local features
    "FeatureHit", "FeatureIndex", "FeatureSet", "GeometricMatch", "extract_features", "image_features",
    "query_features", "verify_features",
    # index
    "BACKENDS", "EXACT_BACKENDS", "HashIndex", "KnnResult", "Match", "RangeResult",
    # bank
    "HashBank", "BankMatch", "BankStats", "CaseInfo", "ChangeSet", "FeatureBankMatch", "ImageBankMatch",
    "ImageMatchReport", "VideoBankMatch",
    # submissions
    "ImageWindow", "Submission", "SubmittedVideo", "image_windows", "make_submission", "parse_submission", "read_submission", "video_item",
    "write_submission",
    # errors
    "NciiHashError", "BankError", "FeatureError", "ImageError", "IndexFileError", "ShardUnavailableError",
    "StoreUnavailableError", "SubmissionError", "VideoError",
    # scale-out (lazy)
    "ShardedIndex", "BackfillReport", "backfill",
]
