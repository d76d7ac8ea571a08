"""PDQ hash arrays, hex conversion and the thresholds every part of the library shares.

Conventions (see docs and ``csrc/pdq.h``):

* A PDQ hash is 32 bytes, ``bytes.fromhex(h)`` of the 64-character lowercase hex that
  Meta's reference tools print (16 uint16 words, word 15 first).
* A batch of hashes is a C-contiguous ``numpy.uint8`` array of shape ``(N, 32)``.
* Hamming distances are bit counts (``int32``); a match is ``distance <= PDQ_MATCH_THRESHOLD``.
"""

from __future__ import annotations

from typing import Iterable, Sequence, Union

import numpy as np

PDQ_HASH_BYTES = 32
PDQ_HASH_BITS = 256
PDQ_HEX_LENGTH = 64
#: Inclusive Hamming-distance threshold for a PDQ match (Meta's recommended value).
PDQ_MATCH_THRESHOLD = 31
#: Hashes with quality below this are flagged low quality (flat or featureless images).
PDQ_MIN_QUALITY = 50

HexLike = Union[str, bytes]

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.int32)


def bit_count(words: np.ndarray) -> np.ndarray:
    """Set bits summed along the last axis of an unsigned integer array (int32): the one
    NumPy popcount of the library (the C++ core has the SIMD ones)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).sum(axis=-1, dtype=np.int32)
    b = np.ascontiguousarray(words).view(np.uint8)  # pragma: no cover - numpy < 2.0
    return _POPCOUNT8[b].sum(axis=-1, dtype=np.int32)  # pragma: no cover


def as_hash_array(hashes: object, *, name: str = "hashes") -> np.ndarray:
    """Return ``hashes`` as a C-contiguous ``uint8`` array of shape ``(N, 32)``.

    Accepts an ``(N, 32)`` or ``(32,)`` uint8 array (a single hash becomes ``(1, 32)``).
    Raises ``TypeError`` for other dtypes and ``ValueError`` for other shapes.
    """
    arr = np.asarray(hashes)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be a numpy uint8 array of shape (N, 32); got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != PDQ_HASH_BYTES:
        raise ValueError(
            f"{name} must have shape (N, 32) (32 bytes = one 256-bit PDQ hash per row); got {arr.shape}"
        )
    return np.ascontiguousarray(arr)


def _check_hex(text: str, position: int | None) -> None:
    where = "" if position is None else f" at position {position}"
    if len(text) != PDQ_HEX_LENGTH:
        raise ValueError(
            f"PDQ hex{where} must be {PDQ_HEX_LENGTH} hex characters, got {len(text)}: {text[:80]!r}"
        )
    if not _HEX_DIGITS.issuperset(text):
        bad = next(c for c in text if c not in _HEX_DIGITS)
        raise ValueError(f"PDQ hex{where} contains a non-hex character {bad!r}: {text!r}")


def from_hex(hexes: HexLike | Iterable[HexLike]) -> np.ndarray:
    """Parse PDQ hex strings.

    A single string gives a ``(32,)`` array; an iterable of strings gives ``(N, 32)``.
    Surrounding whitespace is ignored; upper case is accepted. Anything else that is not
    exactly 64 hex digits raises ``ValueError`` naming the offending item.
    """
    if isinstance(hexes, (str, bytes)):
        text = hexes.decode("ascii", "replace") if isinstance(hexes, bytes) else hexes
        text = text.strip()
        _check_hex(text, None)
        return np.frombuffer(bytes.fromhex(text), dtype=np.uint8).copy()
    items = list(hexes)
    out = np.empty((len(items), PDQ_HASH_BYTES), dtype=np.uint8)
    for i, item in enumerate(items):
        if isinstance(item, bytes):
            item = item.decode("ascii", "replace")
        if not isinstance(item, str):
            raise TypeError(f"PDQ hex at position {i} must be a string, got {type(item).__name__}")
        text = item.strip()
        _check_hex(text, i)
        out[i] = np.frombuffer(bytes.fromhex(text), dtype=np.uint8)
    return out


def to_hex(hashes: np.ndarray) -> str | list[str]:
    """Format hashes as lowercase hex: a ``(32,)`` array gives a string, ``(N, 32)`` a list."""
    arr = np.asarray(hashes)
    if arr.dtype != np.uint8:
        raise TypeError(f"hashes must be uint8, got {arr.dtype}")
    if arr.ndim == 1:
        if arr.shape[0] != PDQ_HASH_BYTES:
            raise ValueError(f"a PDQ hash has 32 bytes, got {arr.shape[0]}")
        return arr.tobytes().hex()
    arr = as_hash_array(arr)
    return [row.tobytes().hex() for row in arr]


def hamming(a: np.ndarray | HexLike, b: np.ndarray | HexLike) -> np.ndarray | int:
    """Hamming distance between hashes (NumPy broadcasting over leading dimensions).

    ``a`` and ``b`` may be hex strings, ``(32,)`` or ``(..., 32)`` uint8 arrays. Two single
    hashes give an ``int``; otherwise an ``int32`` array.
    """
    aa = from_hex(a) if isinstance(a, (str, bytes)) else np.asarray(a)
    bb = from_hex(b) if isinstance(b, (str, bytes)) else np.asarray(b)
    for name, arr in (("a", aa), ("b", bb)):
        if arr.dtype != np.uint8:
            raise TypeError(f"{name} must be uint8 hashes (last dimension 32); got dtype {arr.dtype}")
        if arr.shape[-1:] != (PDQ_HASH_BYTES,):
            raise ValueError(f"{name} must have last dimension 32 (one PDQ hash); got shape {arr.shape}")
    d = bit_count(np.bitwise_xor(aa, bb))
    if d.ndim == 0:
        return int(d)
    return d


def hamming_matrix(a: Sequence | np.ndarray, b: Sequence | np.ndarray) -> np.ndarray:
    """All pairwise distances between ``(M, 32)`` and ``(N, 32)`` hashes, as ``(M, N)`` int32."""
    aa = as_hash_array(a, name="a")
    bb = as_hash_array(b, name="b")
    return hamming(aa[:, None, :], bb[None, :, :])  # type: ignore[return-value]
