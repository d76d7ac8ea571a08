"""The ``ncii-hash`` command.

Survivor side (never opens a network connection):
  ncii-hash hash PATH... [-r] [-o submission.json] [--format table|json|csv] [--dihedral]
  ncii-hash show submission.json

Platform side:
  ncii-hash bank init|add|import|withdraw|export|stats BANK ...
  ncii-hash match BANK PATH_OR_HASHFILE... [--radius 31] [--no-dihedral] [--json]

Exit codes: 0 success, 1 some inputs failed (the rest were processed), 2 usage error.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import __version__
from ..submission import SubmissionError, make_submission, read_submission, write_submission
from ..hashes import PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY
from ..submission import video_item
from .inputs import (  # noqa: F401  (UsageError, iter_inputs ... are part of the CLI module's API)
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    HASH_LIST_SUFFIXES,
    UNLISTED_FOLDERS,
    Progress,
    UsageError,
    read_hash_file,
    hash_videos,
    is_video,
    iter_inputs,
    shown,
)
from ..image.pdq import DIHEDRAL_NAMES, pdq_hash_many

def cmd_hash(args: argparse.Namespace) -> int:
    if args.features and not args.output:
        raise UsageError("--features only changes the submission file: use it with -o FILE")
    if args.output:
        folder = Path(args.output).resolve().parent
        if not folder.is_dir():
            raise UsageError(f"cannot write the submission to {shown(args.output)}: folder {shown(folder)} does not exist")
    inputs = list(iter_inputs(args.paths, args.recursive))
    if not inputs:
        raise UsageError("no image or video files found in the given paths")
    files = [f for f in inputs if not is_video(f)]
    video_files = [f for f in inputs if is_video(f)]
    batch = pdq_hash_many([str(f) for f in files], dihedral=args.dihedral, threads=args.threads,
                          progress=Progress(len(files), not args.quiet))
    videos = hash_videos([str(f) for f in video_files], args)
    out = sys.stdout
    rows = []
    for i, f in enumerate(files):
        if i in batch.errors:
            rows.append({"file": str(f), "kind": "image", "status": "error", "reason": batch.errors[i].reason})
            continue
        q = int(batch.qualities[i])
        row = {"file": str(f), "kind": "image", "pdq": batch.hashes[i].tobytes().hex(), "quality": q,
               "status": "ok" if q >= PDQ_MIN_QUALITY else "low quality"}
        if args.dihedral:
            row["dihedral"] = {n: batch.dihedral[i, j].tobytes().hex() for j, n in enumerate(DIHEDRAL_NAMES)}
        rows.append(row)
    for path, vh, reason in videos:
        if vh is None:
            rows.append({"file": path, "kind": "video", "status": "error", "reason": reason})
            continue
        good = int((vh.qualities >= PDQ_MIN_QUALITY).sum())
        rows.append({"file": path, "kind": "video", "md5": vh.md5, "frames": len(vh), "good_frames": good,
                     "status": "ok" if good else "low quality"})
    if args.format == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
    elif args.format == "csv":
        w = csv.writer(out)
        w.writerow(["file", "kind", "pdq", "quality", "md5", "frames", "status", "reason"])
        for r in rows:
            w.writerow([shown(r["file"]), r["kind"], r.get("pdq", ""), r.get("quality", ""), r.get("md5", ""),
                        r.get("frames", ""), r["status"], r.get("reason", "")])
    else:
        for r in rows:
            if r["status"] == "error":
                out.write(f"{'-' * 64}  ---  ERROR  {shown(r['file'])}: {shown(r['reason'])}\n")
            elif r["kind"] == "video":
                flag = "OK" if r["status"] == "ok" else "LOW QUALITY"
                label = f"video md5 {r['md5']} {r['frames']} frames"
                out.write(f"{label:<64}  ---  {flag:<5}  {shown(r['file'])}\n")
            else:
                flag = "OK" if r["status"] == "ok" else "LOW QUALITY"
                out.write(f"{r['pdq']}  {r['quality']:3d}  {flag:<5}  {shown(r['file'])}\n")
    failed = len(batch.errors) + sum(1 for _, vh, _ in videos if vh is None) + len(UNLISTED_FOLDERS)
    if args.output:
        ok = batch.ok
        items = [video_item(vh.frames, vh.qualities, vh.md5) for _, vh, _ in videos if vh is not None]
        fsets = _survivor_features([f for i, f in enumerate(files) if ok[i]]) if args.features else []
        sub = make_submission(batch.hashes[ok], batch.qualities[ok], videos=items, features=fsets)
        if len(sub) == 0:
            raise UsageError("nothing could be hashed; no submission written")
        try:
            write_submission(args.output, sub)
        except OSError as exc:
            raise UsageError(f"cannot write the submission to {shown(args.output)}: {exc.strerror or exc}") from None
        what = ("hashes and the local features you chose to include" if sub.features
                else "hashes only")
        print(f"ncii-hash: wrote {len(sub)} items to {args.output} ({what}: no file names or metadata)",
              file=sys.stderr)
    if failed:
        print(f"ncii-hash: {failed} of {len(inputs)} files could not be hashed", file=sys.stderr)
        return EXIT_SOME_FAILED
    return EXIT_OK


FEATURES_WARNING = (
    "ncii-hash: --features: the submission will also hold local features of each image (corner positions\n"
    "  and patch descriptors). Unlike hashes, these can be turned back into a recognisable approximation\n"
    "  of the picture. They let platforms catch cropped, rotated or screenshotted copies. Share them only\n"
    "  if you accept that trade-off."
)


def _survivor_features(files: list) -> list:
    if not files:
        return []
    try:
        from ..features.orb import image_features
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UsageError(str(exc)) from None
    print(FEATURES_WARNING, file=sys.stderr)
    out = []
    for f in files:
        fs = image_features(str(f))
        if fs.usable:
            out.append(fs)
    return out


def cmd_show(args: argparse.Namespace) -> int:
    sub = read_submission(args.submission)
    n = int(sub.hashes.shape[0])
    nv = len(sub.videos)
    low = int((sub.qualities < PDQ_MIN_QUALITY).sum())
    print(f"{args.submission} is an ncii-hash submission with {n} PDQ hash{'es' if n != 1 else ''} of images"
          f" and {nv} video{'s' if nv != 1 else ''}.")
    print("It contains, for each image: the 256-bit PDQ hash and its quality (0-100);")
    print("for each video: the MD5 of the file and the PDQ hashes of sampled frames (duplicates removed,")
    print("shuffled: no frame numbers, times or duration).")
    if sub.features:
        print(f"It ALSO contains local features of {len(sub.features)} image(s): corner positions and patch")
        print("descriptors. Unlike hashes, these can be turned back into a recognisable approximation of")
        print("each picture; they are there because the person who made this file chose to include them.")
    print("It does NOT contain: images, video frames, thumbnails, file names, folder paths, file sizes,")
    print("dates, camera or GPS (EXIF) data, or the order the files were in (items are shuffled).")
    if low:
        print(f"{low} hash{'es are' if low != 1 else ' is'} low quality (< {PDQ_MIN_QUALITY}): flat or featureless images match less reliably.")
    print()
    for kind, h, q in zip(sub.kinds, sub.hashes, sub.qualities):
        print(f"  {kind:<6} {h.tobytes().hex()}  quality {int(q)}")
    for v in sub.videos:
        print(f"  video  md5 {v.md5 or '(none)'}  {v.frames.shape[0]} frame hashes")
    return EXIT_OK


def _open_bank(path: str, *, create: bool = False):
    from ..bank.bank import HashBank

    p = Path(path)
    if not create and not p.is_file():
        raise UsageError(f"{p}: no such bank (create one with 'ncii-hash bank init {p}')")
    return HashBank(p, create=create)


def cmd_match(args: argparse.Namespace) -> int:
    bank = _open_bank(args.bank)
    images: list = []
    hash_files: list = []
    for raw in args.inputs:
        p = Path(raw)
        if p.is_file() and p.suffix.lower() in HASH_LIST_SUFFIXES:
            hash_files.append(p)
        else:
            images.extend(iter_inputs([raw], True))
    video_files = [f for f in images if is_video(f)]
    images = [f for f in images if not is_video(f)]
    if not images and not hash_files and not video_files:
        raise UsageError("no image files, videos or hash lists found in the given paths")
    records = []
    failed = 0
    if images:
        batch = pdq_hash_many([str(f) for f in images], dihedral=True, threads=args.threads,
                              progress=Progress(len(images), not args.quiet), trim_borders=args.trim_borders)
        ok = [i for i in range(len(images)) if i not in batch.errors]
        # Each image is searched as it is and, when it has a uniform border (letterbox, pad,
        # screenshot frame), also as the content inside it; matches are merged per image.
        owners = list(ok)
        sets = [batch.dihedral[ok]]
        if batch.has_trimmed is not None:
            extra = [i for i in ok if batch.has_trimmed[i]]
            owners += extra
            sets.append(batch.trimmed[extra])
        queries = np.concatenate(sets)
        if not args.dihedral:
            queries = queries[:, 0, :]
        found = bank.match(queries, args.radius, dihedral=args.dihedral) if ok else []
        per_image: dict = {}
        for m in found:
            best = per_image.setdefault(owners[m.query], {})
            if m.hash_id not in best or m.distance < best[m.hash_id].distance:
                best[m.hash_id] = m
        feature_hits = _feature_stage(bank, images, [i for i in ok if i not in per_image], args)
        for i in ok:
            ms = sorted(per_image.get(i, {}).values(), key=lambda m: (m.distance, m.hash_id))
            rec = _record(str(images[i]), ms, quality=int(batch.qualities[i]))
            if i in feature_hits:
                rec["status"] = "match"
                rec["matches"] = feature_hits[i]
            records.append(rec)
        for i, err in sorted(batch.errors.items()):
            failed += 1
            records.append({"path": str(images[i]), "status": "error", "reason": err.reason, "matches": []})
    for path, vh, reason in hash_videos([str(f) for f in video_files], args):
        if vh is None:
            failed += 1
            records.append({"path": path, "kind": "video", "status": "error", "reason": reason, "matches": []})
            continue
        vms = bank.match_video(vh)
        records.append({
            "path": path, "kind": "video", "status": "match" if vms else "no match", "md5": vh.md5,
            "matches": [{"case_id": m.case_id, "item": m.item, "query_pct": round(m.query_pct, 2),
                         "compared_pct": round(m.compared_pct, 2), "md5_equal": m.md5_equal} for m in vms],
        })
    for hf in hash_files:
        codes = read_hash_file(hf)
        found = bank.match(codes, args.radius, dihedral=False) if len(codes) else []
        per_query = {}
        for m in found:
            per_query.setdefault(m.query, []).append(m)
        for qi in range(len(codes)):
            records.append(_record(f"{hf}:{qi + 1}", per_query.get(qi, []), pdq=codes[qi].tobytes().hex()))
    if args.json:
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for r in records:
            if r["status"] == "error":
                print(f"ERROR     {shown(r['path'])}: {shown(r['reason'])}")
            elif r["matches"] and r.get("kind") == "video":
                best = r["matches"][0]
                print(f"MATCH     {shown(r['path'])}: case {best['case_id']} video {best['item']},"
                      f" {best['query_pct']:.0f}% of its frames found")
            elif r["matches"] and r["matches"][0].get("via") == "local features":
                best = r["matches"][0]
                more = f" (+{len(r['matches']) - 1} more)" if len(r["matches"]) > 1 else ""
                print(f"MATCH     {shown(r['path'])}: case {best['case_id']} by local features"
                      f" ({best['inliers']} points agree, rotated {best['rotation_degrees']:+.0f} deg,"
                      f" scale {best['scale']:.2f}){more}")
            elif r["matches"]:
                best = r["matches"][0]
                more = f" (+{len(r['matches']) - 1} more)" if len(r["matches"]) > 1 else ""
                print(f"MATCH     {shown(r['path'])}: case {best['case_id']} at distance {best['distance']}"
                      f" ({best['variant']}){more}")
            else:
                print(f"no match  {shown(r['path'])}")
    n_match = sum(1 for r in records if r["status"] == "match")
    rule = f"PDQ distance <= {args.radius}"
    if getattr(args, "_features_used", False):
        rule += ", or local features verified"
    print(f"ncii-hash: {n_match} of {len(records)} inputs match the bank ({rule})", file=sys.stderr)
    bank.close()
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _feature_stage(bank, images: list, missed: list, args: argparse.Namespace) -> dict:
    """Second stage: images PDQ did not match, searched by local features when the bank holds
    feature sets (crops, rotations, banners, screenshots). {image index: match dicts}."""
    if not args.features or not missed or bank.feature_count() == 0:
        return {}
    try:
        from ..features.orb import query_features
        from ..image.io import ImageError, load_pixels
    except ImportError:  # pragma: no cover - OpenCV missing
        print("ncii-hash: the bank holds local features but OpenCV is not installed "
              "(pip install 'ncii-hash[features]'); PDQ only", file=sys.stderr)
        return {}
    args._features_used = True
    queries, owners = [], []
    for i in missed:
        try:
            sets = query_features(load_pixels(str(images[i])))
        except (ImageError, OSError):  # already reported by the PDQ stage if it failed there
            continue
        queries += sets
        owners += [i] * len(sets)
    best: dict = {}  # (image, feature set id) -> the verification with most inliers
    for m in bank.match_features(queries, threads=args.threads):
        key = (owners[m.query], m.feature_id)
        if key not in best or m.inliers > best[key].inliers:
            best[key] = m
    out: dict = {}
    for (i, _), m in sorted(best.items(), key=lambda t: (t[0][0], -t[1].inliers, t[0][1])):
        out.setdefault(i, []).append(
            {"case_id": m.case_id, "feature_id": m.feature_id, "via": "local features", "inliers": m.inliers,
             "spread": m.spread, "scale": m.scale, "rotation_degrees": m.rotation_degrees})
    return out


def _record(path: str, matches: list, **extra) -> dict:
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


def cmd_bank(args: argparse.Namespace) -> int:
    from ..bank.bank import BankError

    action = args.action
    try:
        if action == "init":
            if Path(args.bank).exists():
                raise UsageError(f"{args.bank}: already exists")
            _open_bank(args.bank, create=True).close()
            print(f"created empty bank {args.bank} (owner-only file; hash banks are sensitive data)")
            return EXIT_OK
        bank = _open_bank(args.bank)
        try:
            if action == "add":
                for sub in args.files:
                    cid = bank.add_submission(sub, allow_low_quality=args.allow_low_quality)
                    print(cid)
            elif action == "import":
                for f in args.files:
                    cases = bank.import_(f, allow_low_quality=args.allow_low_quality)
                    print(f"imported {f}: {len(cases)} case(s)", file=sys.stderr)
                    for c in cases:
                        print(c)
            elif action == "withdraw":
                for cid in args.case_ids:
                    try:
                        n = bank.withdraw(cid)
                    except KeyError:
                        raise UsageError(f"no case {cid!r} in {args.bank}") from None
                    print(f"withdrew {cid}: {n} hash(es) and its feature sets deleted; it will not match again")
            elif action == "export":
                n = bank.export(args.output)
                print(f"wrote {n} hashes to {args.output}", file=sys.stderr)
            elif action == "stats":
                st = bank.stats()
                if args.json:
                    print(json.dumps(st.__dict__, indent=2))
                else:
                    for k, v in st.__dict__.items():
                        print(f"{k:16} {v}")
        finally:
            bank.close()
    except (BankError, SubmissionError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{shown(exc.filename or args.bank)}: {exc.strerror or exc}") from None
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ncii-hash", description="Hash images privately (PDQ) and match them against hash lists.")
    p.add_argument("--version", action="version", version=f"ncii-hash {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    h = sub.add_parser("hash", help="hash images on this device; nothing is sent anywhere",
                       epilog="example: ncii-hash hash ~/Pictures/private -r -o submission.json")
    h.add_argument("paths", nargs="+", help="image files and/or folders")
    h.add_argument("-r", "--recursive", action="store_true", help="also hash images in subfolders")
    h.add_argument("-o", "--output", help="write a submission file (hashes and qualities only)")
    h.add_argument("--format", choices=["table", "json", "csv"], default="table")
    h.add_argument("--dihedral", action="store_true", help="also print the 8 rotated/flipped hashes")
    h.add_argument("--features", action="store_true",
                   help="with -o: also include local features, which catch cropped/rotated/screenshotted copies "
                        "but can be turned back into a rough picture (opt-in; see docs/privacy-features.md)")
    h.add_argument("--threads", type=int, default=0, help="threads (0 = all cores)")
    h.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    h.add_argument("--seconds-per-hash", type=float, default=1.0,
                   help="videos: hash one frame per this many seconds (0 = every frame; default 1)")
    h.set_defaults(func=cmd_hash)

    s = sub.add_parser("show", help="explain exactly what a submission file contains",
                       epilog="example: ncii-hash show submission.json")
    s.add_argument("submission")
    s.set_defaults(func=cmd_show)

    m = sub.add_parser("match", help="match image files or hash lists against a bank",
                       epilog="example: ncii-hash match bank.db uploads/ suspicious.txt --json")
    m.add_argument("bank", help="bank file (see 'ncii-hash bank init')")
    m.add_argument("inputs", nargs="+", help="image files, folders (searched recursively), or hash lists (.txt/.csv)")
    m.add_argument("--radius", type=int, default=PDQ_MATCH_THRESHOLD, help="max Hamming distance (default 31)")
    m.add_argument("--no-dihedral", dest="dihedral", action="store_false",
                   help="do not search rotated/mirrored versions of images")
    m.add_argument("--no-trim-borders", dest="trim_borders", action="store_false",
                   help="do not also search the content inside uniform borders (letterboxes, pads)")
    m.add_argument("--no-features", dest="features", action="store_false",
                   help="do not search images PDQ missed by local features (used when the bank holds feature sets)")
    m.add_argument("--json", action="store_true", help="one JSON record per input (path, status, matches)")
    m.add_argument("--threads", type=int, default=0)
    m.add_argument("-q", "--quiet", action="store_true")
    m.add_argument("--seconds-per-hash", type=float, default=1.0, help="videos: frame sampling (0 = every frame)")
    m.set_defaults(func=cmd_match)

    b = sub.add_parser("bank", help="manage a hash bank (platform side)")
    bsub = b.add_subparsers(dest="action", required=True)
    x = bsub.add_parser("init", help="create an empty bank", epilog="example: ncii-hash bank init bank.db")
    x.add_argument("bank")
    x = bsub.add_parser("add", help="bank a survivor's submission; prints the new case id",
                        epilog="example: ncii-hash bank add bank.db submission.json")
    x.add_argument("bank")
    x.add_argument("files", nargs="+", metavar="SUBMISSION")
    x.add_argument("--allow-low-quality", action="store_true")
    x = bsub.add_parser("import", help="import a CSV of PDQ hashes (pdq,quality,case_id,kind) in one transaction",
                        epilog="example: ncii-hash bank import bank.db partner.csv")
    x.add_argument("bank")
    x.add_argument("files", nargs="+", metavar="CSV")
    x.add_argument("--allow-low-quality", action="store_true")
    x = bsub.add_parser("withdraw", help="withdraw cases: their hashes are deleted at once",
                        epilog="example: ncii-hash bank withdraw bank.db case-0123...")
    x.add_argument("bank")
    x.add_argument("case_ids", nargs="+", metavar="CASE_ID")
    x = bsub.add_parser("export", help="export active hashes as CSV", epilog="example: ncii-hash bank export bank.db out.csv")
    x.add_argument("bank")
    x.add_argument("output")
    x = bsub.add_parser("stats", help="counts, size and index state", epilog="example: ncii-hash bank stats bank.db")
    x.add_argument("bank")
    x.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bank)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"ncii-hash: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SubmissionError as exc:
        print(f"ncii-hash: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"ncii-hash: {shown(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"ncii-hash: {shown(exc.filename or '')}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
