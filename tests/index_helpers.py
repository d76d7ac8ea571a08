"""Shared pieces of the HashIndex tests: seeded banks, bit flips, a brute-force oracle."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from ncii_hash import RangeResult
from ncii_hash._util.files import atomic_private_file
from ncii_hash.index import file_v1

try:
    import faiss  # noqa: F401

    HAVE_FAISS = True
except ImportError:  # pragma: no cover
    HAVE_FAISS = False
needs_faiss = pytest.mark.skipif(not HAVE_FAISS, reason="faiss not installed")

#: Every built-in backend, the FAISS ones skipped when FAISS is missing.
ALL_BACKENDS = ["flat", "mih", "auto"] + [pytest.param(b, marks=needs_faiss) for b in ("faiss-flat", "faiss-mih", "faiss-ivf", "faiss-hnsw")]


def dist(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(a ^ b).sum())


def flip(rng: np.random.Generator, code: np.ndarray, n: int) -> np.ndarray:
    bits = np.unpackbits(code.copy())
    bits[rng.choice(256, size=n, replace=False)] ^= 1
    return np.packbits(bits)


def bank(seed: int, n: int, dups: int = 0):
    """n uniform codes plus `dups` near-duplicates (0..31 bits away) of random ones."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    extra = [flip(rng, codes[rng.integers(n)], int(rng.integers(0, 32))) for _ in range(dups)]
    return np.concatenate([codes, np.array(extra, dtype=np.uint8).reshape(-1, 32)]), rng


def oracle_range(entries: dict[int, np.ndarray], queries: np.ndarray, radius: int):
    """Per query: sorted [(distance, id)] of entries within radius."""
    out = []
    for q in queries:
        out.append(sorted((dist(q, c), i) for i, c in entries.items() if dist(q, c) <= radius))
    return out


def as_pairs(result: RangeResult):
    return [[(m.distance, m.id) for m in result[i]] for i in range(len(result))]


def write_index_file(target: Path, codes: np.ndarray, ids: np.ndarray, next_id: int, meta: bytes) -> None:
    """Forge a version-1 HashIndex file (the layout ncii_hash 0.x wrote; file_v1 reads it)."""
    count = int(ids.shape[0])
    codes_offset, ids_offset, _ = file_v1.layout(count, len(meta))
    header = file_v1.HEADER.pack(file_v1.MAGIC, file_v1.VERSION, 32, count, next_id, len(meta), codes_offset, ids_offset)
    header += bytes(file_v1.HEADER_SIZE - len(header))
    pad = bytes(codes_offset - file_v1.HEADER_SIZE - len(meta))
    digest = hashlib.sha256()
    with atomic_private_file(target) as f:
        for chunk in (header, meta, pad, memoryview(np.ascontiguousarray(codes).reshape(-1)),
                      memoryview(np.ascontiguousarray(ids, dtype="<i8").view(np.uint8))):
            f.write(chunk)
            digest.update(chunk)
        f.write(digest.digest())
