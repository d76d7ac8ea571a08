"""The platform's feed commands: ``bank sync`` (pull a hub's or StopNCII's feed into a bank,
resuming from the checkpoint the bank stores) and ``bank feedback`` (tell the feed what was
found). Keys come from a key file (``fetch_key,subscription_key[,base_url]``, the
threatexchange format), never from the command line, except StopNCII's separate
SubmitFeedback key (``--feedback-key``)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any

from .._util.http import HTTPConnectionError, HTTPStatusError
from ..bank import BankError, FeedKeys, SyncReport, send_feedback
from ..bank.feed import FEEDBACK_VALUES, SIGNAL_PDQ_WINDOW, SIGNAL_VIDEO_PDQ, STOCK_SIGNAL_TYPES
from .commands import open_bank
from .output import write_json
from .usage import EXIT_OK, EXIT_SOME_FAILED, UsageError, shown


def add_sync_commands(bsub: Any) -> None:
    x = bsub.add_parser("sync", help="pull a hub's (or StopNCII's) feed into the bank, from where the last sync ended",
                        epilog="example: ncii-hash bank sync bank.db --keys hub.key --every 60")
    x.add_argument("bank")
    x.add_argument("--keys", required=True, metavar="KEYFILE",
                   help="key file: one line fetch_key,subscription_key[,base_url] (what 'hub add-partner' prints)")
    x.add_argument("--from", dest="base_url", metavar="URL", help="the feed's base URL (default: the key line's third "
                   "field), e.g. https://hub.example.org/v1")
    x.add_argument("--every", type=float, metavar="SECONDS", help="keep syncing, this many seconds apart, until ^C")
    x.add_argument("--video", action="store_true", help="also fetch the hub's vPDQ video records (NciiVideoPDQ)")
    x.add_argument("--windows", action="store_true",
                   help="also fetch the centre hashes survivors chose to share (NciiImagePDQWindow): they catch "
                        "slightly rotated copies and copies with a caption banner (ncii-hash match uses them)")
    x.add_argument("--page-size", type=int, default=800)
    x.add_argument("--restart", action="store_true", help="read the whole feed again (withdrawn cases stay withdrawn)")
    x.add_argument("--json", action="store_true", help="print each report as JSON")
    x.set_defaults(func=cmd_bank_sync)

    f = bsub.add_parser("feedback", help="send feedback on hashes to the feed (SubmitFeedback)",
                        epilog="example: ncii-hash bank feedback --keys hub.key --value Blocked <64 hex PDQ>")
    f.add_argument("hashes", nargs="+", metavar="HASH", help="hash values as the feed sent them")
    f.add_argument("--keys", required=True, metavar="KEYFILE")
    f.add_argument("--from", dest="base_url", metavar="URL")
    f.add_argument("--feedback-key", help="SubmitFeedback's own function key (StopNCII; our hub takes the fetch key)")
    f.add_argument("--value", required=True, choices=FEEDBACK_VALUES)
    f.add_argument("--tag", action="append", default=[], dest="tags")
    f.set_defaults(func=cmd_bank_feedback)


def read_keys(args: argparse.Namespace) -> FeedKeys:
    try:
        keys = FeedKeys.read(args.keys)
    except OSError as exc:
        raise UsageError(f"{shown(args.keys)}: {exc.strerror or exc}") from None
    if not (args.base_url or keys.base_url):
        raise UsageError(f"no feed URL: give --from URL or add it as the third field of {shown(args.keys)}")
    return keys


def cmd_bank_sync(args: argparse.Namespace) -> int:
    keys = read_keys(args)
    if args.every is not None and args.every <= 0:
        raise UsageError("--every takes a positive number of seconds")
    signal_types = (*STOCK_SIGNAL_TYPES, *([SIGNAL_VIDEO_PDQ] if args.video else []),
                    *([SIGNAL_PDQ_WINDOW] if args.windows else []))
    status = EXIT_OK
    try:
        with open_bank(args.bank) as bank:
            while True:
                try:
                    report = bank.sync(args.base_url, keys, signal_types=signal_types, page_size=args.page_size,
                                       restart=args.restart)
                    render_report(report, as_json=args.json)
                    status = EXIT_OK
                except (HTTPConnectionError, HTTPStatusError, BankError, ValueError) as exc:
                    if args.every is None:
                        raise
                    print(f"ncii-hash: sync failed, trying again in {args.every:g} s: {shown(exc)}", file=sys.stderr)
                    status = EXIT_SOME_FAILED
                if args.every is None:
                    return status
                args.restart = False
                sys.stdout.flush()
                time.sleep(args.every)
    except KeyboardInterrupt:
        print("ncii-hash: sync stopped; the next one resumes from the stored checkpoint", file=sys.stderr)
        return status
    except (HTTPConnectionError, HTTPStatusError) as exc:
        print(f"ncii-hash: {shown(exc)}", file=sys.stderr)
        return EXIT_SOME_FAILED


def render_report(report: SyncReport, *, as_json: bool) -> None:
    if as_json:
        write_json(dataclasses.asdict(report), sys.stdout)
        return
    print(f"synced {report.base_url}: {report.pages} page(s), {report.records} record(s); "
          f"{report.cases_added} case(s) added, {report.hashes_added} hash(es) added, "
          f"{report.cases_withdrawn} case(s) withdrawn; {report.skipped} record(s) skipped; "
          f"checkpoint {report.checkpoint}")
    for reason in report.skip_reasons:
        print(f"  skipped {shown(reason)}", file=sys.stderr)


def cmd_bank_feedback(args: argparse.Namespace) -> int:
    keys = read_keys(args)
    try:
        n = send_feedback(args.base_url, keys, [(h, args.value, args.tags) for h in args.hashes],
                          feedback_key=args.feedback_key)
    except (HTTPConnectionError, HTTPStatusError) as exc:
        print(f"ncii-hash: feedback not sent: {shown(exc)}", file=sys.stderr)
        return EXIT_SOME_FAILED
    print(f"feedback sent: {n} of {len(args.hashes)} accepted")
    return EXIT_OK
