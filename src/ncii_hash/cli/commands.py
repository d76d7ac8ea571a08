"""The commands of ``ncii-hash``. Each takes the parsed arguments, builds records, hands them
to a renderer (:mod:`.output`) and returns an exit status (:mod:`.usage`).

Survivor side (never opens a network connection): ``hash``, ``show``.
Platform side: ``match``, ``bank init|add|import|withdraw|export|stats``.

Every bank is opened in a ``with`` block, so it is closed (snapshot saved, WAL checkpointed) on
every path, errors mid-command included.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from ..bank import BankError, HashBank, image_match
from ..bank.store import is_postgres_url
from ..errors import StoreUnavailableError
from ..hashes import PDQ_MIN_QUALITY
from ..image import DIHEDRAL_NAMES, ImageError, PDQBatch, pdq_hash_many, pdq_window_hash
from ..image.variants import PLATFORM_VARIANTS
from ..submission import (SHARED_WINDOWS, ImageWindow, SubmissionError, make_submission, read_submission, video_item,
                          write_submission)
from .inputs import InputWalk, MatchInputs, VideoOutcome, hash_videos, is_video, read_hash_file
from .output import match_summary, render_hash_rows, render_match_records, render_stats, render_submission
from .progress import ProgressBar
from .usage import EXIT_OK, EXIT_SOME_FAILED, UsageError, shown

FEATURES_WARNING = (
    "ncii-hash: --features: the submission will also hold local features of each image (corner positions\n"
    "  and patch descriptors). Unlike hashes, these can be turned back into a recognisable approximation\n"
    "  of the picture. They let platforms catch cropped, rotated or screenshotted copies. Share them only\n"
    "  if you accept that trade-off."
)
NO_OPENCV_NOTE = ("ncii-hash: the bank holds local features but OpenCV is not installed "
                  "(pip install 'ncii-hash[features]'); PDQ only")


# ---------------------------------------------------------------------------- hash
def cmd_hash(args: argparse.Namespace) -> int:
    if args.features and not args.output:
        raise UsageError("--features only changes the submission file: use it with -o FILE")
    if args.share_window and not args.output:
        raise UsageError("--share-window only changes the submission file: use it with -o FILE")
    if args.output:
        folder = Path(args.output).resolve().parent
        if not folder.is_dir():
            raise UsageError(f"cannot write the submission to {shown(args.output)}: folder {shown(folder)} does not exist")
    walk = InputWalk(recursive=args.recursive)
    inputs = list(walk.files(args.paths))
    if not inputs:
        raise UsageError("no image or video files found in the given paths")
    files = [f for f in inputs if not is_video(f)]
    with ProgressBar(len(files), unit="image", quiet=args.quiet) as bar:
        batch = pdq_hash_many([str(f) for f in files], dihedral=args.dihedral, threads=args.threads, progress=bar)
    videos = hash_videos([str(f) for f in inputs if is_video(f)], seconds_per_hash=args.seconds_per_hash,
                         threads=args.threads, quiet=args.quiet)
    render_hash_rows(image_rows(files, batch, dihedral=args.dihedral) + video_rows(videos), args.format, sys.stdout)
    failed = len(batch.errors) + sum(1 for v in videos if v.video_hash is None) + len(walk.unlisted)
    if args.output:
        _write_submission(args, files, batch, videos)
    if failed:
        print(f"ncii-hash: {failed} of {len(inputs)} files could not be hashed", file=sys.stderr)
        return EXIT_SOME_FAILED
    return EXIT_OK


def image_rows(files: list[Path], batch: PDQBatch, *, dihedral: bool) -> list[dict]:
    rows: list[dict] = []
    for i, f in enumerate(files):
        if i in batch.errors:
            rows.append({"file": str(f), "kind": "image", "status": "error", "reason": batch.errors[i].reason})
            continue
        q = int(batch.qualities[i])
        row: dict[str, Any] = {"file": str(f), "kind": "image", "pdq": batch.hashes[i].tobytes().hex(), "quality": q,
                               "status": "ok" if q >= PDQ_MIN_QUALITY else "low quality"}
        if dihedral and batch.dihedral is not None:
            row["dihedral"] = {n: batch.dihedral[i, j].tobytes().hex() for j, n in enumerate(DIHEDRAL_NAMES)}
        rows.append(row)
    return rows


def video_rows(videos: list[VideoOutcome]) -> list[dict]:
    rows: list[dict] = []
    for path, vh, reason in videos:
        if vh is None:
            rows.append({"file": path, "kind": "video", "status": "error", "reason": reason})
            continue
        good = int((vh.qualities >= PDQ_MIN_QUALITY).sum())
        rows.append({"file": path, "kind": "video", "md5": vh.md5, "frames": len(vh), "good_frames": good,
                     "status": "ok" if good else "low quality"})
    return rows


def _write_submission(args: argparse.Namespace, files: list[Path], batch: PDQBatch,
                      videos: list[VideoOutcome]) -> None:
    ok = batch.ok
    items = [video_item(v.video_hash.frames, v.video_hash.qualities, v.video_hash.md5)
             for v in videos if v.video_hash is not None]
    fsets = _survivor_features([f for i, f in enumerate(files) if ok[i]]) if args.features else []
    windows = _survivor_windows([f for i, f in enumerate(files) if ok[i]]) if args.share_window else []
    sub = make_submission(batch.hashes[ok], batch.qualities[ok], videos=items, features=fsets, windows=windows)
    if len(sub) == 0:
        raise UsageError("nothing could be hashed; no submission written")
    try:
        write_submission(args.output, sub)
    except OSError as exc:
        raise UsageError(f"cannot write the submission to {shown(args.output)}: {exc.strerror or exc}") from None
    what = "hashes and the local features you chose to include" if sub.features else "hashes only"
    if sub.windows:
        what += f", with {len(sub.windows)} centre hash(es)"
    print(f"ncii-hash: wrote {len(sub)} items to {args.output} ({what}: no file names or metadata)", file=sys.stderr)


def _survivor_windows(files: list[Path]) -> list:
    """The shared window of each image (in the order of the submission's images); an image whose
    centre is too flat to hash well (quality < 50) or that cannot be read again gets none."""
    out = []
    for n, f in enumerate(files):
        try:
            r = pdq_window_hash(str(f), SHARED_WINDOWS[0])
        except (ImageError, OSError):
            continue
        if r.quality >= PDQ_MIN_QUALITY:
            out.append(ImageWindow(n, SHARED_WINDOWS[0], r.hash.tobytes(), r.quality))
    return out


def _survivor_features(files: list[Path]) -> list:
    if not files:
        return []
    try:
        from ..features import image_features
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UsageError(str(exc)) from None
    print(FEATURES_WARNING, file=sys.stderr)
    out = []
    for f in files:
        fs = image_features(str(f))
        if fs.usable:
            out.append(fs)
    return out


# ---------------------------------------------------------------------------- show
def cmd_show(args: argparse.Namespace) -> int:
    render_submission(args.submission, read_submission(args.submission), sys.stdout)
    return EXIT_OK


# ---------------------------------------------------------------------------- match
def open_bank(path: str, *, create: bool = False) -> HashBank:
    if is_postgres_url(path):  # a bank in PostgreSQL: the store says when there is none
        try:
            return HashBank(path, create=create)
        except (FileNotFoundError, StoreUnavailableError) as exc:
            raise UsageError(str(exc)) from None  # names the URL without its password
    p = Path(path)
    if not create and not p.is_file():
        raise UsageError(f"{p}: no such bank (create one with 'ncii-hash bank init {p}')")
    return HashBank(p, create=create)


def cmd_match(args: argparse.Namespace) -> int:
    with open_bank(args.bank) as bank:
        found = MatchInputs.find(args.inputs, InputWalk(recursive=True))
        if not found:
            raise UsageError("no image files, videos or hash lists found in the given paths")
        records: list[dict] = []
        features_used = False
        if found.images:
            image_records, features_used = _match_images(bank, found.images, args)
            records += image_records
        records += _match_videos(bank, found.videos, args)
        for hf in found.hash_lists:
            records += _match_hash_list(bank, hf, args.radius)
    render_match_records(records, as_json=args.json, out=sys.stdout)
    print(match_summary(records, radius=args.radius, features_used=features_used), file=sys.stderr)
    failed = sum(1 for r in records if r["status"] == "error")
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _match_images(bank: HashBank, images: list[Path], args: argparse.Namespace) -> tuple[list[dict], bool]:
    """Records for the images (hashed ones in order, then the ones that could not be hashed)
    and whether the local-feature stage ran. The matching is the bank's one two-stage match."""
    with ProgressBar(len(images), unit="image", quiet=args.quiet) as bar:
        # --query-variants (opt-in) adds the platform-side variants of image.variants to the same match
        match = (partial(image_match.match_images, bank, variants=PLATFORM_VARIANTS) if args.query_variants
                 else bank.match_images)
        reports = match([str(f) for f in images], radius=args.radius, dihedral=args.dihedral,
                        trim_borders=args.trim_borders, features=args.features, threads=args.threads, progress=bar,
                        windows=args.windows)
    missed = any(r.error is None and not r.pdq for r in reports)
    if args.features and missed and bank.feature_count() > 0 and not _opencv_installed():
        print(NO_OPENCV_NOTE, file=sys.stderr)  # the bank skips the stage quietly; the user is told
    records = []
    for f, r in zip(images, reports):
        if r.error is None:
            rec = pdq_record(str(f), r.pdq, quality=r.quality)
            if r.features:
                rec["status"] = "match"
                rec["matches"] = [feature_match(m) for m in r.features]
            records.append(rec)
    for f, r in zip(images, reports):
        if r.error is not None:
            records.append({"path": str(f), "status": "error", "reason": r.error.reason, "matches": []})
    return records, any(r.features_checked for r in reports)


def _opencv_installed() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def pdq_record(path: str, matches: Sequence[Any], **extra: Any) -> dict:
    return {
        "path": path,
        "kind": "image",
        "status": "match" if matches else "no match",
        **extra,
        "matches": [
            {"case_id": m.case_id, "hash_id": m.hash_id, "distance": m.distance,
             "variant": DIHEDRAL_NAMES[m.variant]}
            for m in matches
        ],
    }


def feature_match(m: Any) -> dict:
    return {"case_id": m.case_id, "feature_id": m.feature_id, "via": "local features", "inliers": m.inliers,
            "spread": m.spread, "scale": m.scale, "rotation_degrees": m.rotation_degrees}


def _match_videos(bank: HashBank, videos: list[Path], args: argparse.Namespace) -> list[dict]:
    records: list[dict[str, Any]] = []
    for path, vh, reason in hash_videos([str(f) for f in videos], seconds_per_hash=args.seconds_per_hash,
                                        threads=args.threads, quiet=args.quiet):
        if vh is None:
            records.append({"path": path, "kind": "video", "status": "error", "reason": reason, "matches": []})
            continue
        vms = bank.match_video(vh)
        records.append({
            "path": path, "kind": "video", "status": "match" if vms else "no match", "md5": vh.md5,
            "matches": [{"case_id": m.case_id, "item": m.item, "query_pct": round(m.query_pct, 2),
                         "compared_pct": round(m.compared_pct, 2), "md5_equal": m.md5_equal} for m in vms],
        })
    return records


def _match_hash_list(bank: HashBank, path: Path, radius: int) -> list[dict]:
    codes = read_hash_file(path)
    found = bank.match(codes, radius, dihedral=False) if len(codes) else []
    per_query: dict = {}
    for m in found:
        per_query.setdefault(m.query, []).append(m)
    return [pdq_record(f"{path}:{qi + 1}", per_query.get(qi, []), pdq=codes[qi].tobytes().hex())
            for qi in range(len(codes))]


# ---------------------------------------------------------------------------- bank
def cmd_bank(args: argparse.Namespace) -> int:
    try:
        if args.action == "init":
            if Path(args.bank).exists():
                raise UsageError(f"{args.bank}: already exists")
            with open_bank(args.bank, create=True) as created:
                where = created.path if is_postgres_url(args.bank) else args.bank
            print(f"created empty bank {where} (owner-only file; hash banks are sensitive data)")
            return EXIT_OK
        with open_bank(args.bank) as bank:
            BANK_ACTIONS[args.action](bank, args)
    except (BankError, SubmissionError) as exc:
        raise UsageError(str(exc)) from None
    except BrokenPipeError:  # the reader went away: main() ends quietly
        raise
    except OSError as exc:
        raise UsageError(f"{shown(exc.filename or args.bank)}: {exc.strerror or exc}") from None
    return EXIT_OK


def _bank_add(bank: HashBank, args: argparse.Namespace) -> None:
    for sub in args.files:
        print(bank.add_submission(sub, allow_low_quality=args.allow_low_quality))


def _bank_import(bank: HashBank, args: argparse.Namespace) -> None:
    for f in args.files:
        cases = bank.import_(f, allow_low_quality=args.allow_low_quality)
        print(f"imported {f}: {len(cases)} case(s)", file=sys.stderr)
        for c in cases:
            print(c)


def _bank_withdraw(bank: HashBank, args: argparse.Namespace) -> None:
    for cid in args.case_ids:
        try:
            n = bank.withdraw(cid)
        except KeyError:
            raise UsageError(f"no case {cid!r} in {args.bank}") from None
        print(f"withdrew {cid}: {n} hash(es) and its feature sets deleted; it will not match again")


def _bank_export(bank: HashBank, args: argparse.Namespace) -> None:
    n = bank.export(args.output)
    print(f"wrote {n} hashes to {args.output}", file=sys.stderr)


def _bank_stats(bank: HashBank, args: argparse.Namespace) -> None:
    render_stats(vars(bank.stats()), as_json=args.json, out=sys.stdout)


BANK_ACTIONS = {"add": _bank_add, "import": _bank_import, "withdraw": _bank_withdraw, "export": _bank_export,
                "stats": _bank_stats}
