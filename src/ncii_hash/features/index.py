"""FeatureIndex: find, among many images' local feature sets, the ones a query shows.

Two steps (issue #8):

1. **Candidates** (C++, ``lf_vote``): every query descriptor looks up its bucket in
   :data:`TABLES` hash tables keyed by fixed descriptor bits; a banked descriptor in that bucket
   votes for its image only if its whole 256-bit descriptor is within :data:`VOTE_DISTANCE`
   bits, once per query feature and image, into a (rotation, scale) bin of the keypoints'
   orientation and pyramid-level differences. An image's score is its fullest bin: a true copy
   puts its votes in one bin, chance agreements scatter. The best :data:`CANDIDATES` images with
   a score of at least :data:`MIN_SCORE` go on.
2. **Verification** (:func:`ncii_hash.verify_features`): descriptor matching and a RANSAC
   similarity transform per candidate; the decision rule is the one of ``verify_features``.

Images live in segments (fixed 256-slot records per image, their tables, their ids); adds
go to a new small segment, which is merged with the others when they grow apart, so adding
stays cheap and the tables stay few. Removal marks an image removed at once (it can no longer
vote) and drops its records at the next merge or save. Saved files are memory-mapped,
checksummed and replaced atomically, like :class:`ncii_hash.HashIndex` files.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

from .._core import lf_build_tables, lf_vote
from .._util.container import ContainerKind, read_container, write_container
from ..errors import IndexFileError
from .orb import _HEADER as _SET_HEADER
from .orb import _RECORD, FEATURE_VERSION, MAGIC, MAX_FEATURES, FeatureSet, GeometricMatch, verify_features

#: Hash tables per segment, and the most key bits per table (fewer for small segments).
TABLES = 4
MAX_KEY_BITS = 24
MIN_KEY_BITS = 10
#: A banked descriptor votes only within this many bits of the query's.
VOTE_DISTANCE = 50
#: Hough score an image needs to be verified, and how many are verified at most.
MIN_SCORE = 4
CANDIDATES = 32
#: Buckets holding more than this many times the mean are skipped (uninformative corners).
STOP_FACTOR = 64
_SEED = 0x1CE1  # the bit positions are part of the file format (stored in every file)
#: The file: a checksummed container (ncii_hash._util.container) of the arrays in _SPEC.
_KIND = ContainerKind(b"NCIIFIDX", 1, "an ncii_hash feature index", "rebuild the feature index from the bank")


def _bit_positions(key_bits: int) -> np.ndarray:
    perm = np.random.default_rng(_SEED).permutation(256).astype(np.uint16)
    return np.ascontiguousarray(perm[: TABLES * MAX_KEY_BITS].reshape(TABLES, MAX_KEY_BITS)[:, :key_bits])


def _key_bits_for(n_features: int) -> int:
    """About 8 descriptors a bucket on average, within [MIN_KEY_BITS, MAX_KEY_BITS]."""
    want = int(np.ceil(np.log2(max(2, n_features / 8))))
    return int(min(MAX_KEY_BITS, max(MIN_KEY_BITS, want)))


@dataclass(frozen=True)
class FeatureHit:
    """One banked image that matched (or, with ``verify=False``, was a candidate)."""

    id: int
    score: int  #: Hough score of the candidate step
    votes: int  #: query features that found a close descriptor of this image
    match: Optional[GeometricMatch]  #: the verification (None when not verified)

    @property
    def inliers(self) -> int:
        return self.match.inliers if self.match else 0


class _Segment:
    """Records (n, 256, 38) of n images, their feature counts, frames, ids and tables."""

    def __init__(self, records: np.ndarray, counts: np.ndarray, frames: np.ndarray, ids: np.ndarray,
                 positions: Optional[np.ndarray] = None, offsets: Optional[np.ndarray] = None,
                 postings: Optional[np.ndarray] = None, removed: Optional[np.ndarray] = None):
        self.records = records
        self.counts = counts
        self.frames = frames  # (n, 2) uint16 width, height
        self.ids = ids
        self.removed = np.zeros(len(ids), np.uint8) if removed is None else removed
        if offsets is None or postings is None or positions is None:
            positions = _bit_positions(_key_bits_for(int(counts.sum())))
            offsets, postings = lf_build_tables(records, counts, positions)
        self.positions, self.offsets, self.postings = positions, offsets, postings
        mean = postings.shape[1] / max(1, offsets.shape[1] - 1)
        self.max_bucket = int(max(1024, STOP_FACTOR * mean))
        self.row_of = {int(i): r for r, i in enumerate(ids.tolist())}

    @property
    def live(self) -> int:
        return int(len(self.ids) - self.removed.sum())

    def feature_set(self, row: int) -> FeatureSet:
        n = int(self.counts[row])
        rec = np.frombuffer(self.records[row, :n].tobytes(), dtype=_RECORD)
        w, h = (int(v) for v in self.frames[row])
        return FeatureSet.from_bytes(_pack(w, h, rec), source=f"indexed image {int(self.ids[row])}")


def _pack(width: int, height: int, rec: np.ndarray) -> bytes:
    return _SET_HEADER.pack(MAGIC, FEATURE_VERSION, width, height, len(rec)) + rec.tobytes()


def _records_of(sets: Sequence[FeatureSet]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(sets)
    records = np.zeros((n, MAX_FEATURES, _RECORD.itemsize), np.uint8)
    counts = np.zeros(n, np.uint16)
    frames = np.zeros((n, 2), np.uint16)
    for i, fs in enumerate(sets):
        body = np.frombuffer(fs.to_bytes()[_SET_HEADER.size:], np.uint8)
        records[i, : len(fs)] = body.reshape(len(fs), _RECORD.itemsize)
        counts[i] = len(fs)
        frames[i] = (fs.width, fs.height)
    return records, counts, frames


class FeatureIndex:
    """Local feature sets of images under integer ids (e.g. bank item ids).

    Thread-safe: searches run concurrently; adds, removals and saves take a lock.
    """

    def __init__(self) -> None:
        self._segments: list[_Segment] = []
        self._lock = threading.RLock()

    # ---- contents -----------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(s.live for s in self._segments)

    def __contains__(self, image_id: object) -> bool:
        return self._locate(int(image_id)) is not None  # type: ignore[call-overload]

    def _locate(self, image_id: int) -> Optional[tuple[_Segment, int]]:
        for seg in self._segments:
            row = seg.row_of.get(image_id)
            if row is not None and not seg.removed[row]:
                return seg, row
        return None

    def live_ids(self) -> np.ndarray:
        """The ids of the feature sets the index holds (removed ones excluded), ascending int64."""
        with self._lock:
            parts = [seg.ids[seg.removed == 0] for seg in self._segments]
        return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.zeros(0, np.int64)

    def get(self, image_id: int) -> Optional[FeatureSet]:
        found = self._locate(int(image_id))
        return found[0].feature_set(found[1]) if found else None

    def add(self, ids: Iterable[int], sets: Sequence[FeatureSet]) -> None:
        """Add (or replace) the feature sets of images ``ids``. Sets with too few features
        to match on are stored all the same (they simply never match)."""
        ids_arr = np.asarray(list(ids), dtype=np.int64).reshape(-1)
        if len(ids_arr) != len(sets):
            raise ValueError(f"{len(ids_arr)} ids for {len(sets)} feature sets")
        if len(np.unique(ids_arr)) != len(ids_arr):
            raise ValueError("duplicate ids in one add")
        for fs in sets:
            if not isinstance(fs, FeatureSet):
                raise TypeError(f"expected FeatureSet, got {type(fs).__name__}")
            if len(fs) > MAX_FEATURES:
                raise ValueError(f"a banked feature set holds at most {MAX_FEATURES} features, got {len(fs)} "
                                 "(query sets are larger: bank with image_features(..., query=False))")
        if not len(ids_arr):
            return
        records, counts, frames = _records_of(sets)
        with self._lock:
            self.remove(ids_arr, missing_ok=True)
            self._segments.append(_Segment(records, counts, frames, ids_arr))
            self._maybe_merge()

    def remove(self, ids: Iterable[int], *, missing_ok: bool = False) -> int:
        """Mark images removed; returns how many were present."""
        n = 0
        with self._lock:
            for image_id in np.asarray(list(ids), dtype=np.int64).reshape(-1).tolist():
                found = self._locate(image_id)
                if found is None:
                    if not missing_ok:
                        raise KeyError(f"image id {image_id} is not in the feature index")
                    continue
                seg, row = found
                seg.removed[row] = 1
                n += 1
        return n

    def _maybe_merge(self) -> None:
        """Merge segments so that each is at least twice the size of the next newer one
        (a logarithmic number of segments, each image rewritten O(log n) times)."""
        segs = self._segments
        while len(segs) > 1 and (len(segs[-2].ids) <= 2 * len(segs[-1].ids) or segs[-2].live < len(segs[-2].ids) / 2):
            b = segs.pop()
            a = segs.pop()
            segs.append(_merge([a, b]))

    def compact(self) -> None:
        """Merge every segment into one and drop removed images' records."""
        with self._lock:
            segs = self._segments
            if len(segs) == 1 and segs[0].live == len(segs[0].ids):
                return  # already compact: no copy (a bulk-built segment may be a large memmap)
            if segs:
                self._segments = [_merge(segs)]

    @classmethod
    def from_arrays(cls, records: np.ndarray, counts: np.ndarray, frames: np.ndarray,
                    ids: np.ndarray) -> "FeatureIndex":
        """An index over feature sets already laid out as one segment, for bulk loads of
        millions of images without :class:`FeatureSet` objects: ``records`` uint8
        ``(n, 256, 38)`` (image i's serialized feature records in its first ``counts[i]``
        slots, zeros after), ``counts`` uint16 ``(n,)``, ``frames`` uint16 ``(n, 2)`` (width,
        height) and distinct int64 ``ids``. The arrays are used as they are, not copied (a
        ``numpy.memmap`` of records stays on disk); the bucket tables are built here."""
        arrays = {"records": records, "counts": counts, "frames": frames, "ids": ids}
        for name, a in arrays.items():
            dtype, ndim = _SPEC[name]
            what = f"from_arrays: {name} must be a C-contiguous {np.dtype(dtype).name} array with {ndim} dimensions"
            if not isinstance(a, np.ndarray) or a.dtype != dtype:
                raise TypeError(what)
            if a.ndim != ndim or not a.flags.c_contiguous:
                raise ValueError(what)
        n = len(ids)
        if (records.shape != (n, MAX_FEATURES, _RECORD.itemsize) or counts.shape != (n,)
                or frames.shape != (n, 2)):
            raise ValueError(f"from_arrays: shapes records {records.shape}, counts {counts.shape}, frames "
                             f"{frames.shape} do not fit {n} ids (records must be (n, {MAX_FEATURES}, "
                             f"{_RECORD.itemsize}))")
        if n and int(counts.max()) > MAX_FEATURES:
            raise ValueError(f"from_arrays: a count exceeds {MAX_FEATURES} features")
        if n and not (frames >= 1).all():
            raise ValueError("from_arrays: frame sizes must be at least 1x1")
        if len(np.unique(ids)) != n:
            raise ValueError("from_arrays: duplicate ids")
        index = cls()
        if n:
            index._segments.append(_Segment(records, counts, frames, ids))
        return index

    # ---- search -------------------------------------------------------------------------

    def search(self, query: "FeatureSet | Sequence[FeatureSet]", *, candidates: int = CANDIDATES,
               min_score: int = MIN_SCORE, verify_candidates: bool = True, matches_only: bool = True,
               threads: int = 0) -> list[FeatureHit]:
        """Banked images ``query`` shows, best first (most inliers). With
        ``verify_candidates=False`` the unverified candidates, best score first.

        ``query`` may be several sets of one image (:func:`ncii_hash.features.query_features`):
        each is searched and an image is reported once, with its best verification."""
        if not isinstance(query, FeatureSet) and isinstance(query, Sequence):
            best: dict[int, FeatureHit] = {}
            for q in query:
                for h in self.search(q, candidates=candidates, min_score=min_score, threads=threads,
                                     verify_candidates=verify_candidates, matches_only=matches_only):
                    key = (h.match.is_match, h.inliers, h.score) if h.match else (False, 0, h.score)
                    old = best.get(h.id)
                    if old is None or key > ((old.match.is_match, old.inliers, old.score) if old.match
                                             else (False, 0, old.score)):
                        best[h.id] = h
            if verify_candidates:
                return sorted(best.values(), key=lambda h: (-h.inliers, h.id))
            return sorted(best.values(), key=lambda h: (-h.score, -h.votes, h.id))
        if not isinstance(query, FeatureSet):
            raise TypeError(f"expected FeatureSet, got {type(query).__name__}")
        if not query.usable or not self._segments:
            return []
        rec = np.frombuffer(query.to_bytes()[_SET_HEADER.size:], dtype=_RECORD)
        desc = np.ascontiguousarray(rec["desc"])
        angle = np.ascontiguousarray(rec["angle"])
        octave = np.ascontiguousarray(rec["octave"])
        found: list[tuple[int, int, int, _Segment, int]] = []
        for seg in list(self._segments):
            img, score, votes, _ = lf_vote(
                desc, angle, octave, seg.records, len(seg.ids), seg.removed, seg.positions, seg.offsets,
                seg.postings, VOTE_DISTANCE, min_score, candidates, seg.max_bucket, threads)
            found += [(-int(s), -int(v), int(seg.ids[i]), seg, int(i)) for i, s, v in zip(img, score, votes)]
        found.sort(key=lambda t: t[:3])
        hits = []
        for neg_s, neg_v, image_id, seg, row in found[:candidates]:
            match = verify_features(query, seg.feature_set(row)) if verify_candidates else None
            if verify_candidates and matches_only and not match.is_match:  # type: ignore[union-attr]
                continue
            hits.append(FeatureHit(image_id, -neg_s, -neg_v, match))
        if verify_candidates:
            hits.sort(key=lambda h: (-h.inliers, h.id))
        return hits

    # ---- files --------------------------------------------------------------------------

    def save(self, path: os.PathLike | str) -> None:
        """Write the index (compacted) to ``path`` atomically, owner-only."""
        with self._lock:
            self.compact()
            seg = self._segments[0] if self._segments else None
            arrays = {} if seg is None else {
                "records": seg.records, "counts": seg.counts, "frames": seg.frames, "ids": seg.ids,
                "positions": seg.positions, "offsets": seg.offsets, "postings": seg.postings}
            _write(path, arrays)

    @classmethod
    def load(cls, path: os.PathLike | str, *, mmap: bool = True) -> "FeatureIndex":
        """Read a saved index (checksum verified; refused with ValueError when damaged)."""
        arrays = _read(path, mmap=mmap)
        index = cls()
        if arrays:
            n = len(arrays["ids"])
            _check_loaded(arrays, n, path)
            index._segments.append(_Segment(arrays["records"], arrays["counts"], arrays["frames"], arrays["ids"],
                                            arrays["positions"], arrays["offsets"], arrays["postings"]))
        return index


def _merge(segs: Sequence[_Segment]) -> _Segment:
    keep = [s.removed == 0 for s in segs]
    records = np.concatenate([s.records[k] for s, k in zip(segs, keep)])
    counts = np.concatenate([s.counts[k] for s, k in zip(segs, keep)])
    frames = np.concatenate([s.frames[k] for s, k in zip(segs, keep)])
    ids = np.concatenate([s.ids[k] for s, k in zip(segs, keep)])
    return _Segment(records, counts, frames, ids)


_SPEC = {"records": (np.uint8, 3), "counts": (np.uint16, 1), "frames": (np.uint16, 2), "ids": (np.int64, 1),
         "positions": (np.uint16, 2), "offsets": (np.uint32, 2), "postings": (np.uint32, 2)}


def _write(path: os.PathLike | str, arrays: dict[str, np.ndarray]) -> None:
    write_container(path, _KIND, arrays, {})


def _read(path: os.PathLike | str, *, mmap: bool) -> dict[str, np.ndarray]:
    """The arrays of a saved index (checksum verified first; IndexFileError when damaged)."""
    arrays = read_container(path, _KIND, mmap=mmap).arrays
    for name, a in arrays.items():
        if name not in _SPEC:
            raise IndexFileError(f"{path}: unknown array {name!r}; {_KIND.rebuild}")
        dtype, ndim = _SPEC[name]
        if a.dtype != np.dtype(dtype) or a.ndim != ndim:
            raise IndexFileError(f"{path}: bad array {name!r}; {_KIND.rebuild}")
    if arrays and set(arrays) != set(_SPEC):
        raise IndexFileError(f"{path}: incomplete feature index; {_KIND.rebuild}")
    return arrays


def _check_loaded(a: dict[str, np.ndarray], n: int, path: object) -> None:
    """Structural checks that keep the C++ voter inside its arrays even for a file whose
    checksum was forged."""
    ok = (a["records"].shape == (n, MAX_FEATURES, _RECORD.itemsize) and a["counts"].shape == (n,)
          and a["frames"].shape == (n, 2) and a["positions"].ndim == 2
          and a["positions"].shape[0] == a["offsets"].shape[0] == a["postings"].shape[0]
          and MIN_KEY_BITS <= a["positions"].shape[1] <= MAX_KEY_BITS
          and a["offsets"].shape[1] == (1 << a["positions"].shape[1]) + 1)
    if ok:
        ok = bool((a["positions"] < 256).all() and (a["counts"] <= MAX_FEATURES).all()
                  and len(np.unique(a["ids"])) == n)
    if ok and a["postings"].size:
        off = a["offsets"]
        ok = bool((off[:, 0] == 0).all() and (off[:, -1] == a["postings"].shape[1]).all()
                  and (np.diff(off.astype(np.int64), axis=1) >= 0).all()
                  and int(a["postings"].max()) < n * MAX_FEATURES)
    if not ok:
        raise IndexFileError(f"{path}: inconsistent feature index; {_KIND.rebuild}")
