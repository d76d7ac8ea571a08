"""PDQ image hashing over the C++ core.

``pdq_hash`` hashes one image; ``pdq_hash_many`` hashes a batch on all cores, reporting a
per-item error instead of stopping. Both return hashes in the reference byte order (see
:mod:`ncii_hash.hashes`). The default is the full-resolution variant used by the Java port,
the ``pdqhash`` binding and Meta's hasher-matcher-actioner; ``resize="reference-512"``
reproduces the reference CLI's 512x512 nearest-neighbour squash.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Literal, Optional, Sequence

import numpy as np

from .._core import pdq_hash as core_pdq_hash
from .._util.threads import default_threads
from ..hashes import PDQ_HASH_BYTES, PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY, hamming_matrix
from .borders import trim_borders as _trim
from .io import ImageError, ImageSource, describe_source, load_pixels, reference_512_squash
from .variants import VariantPlan, query_variants, shared_window_hash

#: Names of the 8 dihedral variants, in the order of ``PDQResult.dihedral`` rows.
DIHEDRAL_NAMES = ("original", "rot90", "rot180", "rot270", "flipx", "flipy", "flipplus1", "flipminus1")

ResizeMode = Optional[Literal["reference-512"]]
Decode = Literal["exact", "fast"]

#: With ``decode="fast"``, JPEGs decode at 1/2, 1/4 or 1/8 scale while the shorter side
#: stays at least this long. The PDQ filter only needs a few pixels per 64x64 cell.
FAST_DECODE_MIN_SIDE = 512


@dataclass(frozen=True)
class PDQResult:
    """The PDQ hash of one image."""

    hash: np.ndarray  #: uint8 (32,)
    quality: int  #: 0..100; below PDQ_MIN_QUALITY the hash is unreliable
    dihedral: Optional[np.ndarray] = None  #: uint8 (8, 32) when requested (see DIHEDRAL_NAMES)
    #: with ``trim_borders=True`` and a uniform border (letterbox, pad, screenshot frame)
    #: found: the hash of the content inside it; matching searches both.
    trimmed: Optional["PDQResult"] = None
    #: ``(top, bottom, left, right)`` of that content (exclusive ends), when ``trimmed`` is set
    box: Optional[tuple[int, int, int, int]] = None
    #: with ``variants=(plan, ...)``: the query variants of each plan, from the same pixels
    variants: tuple = ()

    @property
    def hashes(self) -> np.ndarray:
        """uint8 (K, 32), K = 1 or 2: this hash, then the content box's when there is one."""
        rows = [self.hash] + ([self.trimmed.hash] if self.trimmed is not None else [])
        return np.ascontiguousarray(np.stack(rows))

    @property
    def dihedral_sets(self) -> Optional[np.ndarray]:
        """uint8 (K, 8, 32), the dihedral sets of :attr:`hashes` (hashed with ``dihedral=True``)."""
        parts = [self] + ([self.trimmed] if self.trimmed is not None else [])
        if any(p.dihedral is None for p in parts):
            return None
        return np.ascontiguousarray(np.stack([p.dihedral for p in parts]))

    @property
    def hex(self) -> str:
        return self.hash.tobytes().hex()

    @property
    def low_quality(self) -> bool:
        return self.quality < PDQ_MIN_QUALITY

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        extra = ", dihedral=8x32" if self.dihedral is not None else ""
        return f"PDQResult(hex={self.hex!r}, quality={self.quality}{extra})"


@dataclass(frozen=True)
class PDQBatch:
    """Hashes of a batch. Row i belongs to input i; failed rows are zero with quality -1."""

    hashes: np.ndarray  #: uint8 (N, 32)
    qualities: np.ndarray  #: int32 (N,); -1 where hashing failed
    errors: dict = field(default_factory=dict)  #: index -> ImageError for the failed inputs
    dihedral: Optional[np.ndarray] = None  #: uint8 (N, 8, 32) when requested
    #: with ``trim_borders=True``: hashes of the content inside a uniform border, shaped like
    #: ``dihedral`` (or ``hashes``), valid where ``has_trimmed`` is true
    trimmed: Optional[np.ndarray] = None
    has_trimmed: Optional[np.ndarray] = None
    #: with ``variants=(plan, ...)``: per input, the query variants of each plan (() where it failed)
    variants: Optional[list] = None

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the inputs that hashed."""
        return self.qualities >= 0

    def __len__(self) -> int:
        return int(self.hashes.shape[0])


def _check_resize(resize: object) -> None:
    if resize not in (None, "reference-512"):
        raise ValueError(f"resize must be None (full resolution) or 'reference-512'; got {resize!r}")


def hash_pixels(pixels: np.ndarray, *, dihedral: bool = False, resize: ResizeMode = None) -> PDQResult:
    """PDQ of already-decoded pixels (uint8 ``(H, W)`` grey or ``(H, W, 3|4)`` RGB[A])."""
    _check_resize(resize)
    if resize == "reference-512":
        pixels = reference_512_squash(pixels)
    h, quality, dih = core_pdq_hash(pixels, dihedral)
    return PDQResult(hash=h, quality=int(quality), dihedral=dih)


def pdq_window_hash(image: ImageSource, window: str = "centre70", *, exif_transpose: bool = True,
                    max_pixels: Optional[int] = None) -> PDQResult:
    """PDQ hash of one shared window of an image (``centre70``: the centre keeping 70% of each
    side), cut from exactly the pixels :func:`pdq_hash` hashes. A survivor shares it only by
    choice (submission version 3); platforms use it to catch small rotations and banners."""
    pixels = load_pixels(image, exif_transpose=exif_transpose, max_pixels=max_pixels, allow_rgbx=True)
    h, q = shared_window_hash(pixels, window)
    return PDQResult(hash=h, quality=q)


def pdq_hash(
    image: ImageSource,
    *,
    dihedral: bool = False,
    exif_transpose: bool = True,
    resize: ResizeMode = None,
    decode: Decode = "exact",
    max_pixels: Optional[int] = None,
    trim_borders: bool = False,
    variants: Sequence[VariantPlan] = (),
) -> PDQResult:
    """PDQ hash of one image.

    ``image`` is a path, encoded bytes, a PIL image, or a numpy uint8 array (``(H, W, 3)``
    RGB, ``(H, W, 4)`` RGBA or ``(H, W)`` grey). Raises :class:`ImageError` (a ValueError)
    naming the input when it cannot be decoded, and ``TypeError`` for unsupported objects.

    ``trim_borders=True`` also hashes the content inside a uniform border (letterbox, pad,
    screenshot frame), when one is found, into ``result.trimmed``; matching both hashes
    catches letterboxed and padded copies that plain PDQ misses (docs/accuracy.md).

    ``variants``: platform-side query variant plans (:mod:`.variants`) computed from the same
    decoded pixels, into ``result.variants`` (one decode for the hash and every variant).

    ``decode="fast"`` lets large JPEGs decode at reduced scale (several times faster; the
    hash then differs from the exact one by a few bits -- see the benchmark).
    """
    _check_resize(resize)
    if decode not in ("exact", "fast"):
        raise ValueError(f"decode must be 'exact' or 'fast'; got {decode!r}")
    pixels = load_pixels(
        image,
        exif_transpose=exif_transpose,
        max_pixels=max_pixels,
        draft_min_side=FAST_DECODE_MIN_SIDE if decode == "fast" else None,
        allow_rgbx=True,
    )
    try:
        res = hash_pixels(pixels, dihedral=dihedral, resize=resize)
        if trim_borders:
            content, box = _trim(pixels[:, :, :3] if pixels.ndim == 3 else pixels)
            if box is not None:
                res = replace(res, trimmed=hash_pixels(content, dihedral=dihedral, resize=resize), box=box)
        if variants:
            res = replace(res, variants=tuple(query_variants(pixels, plan) for plan in variants))
        return res
    except (ValueError, TypeError) as exc:
        raise ImageError(describe_source(image), str(exc)) from None


def pdq_hash_many(
    images: Iterable[ImageSource],
    *,
    dihedral: bool = False,
    exif_transpose: bool = True,
    resize: ResizeMode = None,
    decode: Decode = "exact",
    max_pixels: Optional[int] = None,
    threads: int = 0,
    progress: Optional[Callable[[int, int], None]] = None,
    trim_borders: bool = False,
    variants: Sequence[VariantPlan] = (),
) -> PDQBatch:
    """Hash many images on ``threads`` threads (0 = all cores).

    Decoding (Pillow) and hashing (the C++ core) both release the GIL, so threads scale.
    One bad input never stops the batch: its row is zero, its quality -1 and its
    :class:`ImageError` is in ``errors[index]``. ``progress(done, total)`` is called from
    the calling thread after each item.
    """
    items: Sequence[ImageSource] = images if isinstance(images, (list, tuple)) else list(images)
    n = len(items)
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 = all cores); got {threads}")
    workers = default_threads() if threads == 0 else threads
    hashes = np.zeros((n, PDQ_HASH_BYTES), dtype=np.uint8)
    qualities = np.full(n, -1, dtype=np.int32)
    dih = np.zeros((n, 8, PDQ_HASH_BYTES), dtype=np.uint8) if dihedral else None
    trimmed = (np.zeros((n, 8, PDQ_HASH_BYTES) if dihedral else (n, PDQ_HASH_BYTES), dtype=np.uint8)
               if trim_borders else None)
    has_trimmed = np.zeros(n, dtype=bool) if trim_borders else None
    per_variants: Optional[list] = [()] * n if variants else None
    errors: dict = {}

    def one(i: int) -> tuple[int, Optional[PDQResult], Optional[Exception]]:
        try:
            return i, pdq_hash(
                items[i], dihedral=dihedral, exif_transpose=exif_transpose, resize=resize,
                decode=decode, max_pixels=max_pixels, trim_borders=trim_borders, variants=variants,
            ), None
        except Exception as exc:  # one item must never stop the batch
            err = exc if isinstance(exc, ImageError) else ImageError(describe_source(items[i]), f"{type(exc).__name__}: {exc}")
            return i, None, err

    def record(i: int, res: Optional[PDQResult], err: Optional[Exception], done: int) -> None:
        if res is not None:
            hashes[i] = res.hash
            qualities[i] = res.quality
            if dih is not None and res.dihedral is not None:
                dih[i] = res.dihedral
            if trimmed is not None and res.trimmed is not None:
                trimmed[i] = res.trimmed.dihedral if dihedral else res.trimmed.hash
                has_trimmed[i] = True
            if per_variants is not None:
                per_variants[i] = res.variants
        else:
            errors[i] = err
        if progress is not None:
            progress(done, n)

    if workers == 1 or n <= 1:
        for done, i in enumerate(range(n), start=1):
            record(*one(i), done)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, n)) as pool:
            for done, (i, res, err) in enumerate(pool.map(one, range(n)), start=1):
                record(i, res, err, done)
    return PDQBatch(hashes=hashes, qualities=qualities, errors=errors, dihedral=dih,
                    trimmed=trimmed, has_trimmed=has_trimmed, variants=per_variants)


def border_robust_distance(query: PDQResult, banked: PDQResult, *, dihedral: bool = False) -> int:
    """Smallest distance between any hash of ``query`` (all 8 dihedral variants when
    ``dihedral``) and any hash of ``banked``, each result's plain hash and its content-box
    hash (``pdq_hash(..., trim_borders=True)``); a match is ``<= PDQ_MATCH_THRESHOLD``."""
    if dihedral:
        sets = query.dihedral_sets
        if sets is None:
            raise ValueError("dihedral=True needs a query hashed with dihedral=True")
        q = sets.reshape(-1, PDQ_HASH_BYTES)
    else:
        q = query.hashes
    return int(hamming_matrix(q, banked.hashes).min())


def border_robust_match(query: PDQResult, banked: PDQResult, *, dihedral: bool = False,
                        threshold: int = PDQ_MATCH_THRESHOLD) -> bool:
    """The border-robust matching rule: any-to-any distance within ``threshold`` (inclusive)."""
    return border_robust_distance(query, banked, dihedral=dihedral) <= threshold
