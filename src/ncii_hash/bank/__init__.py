"""The durable bank of cases: :class:`HashBank` over SQLite, owning its index, its feature
store and its exchange formats. Imports ``index``, ``image``, ``video`` and ``features``;
never ``service``, ``tx`` or ``cli``."""

from ..errors import BankError
from .bank import HashBank
from .image_match import ImageMatchReport
from .schema import BankMatch, BankStats, CaseInfo, ChangeSet, FeatureBankMatch, ImageBankMatch, VideoBankMatch

__all__ = [
    "BankError", "BankMatch", "BankStats", "CaseInfo", "ChangeSet", "FeatureBankMatch", "HashBank",
    "ImageBankMatch", "ImageMatchReport", "VideoBankMatch",
]
