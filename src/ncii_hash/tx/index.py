"""``NciiPdqIndex``: python-threatexchange's ``SignalTypeIndex`` for PDQ, over our exact
:class:`~ncii_hash.index.HashIndex`.

Contracts (the ones pytx's ``PDQIndex`` states, made exact):

* ``query(hex)`` returns **every** entry within ``threshold`` (inclusive, default 31) of the
  query, one ``IndexMatch`` per entry, with the distance as an ``int``. Entries sharing a
  hash are separate entries (``build([(h, 1), (h, 2)])`` matches twice). Matches come ordered
  by (distance, insertion order). pytx's FAISS multi-index ``PDQIndex`` is approximate and can
  miss matches; this index never does.
* Entries are the ``HashIndex`` ids ``0, 1, 2, ...`` in insertion order; their metadata sits
  in :class:`~.entries.EntryMetadata` (an int64 array while every value is an int, as in HMA).
* ``remove`` takes entries out at once, for every later query (withdrawals); there is no
  rebuild.
* Pickling (``serialize``/``deserialize``, HMA's large object) stores the index's checksummed
  bytes form (``HashIndex.to_bytes``: 40 bytes per live hash) plus the metadata; a damaged
  pickle is refused (:class:`~ncii_hash.errors.IndexFileError`), never searched.
* Thread-safety: queries may run concurrently (the kernel releases the GIL); ``add``/``remove``
  take the index's writer lock (one writer at a time) and the ``HashIndex`` lock serialises
  them against running queries.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable, Optional, Sequence, Tuple, TypeVar

import numpy as np
from threatexchange.signal_type.index import (IndexMatchUntyped, SignalSimilarityInfoWithIntDistance,
                                              SignalTypeIndex)

from ..hashes import PDQ_HASH_BITS, PDQ_HASH_BYTES, PDQ_HEX_LENGTH, PDQ_MATCH_THRESHOLD, from_hex
from ..index import DEFAULT_BACKEND, NUM_DIHEDRAL, HashIndex, check_int
from .entries import EntryMetadata

T = TypeVar("T")

#: Version of the pickled state (``__getstate__``); bumped when its layout changes.
STATE_VERSION = 1

_ANY = object()
_PARSE_CHUNK = 1 << 20


def codes_from_hex(hexes: Sequence[object], what: str = "PDQ hex") -> np.ndarray:
    """``(N, 32)`` uint8 codes of N PDQ hex strings, parsed by ``bytes.fromhex`` a million at a
    time (a 10M-hash build holds one 64 MB joined string at a time, not 640 MB).

    Anything that is not 64 hex digits (surrounding whitespace and upper case are accepted,
    as by :func:`ncii_hash.hashes.from_hex`) raises ValueError naming its position."""
    n = len(hexes)
    codes = np.empty((n, PDQ_HASH_BYTES), dtype=np.uint8)
    for lo in range(0, n, _PARSE_CHUNK):
        chunk = hexes[lo:lo + _PARSE_CHUNK]
        codes[lo:lo + len(chunk)] = _parse_chunk(chunk, lo, what)
    return codes


def _parse_chunk(hexes: Sequence[object], offset: int, what: str) -> np.ndarray:
    n = len(hexes)
    if all(type(h) is str and len(h) == PDQ_HEX_LENGTH for h in hexes):
        try:
            raw = bytes.fromhex("".join(hexes))  # type: ignore[arg-type]
        except ValueError:
            raw = b""
        if len(raw) == n * PDQ_HASH_BYTES:
            return np.frombuffer(raw, dtype=np.uint8).reshape(n, PDQ_HASH_BYTES)
    for i, h in enumerate(hexes):  # the slow path finds and names the bad item
        if not isinstance(h, str):
            raise TypeError(f"{what} at position {offset + i} must be a str, got {type(h).__name__}")
        try:
            from_hex(h)
        except ValueError as exc:
            raise ValueError(f"{what} at position {offset + i}: {exc}") from None
    return from_hex(hexes)  # type: ignore[arg-type]  # valid, but padded with whitespace


def _query_code(signal: object) -> np.ndarray:
    if not isinstance(signal, str):
        raise TypeError(f"a PDQ query must be a 64-character hex str, got {type(signal).__name__}")
    return from_hex(signal).reshape(1, PDQ_HASH_BYTES)


class NciiPdqIndex(SignalTypeIndex[T]):
    """An exact PDQ index for pytx and HMA: every entry within ``threshold`` bits, no misses.

    ``backend`` picks the :class:`~ncii_hash.index.HashIndex` backend (default ``"auto"``: exact
    multi-index hashing per lookup where it beats our SIMD scan, see docs/multi-index.md; any
    exact backend ``HashIndex`` offers may be named, e.g. ``"flat"``, which holds no tables).
    """

    def __init__(self, entries: Iterable[Tuple[str, T]] = (), *, threshold: int = PDQ_MATCH_THRESHOLD,
                 backend: str = DEFAULT_BACKEND) -> None:
        super().__init__()
        self.threshold = check_int(threshold, "threshold", 0, PDQ_HASH_BITS)
        self._hashes = HashIndex(backend)
        if not self._hashes.exact:
            raise ValueError(f"backend {backend!r} is approximate; NciiPdqIndex promises exact matches: "
                             "use an exact backend such as 'flat'")
        self._metadata = EntryMetadata()
        self._writer = threading.Lock()
        self.add_all(entries)

    @property
    def backend(self) -> str:
        return self._hashes.backend

    def wait_for_backend(self, timeout: Optional[float] = None) -> bool:
        """Wait until the backend's tables are built (``auto``/``mih`` build them in the
        background after a large build or an unpickle; lookups are exact meanwhile, through
        the scan). True when no build runs any more."""
        return self._hashes.wait_for_backend(timeout)

    def __len__(self) -> int:
        """Live entries (duplicated hashes counted once per entry)."""
        return len(self._hashes)

    def __repr__(self) -> str:
        return f"NciiPdqIndex(size={len(self)}, threshold={self.threshold}, backend={self.backend!r})"

    # ---- queries ----------------------------------------------------------------------
    def query(self, query: str) -> list[IndexMatchUntyped[SignalSimilarityInfoWithIntDistance, T]]:
        """Every entry within ``threshold`` of the PDQ hash ``query`` (64 hex digits)."""
        result = self._hashes.range_search(_query_code(query), self.threshold)
        return self._matches(result.ids, result.distances)

    def query_dihedral(self, hashes: Sequence[str]) -> list[IndexMatchUntyped[SignalSimilarityInfoWithIntDistance, T]]:
        """Matches of an image in any of its 8 rotations and flips: ``hashes`` are the 8
        dihedral PDQ hashes of the image (``NciiPdqSignal.dihedral_hashes_from_file``; they
        come from the image's DCT and cannot be derived from one hash). Each entry is
        reported once, with its smallest distance over the 8."""
        if isinstance(hashes, str) or len(hashes) != NUM_DIHEDRAL:
            raise ValueError(f"query_dihedral needs the {NUM_DIHEDRAL} dihedral PDQ hashes of one image "
                             "(a list of 8 hex strings)")
        codes = codes_from_hex(list(hashes), "dihedral PDQ hex").reshape(1, NUM_DIHEDRAL, PDQ_HASH_BYTES)
        result = self._hashes.range_search(codes, self.threshold, dihedral=True)
        return self._matches(result.ids, result.distances)

    def _matches(self, ids: np.ndarray, distances: np.ndarray) -> list:
        metadata = self._metadata.get_many(ids)
        return [IndexMatchUntyped(SignalSimilarityInfoWithIntDistance(d), m)
                for d, m in zip(distances.tolist(), metadata)]

    # ---- changes ----------------------------------------------------------------------
    def add(self, signal_str: str, entry: T) -> None:
        self.add_all(((signal_str, entry),))

    def add_all(self, entries: Iterable[Tuple[str, T]]) -> None:
        """Add ``(pdq hex, metadata)`` pairs; all hex is parsed in one call and the codes
        are added in one ``HashIndex.add``. Nothing is added when any hex is invalid."""
        items = entries if isinstance(entries, (list, tuple)) else list(entries)
        if not items:
            return
        try:
            hexes = [h for h, _ in items]
            values = [v for _, v in items]
        except (TypeError, ValueError):
            raise TypeError("entries must be (pdq hex, metadata) pairs") from None
        codes = codes_from_hex(hexes)
        with self._writer:
            ids = self._metadata.extend(values)
            # HashIndex's fresh ids are these slots (both count every entry ever added), and
            # letting it choose them skips its check of explicit ids (a sort of all of them).
            given = self._hashes.add(codes)
            if given.shape != ids.shape or (ids.size and (given[0] != ids[0] or given[-1] != ids[-1])):
                raise RuntimeError("NciiPdqIndex: HashIndex ids and metadata slots disagree (a bug)")

    def remove(self, signal_str: str, entry: Any = _ANY) -> int:
        """Remove the entries of hash ``signal_str`` (only those whose metadata equals
        ``entry``, when given); returns how many. Effective for every later query."""
        code = _query_code(signal_str)
        with self._writer:
            ids = self._hashes.range_search(code, 0).ids
            if entry is not _ANY:
                keep = [m == entry for m in self._metadata.get_many(ids)]
                ids = ids[np.asarray(keep, dtype=bool)] if len(keep) else ids
            removed = self._hashes.remove(ids)
            self._metadata.release(ids.tolist())
            return removed

    # ---- pickling ---------------------------------------------------------------------
    def __getstate__(self) -> dict:
        return {"version": STATE_VERSION, "threshold": self.threshold, "hashes": self._hashes,
                "metadata": self._metadata}

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            found = state.get("version") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"cannot load a pickled NciiPdqIndex of format {found!r} (this version reads "
                             f"{STATE_VERSION}); rebuild the index from its signals")
        self.threshold = state["threshold"]
        self._hashes = state["hashes"]
        self._metadata = state["metadata"]
        self._writer = threading.Lock()
