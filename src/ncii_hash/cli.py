"""The ``ncii-hash`` command.

Survivor side (never opens a network connection):
  ncii-hash hash PATH... [-r] [-o submission.json] [--format table|json|csv] [--dihedral]
  ncii-hash show submission.json

Platform side:
  ncii-hash match HASHES PATH... [-r] [--radius 31]   (HASHES: a submission or a hex list)

Exit codes: 0 success, 1 some inputs failed (the rest were processed), 2 usage error.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import __version__
from .formats import SubmissionError, make_submission, read_submission, write_submission
from .hashes import PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY, from_hex, hamming_matrix
from .imageio import IMAGE_SUFFIXES
from .pdq import DIHEDRAL_NAMES, pdq_hash_many

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def iter_inputs(paths: Sequence[str], recursive: bool) -> Iterator[Path]:
    """Files named directly, and the image files in named folders (sorted, no symlink loops)."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            seen: set = set()
            yield from _walk(p, recursive, seen)
        else:
            yield p  # missing or unreadable files are reported by the hasher


def _walk(folder: Path, recursive: bool, seen: set) -> Iterator[Path]:
    try:
        key = folder.resolve()
    except (OSError, RuntimeError):
        return
    if key in seen:
        return
    seen.add(key)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        print(f"ncii-hash: {folder}: cannot list folder ({exc.strerror})", file=sys.stderr)
        return
    for e in entries:
        path = Path(e.path)
        try:
            if e.is_dir():
                if recursive:
                    yield from _walk(path, recursive, seen)
            elif e.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                yield path
        except OSError:
            continue


class Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal and N > 1)."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.enabled = enabled and total > 1 and sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def cmd_hash(args: argparse.Namespace) -> int:
    files = list(iter_inputs(args.paths, args.recursive))
    if not files:
        raise UsageError("no image files found in the given paths")
    batch = pdq_hash_many([str(f) for f in files], dihedral=args.dihedral, threads=args.threads,
                          progress=Progress(len(files), not args.quiet))
    out = sys.stdout
    rows = []
    for i, f in enumerate(files):
        if i in batch.errors:
            rows.append({"file": str(f), "status": "error", "reason": batch.errors[i].reason})
            continue
        q = int(batch.qualities[i])
        row = {"file": str(f), "pdq": batch.hashes[i].tobytes().hex(), "quality": q,
               "status": "ok" if q >= PDQ_MIN_QUALITY else "low quality"}
        if args.dihedral:
            row["dihedral"] = {n: batch.dihedral[i, j].tobytes().hex() for j, n in enumerate(DIHEDRAL_NAMES)}
        rows.append(row)
    if args.format == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
    elif args.format == "csv":
        w = csv.writer(out)
        w.writerow(["file", "pdq", "quality", "status", "reason"])
        for r in rows:
            w.writerow([r["file"], r.get("pdq", ""), r.get("quality", ""), r["status"], r.get("reason", "")])
    else:
        for r in rows:
            if r["status"] == "error":
                out.write(f"{'-' * 64}  ---  ERROR  {r['file']}: {r['reason']}\n")
            else:
                flag = "OK" if r["status"] == "ok" else "LOW QUALITY"
                out.write(f"{r['pdq']}  {r['quality']:3d}  {flag:<5}  {r['file']}\n")
    if args.output:
        ok = batch.ok
        sub = make_submission(batch.hashes[ok], batch.qualities[ok])
        write_submission(args.output, sub)
        print(f"ncii-hash: wrote {len(sub)} hashes to {args.output} (no file names or metadata)", file=sys.stderr)
    if batch.errors:
        print(f"ncii-hash: {len(batch.errors)} of {len(files)} files could not be hashed", file=sys.stderr)
        return EXIT_SOME_FAILED
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    sub = read_submission(args.submission)
    n = len(sub)
    low = int((sub.qualities < PDQ_MIN_QUALITY).sum())
    print(f"{args.submission} is an ncii-hash submission with {n} PDQ hash{'es' if n != 1 else ''} of images.")
    print("It contains, for each item: the media kind, the 256-bit PDQ hash and its quality (0-100).")
    print("It does NOT contain: images, thumbnails, file names, folder paths, file sizes, dates,")
    print("camera or GPS (EXIF) data, or the order the files were in (items are shuffled).")
    if low:
        print(f"{low} hash{'es are' if low != 1 else ' is'} low quality (< {PDQ_MIN_QUALITY}): flat or featureless images match less reliably.")
    print()
    for kind, h, q in zip(sub.kinds, sub.hashes, sub.qualities):
        print(f"  {kind:<6} {h.tobytes().hex()}  quality {int(q)}")
    return EXIT_OK


def _load_hash_list(path: str) -> np.ndarray:
    p = Path(path)
    if p.suffix.lower() == ".json":
        return read_submission(p).hashes
    try:
        lines = [ln.split(",")[0].strip() for ln in p.read_text().splitlines()]
    except OSError as exc:
        raise UsageError(f"{p}: cannot read ({exc.strerror})") from None
    return from_hex([ln for ln in lines if ln and not ln.startswith("#")])


def cmd_match(args: argparse.Namespace) -> int:
    bank = _load_hash_list(args.hashes)
    files = list(iter_inputs(args.paths, args.recursive))
    if not files:
        raise UsageError("no image files found in the given paths")
    batch = pdq_hash_many([str(f) for f in files], dihedral=True, threads=args.threads,
                          progress=Progress(len(files), not args.quiet))
    matched = 0
    for i, f in enumerate(files):
        if i in batch.errors:
            print(f"ERROR     {f}: {batch.errors[i].reason}")
            continue
        d = hamming_matrix(batch.dihedral[i], bank)  # (8, N)
        best = d.min(axis=0)
        hits = np.nonzero(best <= args.radius)[0]
        if hits.size:
            matched += 1
            j = int(hits[np.argmin(best[hits])])
            variant = DIHEDRAL_NAMES[int(np.argmin(d[:, j]))]
            print(f"MATCH     {f}: bank hash #{j} at distance {int(best[j])} ({variant})")
        else:
            print(f"no match  {f}")
    print(f"ncii-hash: {matched} of {len(files)} files match {len(bank)} banked hashes (distance <= {args.radius})",
          file=sys.stderr)
    return EXIT_SOME_FAILED if batch.errors else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ncii-hash", description="Hash images privately (PDQ) and match them against hash lists.")
    p.add_argument("--version", action="version", version=f"ncii-hash {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    h = sub.add_parser("hash", help="hash images on this device; nothing is sent anywhere")
    h.add_argument("paths", nargs="+", help="image files and/or folders")
    h.add_argument("-r", "--recursive", action="store_true", help="also hash images in subfolders")
    h.add_argument("-o", "--output", help="write a submission file (hashes and qualities only)")
    h.add_argument("--format", choices=["table", "json", "csv"], default="table")
    h.add_argument("--dihedral", action="store_true", help="also print the 8 rotated/flipped hashes")
    h.add_argument("--threads", type=int, default=0, help="threads (0 = all cores)")
    h.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    h.set_defaults(func=cmd_hash)

    s = sub.add_parser("show", help="explain exactly what a submission file contains")
    s.add_argument("submission")
    s.set_defaults(func=cmd_show)

    m = sub.add_parser("match", help="match image files against a submission or a list of hex hashes")
    m.add_argument("hashes", help="submission .json, or a text file with one hex hash per line")
    m.add_argument("paths", nargs="+")
    m.add_argument("-r", "--recursive", action="store_true")
    m.add_argument("--radius", type=int, default=PDQ_MATCH_THRESHOLD, help="max Hamming distance (default 31)")
    m.add_argument("--threads", type=int, default=0)
    m.add_argument("-q", "--quiet", action="store_true")
    m.set_defaults(func=cmd_match)
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
        print(f"ncii-hash: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
