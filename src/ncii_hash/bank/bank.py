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

import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from ..features.orb import FeatureSet
from ..hashes import PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY
from ..image.io import ImageSource
from ..index import DEFAULT_BACKEND, RangeResult
from ..submission import ImageWindow, Submission, parse_submission, read_submission
from . import cases, exchange, image_match, sync, video_match
from .feature_store import FeatureStore, feature_queries, feature_sets_of
from .image_match import ImageMatchReport
from .index_sync import IndexSync
from .records import (BankError, BankMatch, BankStats, CaseInfo, ChangeSet, FeatureBankMatch, ImageBankMatch,
                      PathLike, VideoBankMatch, bank_queries, new_case_id)
from .snapshots import server_snapshot_base
from .store import open_database
from .windows import WindowIndexes


class HashBank:
    """A durable bank of NCII hash cases (see module docs for the guarantees).

    Owns its parts: the :class:`~.db.Database` (the truth), the :class:`~.index_sync.IndexSync`
    (the hash index derived from it), the :class:`~.windows.WindowIndexes` (survivors' opt-in
    window hashes) and the :class:`~.feature_store.FeatureStore` (local features and their
    index); one lock serializes every call.

    ``snapshot``: keep index snapshots next to the bank file, or for a server bank in
    ``snapshot_dir`` (this host's, owner-only): an open then loads one plus the log tail.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        create: bool = True,
        backend: str = DEFAULT_BACKEND,
        allow_low_quality: bool = False,
        snapshot: bool = True,
        snapshot_dir: Optional[PathLike] = None,
    ):
        self.allow_low_quality = allow_low_quality
        self._lock = threading.RLock()
        # A file path (SQLite) or a postgresql:// URL (snapshots only in a given snapshot_dir).
        self._db = open_database(path, create=create)
        self.path: Union[Path, str] = self._db.path if self._db.path is not None else self._db.name
        try:
            base = server_snapshot_base(self._db, snapshot_dir) if snapshot and self._db.path is None else None
            snaps = snapshot and (self._db.path is not None or base is not None)
            self._hashes = IndexSync(self._db, backend=backend, snapshot_base=base, snapshots=snaps)
            self._windows = WindowIndexes(self._db, backend=backend, snapshot_base=base, snapshots=snaps)
            self._features = FeatureStore(self._db, snapshots=snapshot and self._db.path is not None)
            self._hashes.open()
            self._windows.open()
        except BaseException:
            self._db.close()
            raise

    @property
    def index_source(self) -> str:
        """Where the hash index came from at open: ``"snapshot"``, ``"rebuilt"`` or ``"empty"``."""
        return self._hashes.source

    @property
    def feature_index_source(self) -> str:
        """``"snapshot"``, ``"table"`` or ``"not loaded"`` (until the first feature match)."""
        return self._features.source

    def index_backend_stats(self) -> dict:
        """:meth:`HashIndex.backend_stats` of the index (multi-index: rows in its tables, rebuilding)."""
        return self._hashes.index.backend_stats()

    @property
    def _index(self) -> Any:
        # The live HashIndex, for the repository's own tests and tools; not public API.
        return self._hashes.index

    # ------------------------------------------------------------------ writing
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
        windows: Iterable[ImageWindow] = (),
    ) -> str:
        """Bank a new case; returns its (random, unguessable) case id.

        ``features``: local feature sets (:func:`ncii_hash.image_features`, or their bytes)
        of the case's images, matched by :meth:`match_features`. They reveal much more than
        hashes (see :mod:`ncii_hash.features`): bank them only with the survivor's consent.

        ``windows``: the survivor's opt-in window hashes of the images (``ImageWindow``, its
        ``image`` a row of ``hashes``), matched with :meth:`match` ``(window=...)``.

        ``hashes``/``qualities``: image hashes. ``videos``: each a ``VideoHash``, a
        submission's ``SubmittedVideo`` or a ``(frames, qualities, md5)`` tuple; its frames
        are banked as one item (de-duplicated) and matched with :meth:`match_video`.
        """
        allow = self.allow_low_quality if allow_low_quality is None else allow_low_quality
        new = cases.NewCase(hashes, qualities, kind=kind, videos=videos, allow_low_quality=allow)
        fsets = feature_sets_of(features)
        wins = cases.check_windows(windows, new.images)
        cases.check_case_id(case_id)
        with self._lock:
            self._hashes.catch_up()
            cid = case_id or new_case_id()
            with self._db.write() as w:
                if cases.case_exists(self._db, cid):
                    raise BankError(f"case {cid} already exists")
                now, seq = time.time(), w.next_seq()
                ids = cases.insert_case(self._db, cid, new.codes, new.qualities, new.kinds, now, seq, new.items,
                                        new.videos)
                added = self._windows.insert([(ids[w.image], w.name, w.pdq, w.quality, seq) for w in wins])
                fids = self._features.insert(cid, fsets, now)
            self._hashes.applied(w, codes=new.codes, ids=ids)
            self._windows.applied(w, added=added)
            self._features.applied(w, added=fids, sets=fsets)
            return cid

    def add_submission(self, submission: Union[PathLike, Mapping, Submission], **kwargs: Any) -> str:
        """Bank a survivor's submission (a path to the JSON file, its decoded dict, or a Submission)."""
        if isinstance(submission, Submission):
            sub = submission
        elif isinstance(submission, Mapping):
            sub = parse_submission(dict(submission))
        else:
            sub = read_submission(submission)
        return self.add_case(sub.hashes, sub.qualities, kind=list(sub.kinds), videos=sub.videos,
                             features=sub.features, windows=sub.windows, **kwargs)

    def withdraw(self, case_id: str) -> int:
        """Withdraw a case: its hashes are deleted and never match again. Returns how many.

        Raises KeyError for an unknown case; withdrawing twice is a no-op returning 0.
        """
        with self._lock:
            self._hashes.catch_up()
            with self._db.write() as w:
                if cases.case_status(self._db, case_id) == "withdrawn":
                    return 0
                ids = cases.withdraw_case(self._db, case_id, time.time(), w.next_seq())
                fids = self._features.delete_case(case_id)
            self._features.applied(w, removed=fids)
            self._hashes.applied(w, removed=ids)
            self._windows.applied(w, removed=ids)
            # No copy of the withdrawn hashes may stay on disk: old WAL frames, snapshots.
            self._db.checkpoint()
            self._hashes.snapshots.drop_all()
            self._windows.drop_snapshots()
            self._features.snapshots.drop_all()
            return len(ids)

    def import_(self, path: PathLike, *, allow_low_quality: Optional[bool] = None) -> list:
        """Import a CSV of PDQ hashes in one transaction; returns the case ids created.

        Columns: ``pdq`` (64 hex), then optional ``quality`` (0..100, default 100),
        ``case_id``, ``kind`` and ``item``; a header row is optional. Rows without a case id
        form one new case. Any bad row raises BankError with its line number, and nothing is
        imported.
        """
        allow = self.allow_low_quality if allow_low_quality is None else allow_low_quality
        parsed = exchange.ParsedImport(path, allow_low_quality=allow)
        with self._lock:
            self._hashes.catch_up()
            with self._db.write() as w:
                codes, ids = parsed.write(self._db, w)
            self._hashes.applied(w, codes=codes, ids=ids)
            self._windows.applied(w)  # CSV rows are whole pictures: the other indexes stay current
            self._features.applied(w)
        return parsed.order

    def export(self, path: PathLike, format: str = "te-csv") -> int:
        """Write all active hashes as CSV (``pdq,quality,case_id,kind,item``), owner-only. Returns rows."""
        with self._lock:
            return exchange.export_csv(self._db, path, format)

    def changes(self, since: Optional[str] = None) -> ChangeSet:
        """What changed after token ``since`` (None = from the start): cases added (with
        their current hashes) and case ids withdrawn; ``next_token`` resumes after this call.
        A case added and withdrawn in the same window appears only as withdrawn."""
        start = exchange.change_token(since)
        with self._lock:
            return exchange.changes(self._db, start)

    def sync(self, base_url: Optional[str], keys: Any, *, signal_types: Sequence[str] = sync.STOCK_SIGNAL_TYPES,
             page_size: int = sync.DEFAULT_PAGE_SIZE, max_pages: Optional[int] = None, restart: bool = False,
             timeout: float = 60.0) -> sync.SyncReport:
        """Pull a StopNCII-compatible feed (``base_url``: the hub's address + ``/v1``; None = the
        key line's third field) into this bank, from the checkpoint the last sync stored. Each
        hub case becomes a case whose id is the case number; withdrawn cases are withdrawn at
        once and never re-added. ``keys``: :class:`~.partner.FeedKeys` or the key line
        ``fetch_key,subscription_key[,base_url]``. Details: :mod:`ncii_hash.bank.sync`."""
        client = sync.partner_client(base_url, keys, timeout=timeout)
        run = sync.FeedSync(self._lock, self._db, self._hashes, self._features, client, signal_types=signal_types,
                            page_size=page_size, windows=self._windows)
        return run.run(max_pages=max_pages, restart=restart)

    # ------------------------------------------------------------------ reading
    def case(self, case_id: str) -> CaseInfo:
        with self._lock:
            return cases.case_info(self._db, case_id)

    def case_hashes(self, case_id: str) -> np.ndarray:
        with self._lock:
            return cases.case_hashes(self._db, case_id)

    def case_features(self, case_id: str) -> list[FeatureSet]:
        with self._lock:
            return self._features.case_features(case_id)

    def feature_count(self) -> int:
        with self._lock:
            return self._features.count()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM hashes").fetchone()[0])

    # ------------------------------------------------------------------ matching
    def match(
        self,
        queries: Any,
        radius: int = PDQ_MATCH_THRESHOLD,
        *,
        dihedral: bool = True,
        threads: int = 0,
        window: Optional[str] = None,
    ) -> list[BankMatch]:
        """Banked hashes within ``radius`` (inclusive) of each query, as BankMatch records,
        sorted by query, distance, hash id. ``queries``: ``(Q, 32)`` hashes, or ``(Q, 8, 32)``
        sets from ``pdq_hash(..., dihedral=True).dihedral`` (all 8 searched with ``dihedral``).
        ``window="centre70"``: windows cut from uploads, searched among that banked window only."""
        q = bank_queries(queries, dihedral)
        with self._lock:
            if window is None:
                res = self._hashes.range_search(q, radius, dihedral=q.ndim == 3, threads=threads)
            else:
                res = self._windows.range_search(window, q, radius, dihedral=q.ndim == 3, threads=threads)
            return cases.bank_matches(self._db, res)

    def search_index(self, queries: np.ndarray, radius: int = PDQ_MATCH_THRESHOLD, *, dihedral: bool = False,
                     threads: int = 0, window: Optional[str] = None) -> RangeResult:
        """The index's hash ids as last caught up (own writes, :meth:`refresh`; no store read), for
        callers that follow the log and resolve ids themselves (the matcher); see :meth:`match`."""
        with self._lock:
            index = self._hashes.index if window is None else self._windows.sync(window).index
            return index.range_search(queries, radius, dihedral=dihedral, threads=threads)

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
        windows: bool = True,
    ) -> list[ImageMatchReport]:
        """Match a batch of images (paths, bytes, PIL images or arrays): one
        :class:`ImageMatchReport` per image, in order. One bad image never stops the batch
        (its report carries the error).

        PDQ first: each image's hash in all 8 orientations (``dihedral``) and, when it has a
        uniform border, the content inside it (``trim_borders``), within ``radius``
        (inclusive). Then, for the images PDQ missed, local features (``features``; only
        when the bank holds feature sets and OpenCV is installed). When the bank holds shared
        window hashes (``windows``), the upload's windows are searched among them (small
        rotations, banners). ``progress(done, total)`` follows the hashing.
        """
        return image_match.match_images(self, images, radius=radius, dihedral=dihedral, trim_borders=trim_borders,
                                        features=features, threads=threads, progress=progress, windows=windows)

    def match_image(self, image: ImageSource, *, radius: Optional[int] = None, features: bool = True,
                    threads: int = 0) -> list[ImageBankMatch]:
        """The platform's one call for an uploaded image (path, bytes, PIL image or array):
        PDQ first -- all 8 orientations, and the content inside a uniform border -- then,
        only if that finds nothing and the bank holds feature sets, local features (crops,
        small rotations, banners, screenshots). One entry per case, best first. Raises
        ImageError when the image cannot be decoded."""
        return image_match.match_image(self, image, radius=radius, features=features, threads=threads)

    def match_features(self, queries: Union[FeatureSet, Sequence[FeatureSet]], *,
                       threads: int = 0) -> list[FeatureBankMatch]:
        """Banked images each query shows (crop, rotation, banner, screenshot ...), by local
        features: candidates from the feature index, each verified geometrically. Sorted by
        query, then inliers (most first)."""
        queries = feature_queries(queries)
        with self._lock:
            return self._features.search(queries, threads=threads)

    def match_video(
        self,
        video: Any,
        *,
        distance: int = PDQ_MATCH_THRESHOLD,
        quality: int = PDQ_MIN_QUALITY,
        query_pct: float = 80.0,
        compared_pct: float = 0.0,
        threads: int = 0,
    ) -> list[VideoBankMatch]:
        """Banked videos matching ``video`` (a ``VideoHash`` or ``(frames, qualities, md5)``)
        under the vPDQ rule (see :func:`ncii_hash.match_video`), best first.

        The query's unique good frames are searched exactly in the index; every banked video
        with at least one frame hit is then compared in full with the vPDQ rule.
        """
        query = video_match.VideoQuery.of(video, quality)
        if query.frames.shape[0] == 0:
            return []
        with self._lock:
            banked = video_match.banked_candidates(self._db, self._hashes, query, distance, threads)
        return video_match.compare(query, banked, distance=distance, quality=quality, query_pct=query_pct,
                                   compared_pct=compared_pct)

    # ------------------------------------------------------------------ upkeep
    def stats(self) -> BankStats:
        with self._lock:
            self._hashes.catch_up()
            self._windows.catch_up(self._hashes.seq)
            c = self._db.execute("SELECT COUNT(*), SUM(CASE WHEN status='active' THEN 1 ELSE 0 END), "
                                 "SUM(CASE WHEN status='withdrawn' THEN 1 ELSE 0 END) FROM cases").fetchone()
            n = self._db.execute("SELECT COUNT(*) FROM hashes").fetchone()[0]
            return BankStats(cases=c[0], active_cases=int(c[1] or 0), withdrawn_cases=int(c[2] or 0), hashes=n,
                             change_seq=self._hashes.seq, file_bytes=self._db.file_bytes(),
                             index_entries=len(self._hashes), index_source=self._hashes.source,
                             feature_sets=self._features.count(), window_hashes=len(self._windows))

    @property
    def index_size(self) -> int:
        """Hashes the in-memory index holds (no database query)."""
        return len(self._hashes)

    @property
    def window_index_size(self) -> int:
        """Shared window hashes the in-memory window indexes hold (no database query)."""
        return len(self._windows)

    def refresh(self) -> int:
        """Apply what other processes committed since (new hashes in, withdrawn ones out);
        the change sequence the index now reflects. Cheap when nothing changed."""
        with self._lock:
            self._hashes.catch_up()
            self._windows.catch_up(self._hashes.seq)
            return self._hashes.seq

    def verify(self) -> None:
        """Check that the index and the table agree exactly; raises BankError if not."""
        with self._lock:
            if problem := self._hashes.disagreement() or self._windows.disagreement():
                raise BankError(f"{self.path}: {problem}")

    def save_snapshot(self) -> Optional[Path]:
        """Save the hash index next to the bank so the next open skips the rebuild."""
        with self._lock:
            return self._hashes.save_snapshot()

    def save_feature_snapshot(self) -> Optional[Path]:
        """Save the feature index next to the bank (only if it was loaded)."""
        with self._lock:
            return self._features.save_snapshot()

    def close(self, *, save_snapshot: bool = True) -> None:
        with self._lock:
            if self._db.closed:
                return
            if save_snapshot:
                try:
                    self._hashes.save_snapshot()
                    self._windows.save_snapshots()
                    self._features.save_snapshot()
                except OSError:
                    pass
            self._db.checkpoint()
            self._db.close()

    def __enter__(self) -> "HashBank":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
