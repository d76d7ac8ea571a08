"""Pixels in, hashes out: guarded image decoding (:mod:`.io`), PDQ over the C++ core
(:mod:`.pdq`) and border detection (:mod:`.borders`). Knows nothing of banks or indexes."""

from ..errors import ImageError
from .borders import find_content_box, trim_borders
from .io import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageSource, allowed_formats, load_pixels
from .pdq import (DIHEDRAL_NAMES, PDQBatch, PDQResult, border_robust_distance, border_robust_match, hash_pixels,
                  pdq_hash, pdq_hash_many, pdq_window_hash)

__all__ = [
    "DEFAULT_MAX_PIXELS", "DIHEDRAL_NAMES", "IMAGE_SUFFIXES", "ImageError", "ImageSource", "PDQBatch", "PDQResult",
    "allowed_formats", "border_robust_distance", "border_robust_match", "find_content_box", "hash_pixels",
    "load_pixels", "pdq_hash", "pdq_hash_many", "pdq_window_hash", "trim_borders",
]
