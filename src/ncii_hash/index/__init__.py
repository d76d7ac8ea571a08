"""Codes in, matches out: :class:`HashIndex` over 32-byte PDQ codes with int64 ids (exact
flat kernel, FAISS mirrors), its results and its file format. Knows no images."""

from .hash_index import BACKENDS, EXACT_BACKENDS, MAX_KNN, HashIndex
from .inputs import NUM_DIHEDRAL, as_id_array, as_queries, check_int
from .results import KNN_MISSING_DISTANCE, KNN_MISSING_ID, KnnResult, Match, RangeResult

__all__ = [
    "BACKENDS", "EXACT_BACKENDS", "KNN_MISSING_DISTANCE", "KNN_MISSING_ID", "MAX_KNN", "NUM_DIHEDRAL", "HashIndex",
    "KnnResult", "Match", "RangeResult", "as_id_array", "as_queries", "check_int",
]
