"""Local features (ORB corners and descriptors, :mod:`.orb`) and their index
(:mod:`.index`): the geometry-robust second stage. OpenCV is imported only when features
are extracted (``features`` extra)."""

from ..errors import FeatureError
from .index import FeatureHit, FeatureIndex
from .orb import (MAX_FEATURES, FeatureSet, GeometricMatch, extract_features, image_features, query_features,
                  verify_features)

__all__ = [
    "MAX_FEATURES", "FeatureError", "FeatureHit", "FeatureIndex", "FeatureSet", "GeometricMatch",
    "extract_features", "image_features", "query_features", "verify_features",
]
