# Type stub for the private C++ extension (csrc/bindings.cpp). Use the public API in
# ncii_hash instead; these signatures may change between releases.
from typing import Optional

import numpy as np
import numpy.typing as npt

def simd_level() -> str: ...
def detected_simd_level() -> str: ...
def set_simd_cap(level: str) -> str: ...
def pdq_hash(
    image: npt.NDArray[np.uint8] | npt.NDArray[np.float32], dihedral: bool = False, reference: bool = False
) -> tuple[npt.NDArray[np.uint8], int, Optional[npt.NDArray[np.uint8]]]: ...
def pdq_downsample64(
    image: npt.NDArray[np.uint8] | npt.NDArray[np.float32], reference: bool = False
) -> npt.NDArray[np.float32]: ...
def pdq_dct16(buffer64: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
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
def hamming_knn(
    codes: npt.NDArray[np.uint8],
    queries: npt.NDArray[np.uint8],
    k: int,
    ids: Optional[npt.NDArray[np.int64]] = None,
    removed: Optional[npt.NDArray[np.int64]] = None,
    threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]: ...
def xor_fold(data: npt.NDArray, threads: int = 0) -> int: ...
def hamming_threads(threads: int = 0) -> int: ...
