# Type stub for the private C++ extension (csrc/bindings.cpp). Use the public API in
# ncii_hash instead; these signatures may change between releases.
#
# Checked by .ci/check-stubs: mypy's stubtest (every runtime name is here and vice versa)
# plus a comparison of each signature with the one pybind11 writes into the docstring
# (parameter names, order, defaults), which stubtest cannot see for pybind11 functions.
from typing import Any, Literal, Optional, TypeAlias, overload

import numpy as np
import numpy.typing as npt

_SimdLevel: TypeAlias = Literal["scalar", "avx2", "avx512"]
# uint8 pixels (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), or a 2-D float32 luma plane.
_Image: TypeAlias = npt.NDArray[np.uint8] | npt.NDArray[np.float32]

# ---- run-time SIMD dispatch ---------------------------------------------------------------
def simd_level() -> _SimdLevel: ...
def detected_simd_level() -> _SimdLevel: ...
def set_simd_cap(level: str) -> _SimdLevel: ...

# ---- PDQ ----------------------------------------------------------------------------------
# -> (hash (32,) uint8, quality 0..100, the 8 dihedral hashes (8, 32) uint8 or None)
@overload
def pdq_hash(
    image: _Image, dihedral: Literal[False] = False, reference: bool = False
) -> tuple[npt.NDArray[np.uint8], int, None]: ...
@overload
def pdq_hash(
    image: _Image, dihedral: Literal[True], reference: bool = False
) -> tuple[npt.NDArray[np.uint8], int, npt.NDArray[np.uint8]]: ...
@overload
def pdq_hash(
    image: _Image, dihedral: bool = False, reference: bool = False
) -> tuple[npt.NDArray[np.uint8], int, Optional[npt.NDArray[np.uint8]]]: ...
def pdq_downsample64(image: _Image, reference: bool = False) -> npt.NDArray[np.float32]: ...  # (64, 64)
def pdq_dct16(buffer64: npt.ArrayLike) -> npt.NDArray[np.float32]: ...  # (64, 64) -> (16, 16)

# ---- Hamming kernels and exact search -------------------------------------------------------
# -> (lims (Q+1,) int64, ids int64, distances int32, variants int8 or None when variants == 1)
def hamming_range_search(
    codes: npt.NDArray[np.uint8],
    queries: npt.NDArray[np.uint8],
    radius: int,
    variants: int = 1,
    ids: Optional[npt.NDArray[np.int64]] = None,
    removed: Optional[npt.NDArray[np.int64]] = None,
    threads: int = 0,
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int32], Optional[npt.NDArray[np.int8]]
]: ...
# -> (ids (Q, k) int64, distances (Q, k) int32)
def hamming_knn(
    codes: npt.NDArray[np.uint8],
    queries: npt.NDArray[np.uint8],
    k: int,
    ids: Optional[npt.NDArray[np.int64]] = None,
    removed: Optional[npt.NDArray[np.int64]] = None,
    threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]: ...
# ---- multi-index hashing (csrc/mih.*) -------------------------------------------------------
class MihTables:
    """Multi-index tables over rows [0, n) of a (n, 32) bank (immutable)."""

    def __init__(self, codes: npt.NDArray[np.uint8], substrings: int = 0, threads: int = 0) -> None: ...
    @property
    def rows(self) -> int: ...
    @property
    def substrings(self) -> int: ...
    @property
    def widths(self) -> list[int]: ...
    @property
    def nbytes(self) -> int: ...

# -> (lims, ids, distances, variants or None, (queries, scanned, probes, candidates))
def mih_range_search(
    tables: MihTables,
    codes: npt.NDArray[np.uint8],
    queries: npt.NDArray[np.uint8],
    radius: int,
    variants: int = 1,
    ids: Optional[npt.NDArray[np.int64]] = None,
    removed: Optional[npt.NDArray[np.int64]] = None,
    threads: int = 0,
    auto_route: bool = False,
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int32],
    Optional[npt.NDArray[np.int8]],
    tuple[int, int, int, int],
]: ...
def mih_choose_substrings(n: int, radius: int = 31) -> int: ...
def xor_fold(data: npt.NDArray[Any], threads: int = 0) -> int: ...
def hamming_threads(threads: int = 0) -> int: ...

# ---- local features (csrc/features_index.*) -------------------------------------------------
# xy (n, 2) float32 and response (n,) float32 in decreasing response order -> kept indices int64
def lf_anms(xy: npt.NDArray[np.float32], response: npt.NDArray[np.float32], keep: int) -> npt.NDArray[np.int64]: ...
# records: n * 256 slots of 38 bytes; counts (n,) uint16; bit_positions (tables, key_bits) uint16
# -> (offsets (tables, 2**key_bits + 1) uint32, postings (tables, P) uint32)
def lf_build_tables(
    records: npt.NDArray[np.uint8], counts: npt.NDArray[np.uint16], bit_positions: npt.NDArray[np.uint16]
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]: ...
# -> (images int64, Hough scores int32, votes int32, postings read)
def lf_vote(
    desc: npt.NDArray[np.uint8],
    angle: npt.NDArray[np.uint8],
    octave: npt.NDArray[np.uint8],
    records: npt.NDArray[np.uint8],
    n_images: int,
    removed: Optional[npt.NDArray[np.uint8]],
    bit_positions: npt.NDArray[np.uint16],
    offsets: npt.NDArray[np.uint32],
    postings: npt.NDArray[np.uint32],
    max_distance: int,
    min_score: int,
    top: int,
    max_bucket: int = 0,
    threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int32], int]: ...
