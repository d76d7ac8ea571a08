"""PDQ signal types for pytx and HMA that hash with ``ncii_hash`` and index with
:class:`~.index.NciiPdqIndex`.

* :class:`NciiPdqSignal` is named ``pdq``, like pytx's own ``PdqSignal`` (which it subclasses,
  so HMA and pytx treat it as PDQ everywhere): put it in HMA's
  ``DefaultOMMStore(signal_types=[...])`` instead of ``PdqSignal`` and the stored ``pdq``
  signals are indexed by our exact index (docs/hma.md).
* :class:`NciiPdqNamedSignal` is the same signal type named ``ncii_pdq``: the pytx CLI always
  has its own ``pdq`` and refuses a second signal type of the same name, so the extension's
  manifest offers this one.

Both are thin: hashing, comparison and the quality rule live in :class:`NciiPdqHasher`.
Hashing follows pytx: a hash of quality below 50 is returned as ``""`` ("no usable hash").
One difference: images are hashed upright (EXIF orientation applied, as everywhere in
ncii_hash), where pytx hashes the stored pixels; the two agree on every image without an EXIF
rotation.
"""

from __future__ import annotations

import pathlib
from typing import Type, Union

from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.signal_base import SignalComparisonResult

from ..hashes import PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY, hamming
from ..image import pdq_hash
from .index import NciiPdqIndex

ImageInput = Union[bytes, str, pathlib.Path]


class NciiPdqHasher:
    """PDQ of image files and bytes by ncii_hash, with pytx's quality rule."""

    def __init__(self, min_quality: int = PDQ_MIN_QUALITY) -> None:
        self.min_quality = min_quality

    def hash(self, image: ImageInput) -> str:
        """The PDQ hex of an image, or ``""`` when its quality is below ``min_quality``."""
        result = pdq_hash(image)
        return "" if result.quality < self.min_quality else result.hex

    def dihedral(self, image: ImageInput) -> list[str]:
        """The 8 dihedral PDQ hashes (rotations and flips) of an image, for
        :meth:`NciiPdqIndex.query_dihedral`; ``[]`` below ``min_quality``."""
        result = pdq_hash(image, dihedral=True)
        if result.quality < self.min_quality or result.dihedral is None:
            return []
        return [row.tobytes().hex() for row in result.dihedral]

    @staticmethod
    def compare(hash1: str, hash2: str, threshold: int = PDQ_MATCH_THRESHOLD) -> SignalComparisonResult:
        distance = int(hamming(hash1, hash2))  # type: ignore[arg-type]
        return SignalComparisonResult.from_simple_dist(distance, threshold)


HASHER = NciiPdqHasher()


class NciiPdqSignal(PdqSignal):
    """pytx's PDQ signal type (name ``pdq``) hashed by ncii_hash and indexed exactly by
    :class:`~ncii_hash.tx.NciiPdqIndex`; for HMA's ``OMM_CONFIG``."""

    @classmethod
    def get_name(cls) -> str:
        return "pdq"

    @classmethod
    def get_index_cls(cls) -> Type[NciiPdqIndex]:  # type: ignore[override]
        return NciiPdqIndex

    @classmethod
    def hash_from_file(cls, file: pathlib.Path) -> str:
        return HASHER.hash(pathlib.Path(file))

    @classmethod
    def hash_from_bytes(cls, bytes_: bytes) -> str:
        return HASHER.hash(bytes(bytes_))

    @classmethod
    def dihedral_hashes_from_file(cls, file: pathlib.Path) -> list[str]:
        return HASHER.dihedral(pathlib.Path(file))

    @classmethod
    def compare_hash(cls, hash1: str, hash2: str,
                     pdq_dist_threshold: int = PDQ_MATCH_THRESHOLD) -> SignalComparisonResult:
        return HASHER.compare(hash1, hash2, pdq_dist_threshold)


class NciiPdqNamedSignal(PdqSignal):
    """:class:`NciiPdqSignal` under the name ``ncii_pdq``, for the pytx CLI (which keeps its
    own ``pdq``): the extension manifest's signal type."""

    @classmethod
    def get_name(cls) -> str:
        return "ncii_pdq"

    @classmethod
    def get_index_cls(cls) -> Type[NciiPdqIndex]:  # type: ignore[override]
        return NciiPdqIndex

    @classmethod
    def hash_from_file(cls, file: pathlib.Path) -> str:
        return HASHER.hash(pathlib.Path(file))

    @classmethod
    def hash_from_bytes(cls, bytes_: bytes) -> str:
        return HASHER.hash(bytes(bytes_))

    @classmethod
    def dihedral_hashes_from_file(cls, file: pathlib.Path) -> list[str]:
        return HASHER.dihedral(pathlib.Path(file))

    @classmethod
    def compare_hash(cls, hash1: str, hash2: str,
                     pdq_dist_threshold: int = PDQ_MATCH_THRESHOLD) -> SignalComparisonResult:
        return HASHER.compare(hash1, hash2, pdq_dist_threshold)


#: Our signal types: the fetched PDQ hashes of :class:`~.stopncii.NciiStopNCIIExchange` go to these.
NCII_PDQ_SIGNAL_TYPES = (NciiPdqSignal, NciiPdqNamedSignal)
