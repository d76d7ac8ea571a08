"""Drive the C++ core with odd shapes, strides and sizes (meant to run under ASan/UBSan:
``fuzz/run_sanitizers.sh`` runs it after the tests).

    python fuzz/core_shapes.py [ROUNDS]

Every call must return a well-formed result or raise ValueError/TypeError; the sanitizers
catch out-of-bounds reads and writes and undefined behaviour that would not show in results.
"""

from __future__ import annotations

import sys

import numpy as np

from ncii_hash import _core
from ncii_hash.index import HashIndex
from ncii_hash.image.pdq import hash_pixels


_LEVELS = ["scalar", "avx2", "avx512"]


def _pixels(rng: np.random.Generator) -> np.ndarray:
    h = int(rng.choice([0, 1, 2, 3, 4, 5, 7, 63, 64, 65, 127, 300, 1, 1]))
    w = int(rng.choice([0, 1, 2, 3, 4, 5, 7, 63, 64, 65, 129, 1000, 1, 1]))
    c = int(rng.choice([0, 1, 3, 4]))
    shape = (h, w) if c == 0 else (h, w, c)
    arr = rng.integers(0, 256, shape, dtype=np.uint8)
    if rng.random() < 0.3 and h > 1 and w > 1:
        arr = arr[::2, ::-1] if rng.random() < 0.5 else arr[:, ::3]
    if rng.random() < 0.2 and arr.ndim == 3:
        arr = np.asfortranarray(arr)
    return arr


def main(rounds: int = 400) -> int:
    rng = np.random.default_rng(4242)
    calls = 0
    for _ in range(rounds):
        arr = _pixels(rng)
        try:
            res = hash_pixels(arr, dihedral=bool(rng.random() < 0.5))
            assert res.hash.shape == (32,) and 0 <= res.quality <= 100
        except (ValueError, TypeError):
            pass
        calls += 1
        n = int(rng.choice([0, 1, 2, 31, 32, 33, 255, 1025]))
        nq = int(rng.choice([0, 1, 3, 8, 16]))
        codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        queries = rng.integers(0, 256, (nq, 32), dtype=np.uint8)
        removed = np.unique(rng.integers(0, max(n, 1), int(rng.integers(0, 4)))).astype(np.int64) if n else None
        radius = int(rng.choice([0, 1, 31, 128, 256]))
        for level in _LEVELS[: _LEVELS.index(_core.detected_simd_level()) + 1]:
            _core.set_simd_cap(level)  # every kernel this CPU has
            _core.hamming_range_search(codes, queries, radius, 1, None, removed, int(rng.integers(0, 4)))
            if nq:
                _core.hamming_knn(codes, queries, int(rng.choice([1, 2, 50])), None, removed, 2)
            calls += 2
        index = HashIndex()
        index.add(codes)
        if n:
            index.remove(rng.integers(0, n, 3))
        index.range_search(queries, radius)
        calls += 1
    _core.set_simd_cap("avx512")
    print(f"core_shapes: {calls} core calls, no sanitizer report")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 400))
