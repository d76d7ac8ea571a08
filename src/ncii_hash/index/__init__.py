"""Codes in, matches out: :class:`HashIndex` over 32-byte PDQ codes with int64 ids (exact
flat kernel, exact multi-index hashing, FAISS mirrors), its results and its file format. Knows
no images.

Modules: ``hash_index`` (the class), ``table`` (its rows), ``searcher`` (the backend interface
and registry), ``backends`` (the built-in ones: ``flat``, ``mih``, ``faiss_mirror``), ``results`` (result
types and the one CSR merge), ``file`` (the container file and bytes form; ``file_v1`` reads old
files), ``inputs`` (argument checks), ``rwlock``."""

from .hash_index import BACKENDS, DEFAULT_BACKEND, EXACT_BACKENDS, MAX_KNN, HashIndex
from .inputs import NUM_DIHEDRAL, as_id_array, as_queries, check_int
from .results import KNN_MISSING_DISTANCE, KNN_MISSING_ID, KnnResult, Match, RangeResult, merge_hits
from .searcher import Searcher, backend_names, register_backend

__all__ = [
    "BACKENDS", "DEFAULT_BACKEND", "EXACT_BACKENDS", "KNN_MISSING_DISTANCE", "KNN_MISSING_ID", "MAX_KNN", "NUM_DIHEDRAL", "HashIndex",
    "KnnResult", "Match", "RangeResult", "Searcher", "as_id_array", "as_queries", "backend_names", "check_int",
    "merge_hits", "register_backend",
]
