"""ncii_hash: private PDQ hashing for survivors, exact hash matching for platforms.

The public API is re-exported here; modules are implementation detail.
"""

from __future__ import annotations

from ._core import simd_level
from .borders import (
    BorderRobustHash,
    border_robust_distance,
    border_robust_match,
    find_content_box,
    pdq_hash_border_robust,
    trim_borders,
)
# features.py imports OpenCV only when features are extracted (the optional `features` extra).
from .feature_index import FeatureHit, FeatureIndex
from .features import (FeatureError, FeatureSet, GeometricMatch, extract_features, image_features,
                       query_features, verify)
from .hashes import (
    PDQ_HASH_BITS,
    PDQ_HASH_BYTES,
    PDQ_MATCH_THRESHOLD,
    PDQ_MIN_QUALITY,
    as_hash_array,
    from_hex,
    hamming,
    hamming_matrix,
    to_hex,
)
from .imageio import DEFAULT_MAX_PIXELS, ImageError, allowed_formats, load_pixels
from .index import BACKENDS, EXACT_BACKENDS, HashIndex, KnnResult, Match, RangeResult
from .pdq import DIHEDRAL_NAMES, PDQBatch, PDQResult, hash_pixels, pdq_hash, pdq_hash_many
# video.py imports OpenCV only when a video is decoded (the optional `video` extra).
from .video import VideoError, VideoHash, VideoMatch, hash_video, match_video

__version__ = "0.1.0"

# distributed.py needs Ray (the optional `distributed` extra): its names load on first use, so
# `import ncii_hash` never imports Ray.
_LAZY_DISTRIBUTED = frozenset({"ShardedIndex", "ShardUnavailableError"})
_LAZY_BACKFILL = frozenset({"BackfillReport", "backfill"})


def __getattr__(name: str):
    if name in _LAZY_DISTRIBUTED:
        from . import distributed

        return getattr(distributed, name)
    if name in _LAZY_BACKFILL:
        from . import catalogue as _backfill

        return getattr(_backfill, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "BorderRobustHash",
    "border_robust_distance",
    "border_robust_match",
    "find_content_box",
    "pdq_hash_border_robust",
    "trim_borders",
    "DEFAULT_MAX_PIXELS",
    "DIHEDRAL_NAMES",
    "EXACT_BACKENDS",
    "HashIndex",
    "ImageError",
    "KnnResult",
    "Match",
    "PDQBatch",
    "PDQResult",
    "PDQ_HASH_BITS",
    "PDQ_HASH_BYTES",
    "PDQ_MATCH_THRESHOLD",
    "PDQ_MIN_QUALITY",
    "RangeResult",
    "allowed_formats",
    "as_hash_array",
    "from_hex",
    "hamming",
    "hamming_matrix",
    "hash_pixels",
    "load_pixels",
    "pdq_hash",
    "pdq_hash_many",
    "simd_level",
    "to_hex",
    "VideoError",
    "VideoHash",
    "VideoMatch",
    "hash_video",
    "match_video",
    "FeatureError",
    "FeatureHit",
    "FeatureIndex",
    "FeatureSet",
    "GeometricMatch",
    "extract_features",
    "image_features",
    "query_features",
    "verify",
    "ShardedIndex",
    "ShardUnavailableError",
    "BackfillReport",
    "backfill",
]
