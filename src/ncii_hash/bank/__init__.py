"""The durable bank of cases: :class:`HashBank`, owning its parts as objects --
:class:`~.db.Database` or :class:`~.db_postgres.PostgresDatabase` (the store, from :func:`.store.open_database`),
:class:`~.index_sync.IndexSync` (the hash index and its catch-up),
:class:`~.feature_store.FeatureStore` (local features and their index), with the snapshot
files of both in :mod:`.snapshots` -- and the functions over them: :mod:`.cases`,
:mod:`.exchange` (change feed, CSV), :mod:`.image_match` and :mod:`.video_match`.

Imports ``index``, ``image``, ``video`` and ``features``; never ``service``, ``tx`` or ``cli``."""

from ..errors import BankError
from .bank import HashBank
from .image_match import ImageMatchReport
from .partner import FeedKeys
from .records import BankMatch, BankStats, CaseInfo, ChangeSet, FeatureBankMatch, ImageBankMatch, VideoBankMatch
from .sync import SyncReport, send_feedback

__all__ = [
    "BankError", "BankMatch", "BankStats", "CaseInfo", "ChangeSet", "FeatureBankMatch", "FeedKeys", "HashBank",
    "ImageBankMatch", "ImageMatchReport", "SyncReport", "VideoBankMatch", "send_feedback",
]
