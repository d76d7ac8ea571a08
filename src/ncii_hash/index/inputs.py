"""Validation of what callers pass to indexes (ints, id arrays, query batches): explicit
checks that raise TypeError/ValueError naming the argument and the fix."""

from __future__ import annotations

import numpy as np

from ..hashes import PDQ_HASH_BYTES, as_hash_array

#: Number of dihedral variants of a PDQ hash (see ``ncii_hash.DIHEDRAL_NAMES``).
NUM_DIHEDRAL = 8


def check_int(value: object, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ValueError(f"{name} must be {bound}, got {v}")
    return v


def as_id_array(ids: object, name: str = "ids") -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers (int64), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_queries(queries: object, dihedral: bool) -> tuple[np.ndarray, int, int]:
    """Return (flat (Q*V, 32) codes, Q, V) with V = 8 for dihedral sets, else 1."""
    arr = np.asarray(queries)
    if arr.dtype != np.uint8:
        raise TypeError(f"queries must be a numpy uint8 array of shape (Q, 32) or (Q, 8, 32); got dtype {arr.dtype}")
    if not dihedral:
        if arr.ndim == 3:
            raise ValueError(
                f"queries has shape {arr.shape}: that is a batch of dihedral sets; pass dihedral=True"
            )
        flat = as_hash_array(arr, name="queries")
        return flat, flat.shape[0], 1
    if arr.ndim == 2 and arr.shape == (NUM_DIHEDRAL, PDQ_HASH_BYTES):
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (NUM_DIHEDRAL, PDQ_HASH_BYTES):
        raise ValueError(
            f"dihedral=True needs queries of shape (Q, 8, 32), got {arr.shape}: the 8 dihedral "
            "variants of a PDQ hash come from the image's DCT and cannot be derived from the "
            "32-byte hash; pass pdq_hash(image, dihedral=True).dihedral (or pdq_hash_many(..., "
            "dihedral=True).dihedral for a batch)"
        )
    flat = np.ascontiguousarray(arr.reshape(-1, PDQ_HASH_BYTES))
    return flat, arr.shape[0], NUM_DIHEDRAL
