"""The one two-stage image match: PDQ first (plain hash, its 8 dihedral variants, and the
content inside a uniform border), then -- only for the images PDQ missed, and only when the
bank holds feature sets and OpenCV is installed -- local features (crops, small rotations,
banners, screenshots). Used by :meth:`HashBank.match_images`, :meth:`HashBank.match_image`
and the ``ncii-hash match`` command, which can add the opt-in platform-side query variants of
:mod:`ncii_hash.image.variants` (``variants=``: counter-rotations, the photo inside phone bars and
caption banners; ``--query-variants``) to the PDQ stage.

The functions take the bank through its public matching calls only (``match``,
``match_features``, ``feature_count``), so this module never reaches into the bank's parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .._util.optional import try_import
from ..errors import ImageError
from ..hashes import PDQ_MATCH_THRESHOLD
from ..image.io import ImageSource, load_pixels
from ..image.pdq import pdq_hash_many
from ..image.variants import WINDOW_SETS, WINDOW_VARIANTS, VariantPlan, window_name
from ..submission import SHARED_WINDOWS
from .records import BankMatch, FeatureBankMatch, ImageBankMatch


@dataclass(frozen=True)
class ImageMatchReport:
    """What the bank holds for one image of a :meth:`HashBank.match_images` call."""

    quality: int  #: PDQ quality of the image; -1 when it could not be hashed
    error: Optional[ImageError]  #: why it could not be hashed (then ``pdq`` and ``features`` are empty)
    #: One per banked hash within the radius, best over the plain hash, its dihedral variants and
    #: the content inside a uniform border; sorted by (distance, hash_id). ``query`` is the index
    #: of the image in the call, ``variant`` the dihedral variant that matched.
    pdq: tuple[BankMatch, ...] = ()
    #: One per banked feature set that verified (its best verification), most inliers first, then
    #: feature_id; ``query`` is the index of the image in the call. Empty when PDQ matched.
    features: tuple[FeatureBankMatch, ...] = ()
    features_checked: bool = False  #: the local-feature stage ran for this image

    @property
    def matched(self) -> bool:
        return bool(self.pdq or self.features)

    def cases(self) -> list[ImageBankMatch]:
        """One entry per case, best first: PDQ cases by distance, else feature cases by inliers."""
        if self.pdq:
            best: dict[str, int] = {}
            for m in self.pdq:
                best[m.case_id] = min(best.get(m.case_id, m.distance), m.distance)
            return [ImageBankMatch(c, "pdq", distance=d) for c, d in sorted(best.items(), key=lambda t: (t[1], t[0]))]
        found: dict[str, int] = {}
        for f in self.features:
            found[f.case_id] = max(found.get(f.case_id, 0), f.inliers)
        return [ImageBankMatch(c, "local features", inliers=n)
                for c, n in sorted(found.items(), key=lambda t: (-t[1], t[0]))]


def match_images(
    bank: Any,
    images: Sequence[ImageSource],
    *,
    radius: int = PDQ_MATCH_THRESHOLD,
    dihedral: bool = True,
    trim_borders: bool = True,
    features: bool = True,
    threads: int = 0,
    progress: Optional[Callable[[int, int], None]] = None,
    variants: Optional[VariantPlan] = None,
    windows: bool = True,
) -> list[ImageMatchReport]:
    """One report per image, in order (see :meth:`HashBank.match_images`). ``windows``: when
    the bank holds survivors' shared window hashes, also search the upload's windows
    (:data:`~ncii_hash.image.variants.WINDOW_VARIANTS`) among them."""
    if isinstance(images, (str, bytes, bytearray, memoryview, np.ndarray)) or not isinstance(images, Sequence):
        raise TypeError(f"images must be a list of images (paths, bytes, PIL images or arrays); "
                        f"got {type(images).__name__}")
    if variants is not None and not isinstance(variants, VariantPlan):
        raise TypeError(f"variants must be a VariantPlan or None; got {type(variants).__name__}")
    if variants is not None and _window_names(variants) - set(SHARED_WINDOWS):
        raise ValueError(f"variants: a plan may cut only the windows survivors share ({', '.join(SHARED_WINDOWS)}); "
                         f"got {sorted(_window_names(variants))}")
    plans = [variants] if variants is not None else []
    if windows:
        bank.refresh()  # the window indexes as of now (bank.match catches the hash index up too)
        if bank.window_index_size:
            plans.append(WINDOW_VARIANTS)
    # one decode per image: its hash, its border-trimmed content and every plan's variants
    batch = pdq_hash_many(images, dihedral=True, threads=threads, progress=progress, trim_borders=trim_borders,
                          variants=plans)
    ok = [i for i in range(len(images)) if i not in batch.errors]
    # Each image is searched as it is and, when it has a uniform border (letterbox, pad,
    # screenshot frame), also as the content inside it; matches are merged per image.
    owners = list(ok)
    sets = [batch.dihedral[ok]]
    if batch.has_trimmed is not None:
        extra = [i for i in ok if batch.has_trimmed[i]]
        owners += extra
        sets.append(batch.trimmed[extra])
    found = bank.match(np.concatenate(sets), radius, dihedral=dihedral, threads=threads) if ok else []
    per_image: dict[int, dict[int, BankMatch]] = {}
    for m in found:  # sorted by query, then distance: the first of equals is the plain hash
        best = per_image.setdefault(owners[m.query], {})
        if m.hash_id not in best or m.distance < best[m.hash_id].distance:
            best[m.hash_id] = m
    if plans and ok:
        _variant_stage(bank, [batch.variants[i] for i in ok], ok, per_image, radius=radius, threads=threads)
    missed = [i for i in ok if i not in per_image]
    feature_hits, checked = _feature_stage(bank, images, missed, features=features, threads=threads)
    reports = []
    for i in range(len(images)):
        if i in batch.errors:
            reports.append(ImageMatchReport(quality=-1, error=batch.errors[i]))
            continue
        pdq = sorted((BankMatch(query=i, case_id=m.case_id, hash_id=m.hash_id, distance=m.distance, variant=m.variant)
                      for m in per_image.get(i, {}).values()), key=lambda m: (m.distance, m.hash_id))
        reports.append(ImageMatchReport(quality=int(batch.qualities[i]), error=None, pdq=tuple(pdq),
                                        features=tuple(feature_hits.get(i, ())), features_checked=i in checked))
    return reports


def _variant_stage(bank: Any, variants: Sequence[tuple], ok: list[int], per_image: dict[int, dict[int, BankMatch]],
                   *, radius: int, threads: int) -> None:
    """Platform-side query variants (counter-rotations, the photo inside bars and banners, the
    shared windows cut from them) of every hashed image (``variants[k]``: image ``ok[k]``'s, one
    QueryVariants per plan), searched unflipped, like for like: a whole frame among the whole
    pictures, a window among the banked windows of its name (a match names the window's image).
    A banked hash keeps its best distance over all. The plain hash was searched already, so
    only the extra rows go to the bank."""
    rows: dict[Optional[str], list] = {}  # window name (None: whole frames) -> [(image, hash)]
    for i, per_plan in zip(ok, variants):
        for qv in per_plan:
            for window, hashes in qv.extra_rows().items():
                rows.setdefault(window, []).extend((i, h) for h in hashes)
    for window, found in rows.items():
        owners = [i for i, _ in found]
        for m in bank.match(np.stack([h for _, h in found]), radius, dihedral=False, threads=threads, window=window):
            best = per_image.setdefault(owners[m.query], {})
            if m.hash_id not in best or m.distance < best[m.hash_id].distance:
                best[m.hash_id] = m


def _window_names(plan: VariantPlan) -> set[str]:
    windows = WINDOW_SETS[plan.windows] if isinstance(plan.windows, str) else plan.windows
    return {window_name(f, anchor) for f, anchor in windows}


def _feature_stage(bank: Any, images: Sequence[ImageSource], missed: list[int], *, features: bool,
                   threads: int) -> tuple[dict[int, list[FeatureBankMatch]], set[int]]:
    """Second stage for the images PDQ missed: ({image: feature matches}, images checked)."""
    if not features or not missed or bank.feature_count() == 0 or try_import("cv2") is None:
        return {}, set()
    from ..features.orb import query_features

    queries, owners = [], []
    for i in missed:
        try:
            sets = query_features(load_pixels(images[i]))
        except (ImageError, OSError):  # hashed a moment ago; unreadable now: nothing to add
            continue
        queries += sets
        owners += [i] * len(sets)
    best: dict[tuple[int, int], FeatureBankMatch] = {}  # (image, feature set) -> most inliers
    for m in bank.match_features(queries, threads=threads) if queries else ():
        key = (owners[m.query], m.feature_id)
        if key not in best or m.inliers > best[key].inliers:
            best[key] = m
    out: dict[int, list[FeatureBankMatch]] = {}
    for (i, _), m in sorted(best.items(), key=lambda t: (t[0][0], -t[1].inliers, t[0][1])):
        out.setdefault(i, []).append(FeatureBankMatch(
            query=i, case_id=m.case_id, feature_id=m.feature_id, inliers=m.inliers, spread=m.spread,
            scale=m.scale, rotation_degrees=m.rotation_degrees))
    return out, set(missed)


def match_image(bank: Any, image: ImageSource, *, radius: Optional[int] = None, features: bool = True,
                threads: int = 0) -> list[ImageBankMatch]:
    """The cases one image matches (see :meth:`HashBank.match_image`); raises ImageError."""
    report = match_images(bank, [image], radius=PDQ_MATCH_THRESHOLD if radius is None else radius,
                          features=features, threads=threads)[0]
    if report.error is not None:
        raise report.error
    return report.cases()
