"""HashBank: the durable bank of cases and hashes, with immediate withdrawal.

The SQLite file is the truth; the in-memory :class:`~ncii_hash.index.HashIndex` is derived
from it and kept in step incrementally.

Guarantees
----------
* **Durable**: every ``add_case``/``withdraw``/``import_`` is one transaction, committed with
  ``synchronous=FULL`` in WAL mode before the call returns. A crash loses only what had not
  returned.
* **Withdrawal is immediate and complete**: when ``withdraw(case_id)`` returns, the case's
  hash rows are deleted (``secure_delete`` zeroes them in the file, and the WAL is
  checkpointed and truncated so no old page copy survives), the index no longer holds them,
  and every saved index snapshot is deleted. Every match is also checked against the table,
  so a withdrawn case can never be reported, even by another process whose index has not
  caught up yet.
* **Other processes stay in step**: each call reads the bank's change sequence and applies
  the changes committed since (new hashes in, withdrawn hashes out) before matching.
* **Private files**: the database, its WAL and snapshots are created owner-only (0600).
  Perceptual hashes can be partly inverted into rough likenesses of the image, so a bank is
  sensitive data: keep it on encrypted storage and share it only with partners who must match.

Thread-safety: a HashBank may be used from several threads; calls are serialized by an
internal lock. Use one HashBank per process (SQLite handles several processes).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from .exchange import BankExchangeMixin
from .index_sync import BankIndexMixin
from .feature_store import FeatureBankMixin, feature_sets_of
from . import image_match
from .image_match import ImageMatchReport
from .schema import (  # noqa: F401  (re-exported: the bank's public records)
    CASE_ID_PATTERN,
    PathLike,
    EXPORT_HEADER,
    MEDIA_KINDS,
    SCHEMA_VERSION,
    _MIGRATIONS,
    _SCHEMA,
    BankError,
    BankMatch,
    BankStats,
    CaseInfo,
    ChangeSet,
    FeatureBankMatch,
    ImageBankMatch,
    VideoBankMatch,
    _new_case_id,
    _video_parts,
    codes_from_blobs,
)
from ..submission import Submission, parse_submission, read_submission
from .._util.files import create_private_file
from ..hashes import PDQ_HASH_BYTES, PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY, as_hash_array
from ..index.hash_index import HashIndex
from ..image.io import ImageSource

class HashBank(FeatureBankMixin, BankExchangeMixin, BankIndexMixin):
    """A durable bank of NCII hash cases (see module docs for the guarantees)."""

    def __init__(
        self,
        path: PathLike,
        *,
        create: bool = True,
        backend: str = "flat",
        allow_low_quality: bool = False,
        snapshot: bool = True,
    ):
        self.path = Path(os.fspath(path))
        self.allow_low_quality = allow_low_quality
        self._snapshot_enabled = snapshot
        self._backend = backend
        self._lock = threading.RLock()
        if self.path.is_dir():
            raise BankError(f"{self.path}: is a folder; give the path of a bank file")
        exists = self.path.exists()
        if not exists:
            if not create:
                raise FileNotFoundError(f"{self.path}: no such bank (use create=True or 'ncii-hash bank init')")
            if not self.path.parent.exists():
                raise FileNotFoundError(f"{self.path.parent}: folder does not exist")
            create_private_file(self.path)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise BankError(f"{self.path}: not a readable hash bank ({exc})") from None
        self._index = HashIndex(backend=backend)
        self._seq = 0
        self.index_source = "empty"
        self._open_index()

    # ------------------------------------------------------------------ schema
    def _migrate(self) -> None:
        cur = self._db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='meta'")
        if cur.fetchone() is None:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                self._db.execute("INSERT INTO meta VALUES ('change_seq', '0')")
                self._db.execute("INSERT INTO meta VALUES ('bank_id', ?)", (secrets.token_hex(8),))
                self._db.execute("INSERT INTO meta VALUES ('kind', 'ncii-hash-bank')")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return
        kind = self._meta("kind")
        if kind != "ncii-hash-bank":
            raise BankError(f"{self.path}: not an ncii-hash bank")
        version = int(self._meta("schema_version") or 0)
        if version > SCHEMA_VERSION:
            raise BankError(
                f"{self.path}: bank schema version {version} is newer than this ncii-hash ({SCHEMA_VERSION}); upgrade ncii-hash"
            )
        for step in range(version, SCHEMA_VERSION):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if int(self._meta("schema_version") or 0) == step:  # another process may have done it
                    for statement in _MIGRATIONS[step]:
                        self._db.execute(statement)
                    self._db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(step + 1),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _meta(self, key: str) -> Optional[str]:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def _db_seq(self) -> int:
        return int(self._meta("change_seq") or 0)

    # ------------------------------------------------------------------ writing
    def _check_hashes(self, hashes: Any, qualities: Any, kinds: Any, allow_low_quality: bool):
        h = as_hash_array(hashes)
        n = h.shape[0]
        if qualities is None:
            q = np.full(n, 100, dtype=np.int32)
        else:
            q = np.asarray(qualities)
            if q.shape != (n,) or not np.issubdtype(q.dtype, np.integer):
                raise BankError(f"qualities must be {n} integers (one per hash); got shape {q.shape} dtype {q.dtype}")
            q = q.astype(np.int32)
            if n and (q.min() < 0 or q.max() > 100):
                raise BankError("qualities must be in 0..100")
        if isinstance(kinds, str):
            k = [kinds] * n
        else:
            k = list(kinds)
        if len(k) != n or any(x not in MEDIA_KINDS for x in k):
            raise BankError(f"kind must be one of {MEDIA_KINDS}")
        if not allow_low_quality:
            low = np.nonzero(q < PDQ_MIN_QUALITY)[0]
            if low.size:
                raise BankError(
                    f"{low.size} hash(es) have quality below {PDQ_MIN_QUALITY} (first at position {int(low[0])}, "
                    f"quality {int(q[low[0]])}): such hashes come from flat or featureless images and cause false "
                    "matches; pass allow_low_quality=True to bank them anyway"
                )
        return h, q, k

    def _insert_case(self, case_id: str, h: np.ndarray, q: np.ndarray, k: Sequence[str], now: float, seq: int,
                     items: Optional[Sequence[int]] = None, videos: Sequence = ()) -> list:
        self._db.execute("INSERT INTO cases (case_id, created_at, status) VALUES (?, ?, 'active')", (case_id, now))
        self._db.executemany(
            "INSERT INTO hashes (case_id, hash, quality, kind, added_at, seq, item) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((case_id, h[i].tobytes(), int(q[i]), k[i], now, seq, 0 if items is None else int(items[i]))
             for i in range(h.shape[0])),
        )
        # A new case: its rows are exactly these, in insertion (= increasing id) order.
        ids = [r[0] for r in self._db.execute("SELECT hash_id FROM hashes WHERE case_id=? ORDER BY hash_id", (case_id,))]
        for item, md5 in videos:
            self._db.execute("INSERT INTO videos (case_id, item, md5) VALUES (?, ?, ?)", (case_id, item, md5))
        self._db.execute(
            "INSERT INTO changes (seq, case_id, op, hash_ids, at) VALUES (?, ?, 'add', ?, ?)",
            (seq, case_id, np.asarray(ids, dtype="<i8").tobytes(), now),
        )
        return ids

    def _begin_write(self) -> int:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db_seq()

    def _commit_seq(self, seq: int) -> None:
        self._db.execute("UPDATE meta SET value=? WHERE key='change_seq'", (str(seq),))
        self._db.execute("COMMIT")

    def add_case(
        self,
        hashes: Any = None,
        qualities: Any = None,
        *,
        kind: Union[str, Sequence[str]] = "image",
        videos: Iterable[Any] = (),
        allow_low_quality: Optional[bool] = None,
        case_id: Optional[str] = None,
        features: Iterable[Any] = (),
    ) -> str:
        """Bank a new case; returns its (random, unguessable) case id.

        ``features``: local feature sets (:func:`ncii_hash.image_features`, or their bytes)
        of the case's images, matched by :meth:`match_features`. They reveal much more than
        hashes (see :mod:`ncii_hash.features`): bank them only with the survivor's consent.

        ``hashes``/``qualities``: image hashes. ``videos``: each a ``VideoHash``, a
        submission's ``SubmittedVideo`` or a ``(frames, qualities, md5)`` tuple; its frames
        are banked as one item (de-duplicated) and matched with :meth:`match_video`.
        """
        allow = self.allow_low_quality if allow_low_quality is None else allow_low_quality
        if hashes is None:
            hashes = np.zeros((0, PDQ_HASH_BYTES), np.uint8)
        h, q, k = self._check_hashes(hashes, qualities, kind, allow)
        items = [0] * h.shape[0]
        video_rows = []
        for n, video in enumerate(videos, start=1):
            frames, fq, md5 = _video_parts(video)
            if not allow and not (fq >= PDQ_MIN_QUALITY).any():
                raise BankError(
                    f"video {n} has no frame with quality >= {PDQ_MIN_QUALITY}, so it could never match; "
                    "pass allow_low_quality=True to bank it anyway"
                )
            h = np.concatenate([h, frames])
            q = np.concatenate([q, fq])
            k = list(k) + ["video_frame"] * frames.shape[0]
            items += [n] * frames.shape[0]
            video_rows.append((n, md5))
        if h.shape[0] == 0:
            raise BankError("a case needs at least one hash or video")
        fsets = feature_sets_of(features)
        if case_id is not None and not CASE_ID_PATTERN.match(case_id):
            raise BankError(f"case id {case_id!r} must be 1-128 characters from A-Z a-z 0-9 _ . : -")
        with self._lock:
            self._catch_up()
            cid = case_id or _new_case_id()
            base = self._begin_write()
            try:
                if self._db.execute("SELECT 1 FROM cases WHERE case_id=?", (cid,)).fetchone():
                    raise BankError(f"case {cid} already exists")
                now = time.time()
                ids = self._insert_case(cid, h, q, k, now, base + 1, items, video_rows)
                fids = self._insert_features(cid, fsets, now)
                self._commit_seq(base + 1)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._apply_own_write(base, base + 1, h, ids)
            self._features_applied(base, base + 1, added=fids, sets=fsets)
            return cid

    def _apply_own_write(self, base: int, seq: int, h: np.ndarray, ids: Sequence[int]) -> None:
        if base == self._seq:
            if len(ids):
                self._index.add(h, np.asarray(ids, dtype=np.int64))
            self._seq = seq
        else:  # someone else wrote in between: take everything from the table
            self._catch_up()

    def add_submission(self, submission: Union[PathLike, Mapping, Submission], **kwargs: Any) -> str:
        """Bank a survivor's submission (a path to the JSON file, its decoded dict, or a Submission)."""
        if isinstance(submission, Submission):
            sub = submission
        elif isinstance(submission, Mapping):
            sub = parse_submission(dict(submission))
        else:
            sub = read_submission(submission)
        return self.add_case(sub.hashes, sub.qualities, kind=list(sub.kinds), videos=sub.videos,
                             features=sub.features, **kwargs)

    def withdraw(self, case_id: str) -> int:
        """Withdraw a case: its hashes are deleted and never match again. Returns how many.

        Raises KeyError for an unknown case; withdrawing twice is a no-op returning 0.
        """
        with self._lock:
            self._catch_up()
            base = self._begin_write()
            try:
                row = self._db.execute("SELECT status FROM cases WHERE case_id=?", (case_id,)).fetchone()
                if row is None:
                    raise KeyError(f"no case {case_id!r} in this bank")
                if row[0] == "withdrawn":
                    self._db.execute("ROLLBACK")
                    return 0
                ids = [r[0] for r in self._db.execute("SELECT hash_id FROM hashes WHERE case_id=?", (case_id,))]
                now = time.time()
                self._db.execute("DELETE FROM hashes WHERE case_id=?", (case_id,))
                self._db.execute("DELETE FROM videos WHERE case_id=?", (case_id,))
                fids = self._delete_features(case_id)
                self._db.execute(
                    "UPDATE cases SET status='withdrawn', withdrawn_at=? WHERE case_id=?", (now, case_id)
                )
                self._db.execute(
                    "INSERT INTO changes (seq, case_id, op, hash_ids, at) VALUES (?, ?, 'withdraw', ?, ?)",
                    (base + 1, case_id, np.asarray(ids, dtype="<i8").tobytes(), now),
                )
                self._commit_seq(base + 1)
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._features_applied(base, base + 1, removed=fids)
            if base == self._seq:
                if ids:
                    self._index.remove(np.asarray(ids, dtype=np.int64))
                self._seq = base + 1
            else:
                self._catch_up()
            # No copy of the withdrawn hashes may stay on disk: old WAL frames, snapshots.
            self._checkpoint()
            self._drop_snapshots()
            return len(ids)

    def _checkpoint(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError:  # pragma: no cover - busy readers; retried on close
            pass

    # ------------------------------------------------------------------ reading
    def case(self, case_id: str) -> CaseInfo:
        with self._lock:
            return self._case_locked(case_id)

    def _case_locked(self, case_id: str) -> CaseInfo:
        row = self._db.execute(
            "SELECT case_id, status, created_at, withdrawn_at FROM cases WHERE case_id=?", (case_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no case {case_id!r} in this bank")
        n = self._db.execute("SELECT COUNT(*) FROM hashes WHERE case_id=?", (case_id,)).fetchone()[0]
        return CaseInfo(case_id=row[0], status=row[1], created_at=row[2], withdrawn_at=row[3], hashes=n)

    def case_hashes(self, case_id: str) -> np.ndarray:
        with self._lock:
            rows = self._db.execute("SELECT hash FROM hashes WHERE case_id=? ORDER BY hash_id", (case_id,)).fetchall()
        return codes_from_blobs(r[0] for r in rows)

    def match(
        self,
        queries: Any,
        radius: int = PDQ_MATCH_THRESHOLD,
        *,
        dihedral: bool = True,
        threads: int = 0,
    ) -> list:
        """Banked hashes within ``radius`` (inclusive) of each query, as BankMatch records.

        ``queries``: ``(Q, 32)`` hashes, or ``(Q, 8, 32)`` dihedral sets from
        ``pdq_hash(..., dihedral=True).dihedral`` (searched in all 8 orientations when
        ``dihedral`` is true; the variants of a hash come from its DCT, so plain hashes are
        searched as they are). Sorted by query, then distance, then hash id.
        """
        q = np.asarray(queries)
        if q.dtype != np.uint8:
            raise TypeError(f"queries must be uint8 hashes; got dtype {q.dtype}")
        if q.ndim == 1:
            q = q.reshape(1, -1)
        if q.ndim == 3:
            if q.shape[1:] != (8, PDQ_HASH_BYTES):
                raise ValueError(f"dihedral queries must have shape (Q, 8, 32); got {q.shape}")
            if not dihedral:
                q = q[:, 0, :]
        elif q.ndim != 2 or q.shape[1] != PDQ_HASH_BYTES:
            raise ValueError(f"queries must have shape (Q, 32) or (Q, 8, 32); got {q.shape}")
        q = np.ascontiguousarray(q)
        with self._lock:
            self._catch_up()
            res = self._index.range_search(q, radius, dihedral=q.ndim == 3, threads=threads)
            if res.ids.size == 0:
                return []
            variants = res.variants if getattr(res, "variants", None) is not None else np.zeros(res.ids.size, np.int8)
            # The table is the truth: map ids to cases, dropping anything no longer banked.
            owner = dict(self._rows_for_ids("SELECT hash_id, case_id FROM hashes WHERE hash_id IN ({})", res.ids))
        out = []
        lims = res.lims
        for qi in range(lims.size - 1):
            rows = []
            for j in range(int(lims[qi]), int(lims[qi + 1])):
                hid = int(res.ids[j])
                cid = owner.get(hid)
                if cid is None:
                    continue
                rows.append(BankMatch(query=qi, case_id=cid, hash_id=hid, distance=int(res.distances[j]),
                                      variant=int(variants[j])))
            rows.sort(key=lambda m: (m.distance, m.hash_id))
            out.extend(rows)
        return out

    def match_images(
        self,
        images: Sequence[ImageSource],
        *,
        radius: int = PDQ_MATCH_THRESHOLD,
        dihedral: bool = True,
        trim_borders: bool = True,
        features: bool = True,
        threads: int = 0,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> list[ImageMatchReport]:
        """Match a batch of images (paths, bytes, PIL images or arrays): one
        :class:`ImageMatchReport` per image, in order. One bad image never stops the batch
        (its report carries the error).

        PDQ first: each image's hash in all 8 orientations (``dihedral``) and, when it has a
        uniform border, the content inside it (``trim_borders``), within ``radius``
        (inclusive). Then, for the images PDQ missed, local features (``features``; only
        when the bank holds feature sets and OpenCV is installed). ``progress(done, total)``
        follows the hashing.
        """
        return image_match.match_images(self, images, radius=radius, dihedral=dihedral, trim_borders=trim_borders,
                                        features=features, threads=threads, progress=progress)

    def match_image(self, image: ImageSource, *, radius: Optional[int] = None, features: bool = True,
                    threads: int = 0) -> list[ImageBankMatch]:
        """The platform's one call for an uploaded image (path, bytes, PIL image or array):
        PDQ first -- all 8 orientations, and the content inside a uniform border -- then,
        only if that finds nothing and the bank holds feature sets, local features (crops,
        small rotations, banners, screenshots). One entry per case, best first. Raises
        ImageError when the image cannot be decoded."""
        return image_match.match_image(self, image, radius=radius, features=features, threads=threads)

    def _rows_for_ids(self, sql: str, ids: np.ndarray) -> list:
        """Run ``sql`` (with one ``{}`` for the placeholders) over unique ``ids`` in chunks
        below SQLite's parameter limit."""
        uniq = np.unique(ids)
        rows: list = []
        for start in range(0, uniq.size, 900):
            part = [int(x) for x in uniq[start:start + 900]]
            rows.extend(self._db.execute(sql.format(",".join("?" * len(part))), part))
        return rows

    def stats(self) -> BankStats:
        with self._lock:
            self._catch_up()
            c = self._db.execute(
                "SELECT COUNT(*), SUM(status='active'), SUM(status='withdrawn') FROM cases"
            ).fetchone()
            n = self._db.execute("SELECT COUNT(*) FROM hashes").fetchone()[0]
            size = sum(p.stat().st_size for p in [self.path, Path(str(self.path) + "-wal")] if p.exists())
            return BankStats(cases=c[0], active_cases=c[1] or 0, withdrawn_cases=c[2] or 0, hashes=n,
                             change_seq=self._seq, file_bytes=size, index_entries=len(self._index),
                             index_source=self.index_source, feature_sets=self.feature_count())

    def verify(self) -> None:
        """Check that the index and the table agree exactly; raises AssertionError if not."""
        with self._lock:
            self._catch_up()
            rows = self._db.execute("SELECT hash_id, hash FROM hashes ORDER BY hash_id").fetchall()
            if len(self._index) != len(rows):
                raise AssertionError(f"index holds {len(self._index)} hashes, table {len(rows)}")
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            codes = codes_from_blobs(r[1] for r in rows)
            res = self._index.range_search(codes, 0)
            for i in range(len(rows)):
                found = res.ids[res.lims[i]:res.lims[i + 1]]
                if ids[i] not in found:
                    raise AssertionError(f"hash id {int(ids[i])} is in the table but not in the index")

    # ------------------------------------------------------------------ lifecycle
    def close(self, *, save_snapshot: bool = True) -> None:
        with self._lock:
            if self._db is None:
                return
            if save_snapshot and self._snapshot_enabled:
                try:
                    self.save_snapshot()
                    self.save_feature_snapshot()
                except OSError:
                    pass
            self._checkpoint()
            self._db.close()
            self._db = None  # type: ignore[assignment]

    def __enter__(self) -> "HashBank":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM hashes").fetchone()[0])
