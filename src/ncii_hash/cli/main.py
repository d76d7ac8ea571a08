"""``ncii-hash``: the parser and the entry point (console script ``ncii_hash.cli:main`` and
``python -m ncii_hash``).

Exit codes: 0 success, 1 some inputs failed (the rest were processed), 2 usage error.
:func:`main` returns the code and never raises ``SystemExit``; every run builds its own parser
and state, so repeated calls in one process behave alike.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from .. import __version__
from ..hashes import PDQ_MATCH_THRESHOLD
from ..submission import SubmissionError
from .app import add_app_parser
from .commands import cmd_bank, cmd_hash, cmd_match, cmd_show
from .hub import add_hub_parser
from .matcher import add_matcher_parser
from .output import HASH_FORMATS
from .survivor import add_survivor_commands
from .sync import add_sync_commands
from .usage import EXIT_OK, EXIT_USAGE, UsageError, shown


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ncii-hash", description="Hash images privately (PDQ) and match them against hash lists.")
    p.add_argument("--version", action="version", version=f"ncii-hash {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    h = sub.add_parser("hash", help="hash images on this device; nothing is sent anywhere",
                       epilog="example: ncii-hash hash ~/Pictures/private -r -o submission.json")
    h.add_argument("paths", nargs="+", help="image files and/or folders")
    h.add_argument("-r", "--recursive", action="store_true", help="also hash images in subfolders")
    h.add_argument("-o", "--output", help="write a submission file (hashes and qualities only)")
    h.add_argument("--format", choices=list(HASH_FORMATS), default="table")
    h.add_argument("--dihedral", action="store_true", help="also print the 8 rotated/flipped hashes")
    h.add_argument("--features", action="store_true",
                   help="with -o: also include local features, which catch cropped/rotated/screenshotted copies "
                        "but can be turned back into a rough picture (opt-in; see docs/privacy-features.md)")
    h.add_argument("--share-window", action="store_true",
                   help="with -o: also include one more hash per image, of its centre (70%% of each side), which "
                        "lets platforms catch slightly rotated copies and copies with a caption banner; it is a "
                        "hash like the others, no more revealing (opt-in; see docs/privacy-features.md)")
    h.add_argument("--threads", type=int, default=0, help="threads (0 = all cores)")
    h.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    h.add_argument("--seconds-per-hash", type=float, default=1.0,
                   help="videos: hash one frame per this many seconds (0 = every frame; default 1)")
    h.set_defaults(func=cmd_hash)

    s = sub.add_parser("show", help="explain exactly what a submission file contains",
                       epilog="example: ncii-hash show submission.json")
    s.add_argument("submission")
    s.set_defaults(func=cmd_show)
    add_survivor_commands(sub)  # submit, case status|withdraw: the survivor's only network commands

    m = sub.add_parser("match", help="match image files or hash lists against a bank",
                       epilog="example: ncii-hash match bank.db uploads/ suspicious.txt --json")
    m.add_argument("bank", help="bank file (see 'ncii-hash bank init')")
    m.add_argument("inputs", nargs="+", help="image files, folders (searched recursively), or hash lists (.txt/.csv)")
    m.add_argument("--radius", type=int, default=PDQ_MATCH_THRESHOLD, help="max Hamming distance (default 31)")
    m.add_argument("--no-dihedral", dest="dihedral", action="store_false",
                   help="do not search rotated/mirrored versions of images")
    m.add_argument("--no-trim-borders", dest="trim_borders", action="store_false",
                   help="do not also search the content inside uniform borders (letterboxes, pads)")
    m.add_argument("--query-variants", action="store_true",
                   help="also search counter-rotations (1.5, 3 and 4.5 degrees) and the photo inside phone-screenshot "
                        "bars and caption banners (opt-in; docs/accuracy.md, 'Robustness options')")
    m.add_argument("--no-windows", dest="windows", action="store_false",
                   help="do not search the upload's centre among the centre hashes survivors chose to share "
                        "(used when the bank holds them: slight rotations, caption banners)")
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
    add_sync_commands(bsub)  # bank sync, bank feedback
    b.set_defaults(func=cmd_bank)

    add_hub_parser(sub)
    add_matcher_parser(sub)  # the HMA-compatible matcher
    add_app_parser(sub)  # the survivor's local page
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        status = _run(argv)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return status
    except BrokenPipeError:
        # The reader stopped reading (`ncii-hash match ... | head -1`): it has what it wanted,
        # so this ends quietly with status 0 -- no message, no traceback. stdout is pointed at
        # /dev/null so the flush at interpreter exit cannot fail again (the recipe in Python's
        # signal module docs, "Note on SIGPIPE").
        _stdout_to_devnull()
        return EXIT_OK


def _run(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and argparse's usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except BrokenPipeError:
        raise
    except (UsageError, SubmissionError) as exc:
        print(f"ncii-hash: {exc}", file=sys.stderr)
    except ValueError as exc:
        print(f"ncii-hash: {shown(exc)}", file=sys.stderr)
    except OSError as exc:
        print(f"ncii-hash: {shown(exc.filename or '')}: {exc.strerror or exc}", file=sys.stderr)
    return EXIT_USAGE


def _stdout_to_devnull() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stdout (tests, embedding): nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
