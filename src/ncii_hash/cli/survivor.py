"""The survivor's hub commands: ``submit`` (open a case) and ``case status|withdraw``.

``submit`` is the one survivor command that opens a connection, and only to the ``--hub``
address given: ``https://``, or plain ``http://`` to this computer (checked before anything
is read or sent). It prints what will be sent (the ``show`` text), sends the file as it is,
with an ``Idempotency-Key`` of 256 random bits that every retry reuses (a lost answer never
makes two cases), and prints the case number and PIN once. The PIN of ``case`` is read from
a prompt that does not echo, or from standard input when it is piped; never from an argument
(other users can read a command line). Protocol: docs/hub.md, "Survivors".
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

from .._util.http import HTTPConnectionError, HTTPStatusError, check_base_url
from .._util.hub_cases import MAX_CASE_NUMBER, TIMEOUT, case_request, open_case, retry_seconds
from ..submission import read_submission
from .output import render_submission, write_json
from .usage import EXIT_OK, EXIT_SOME_FAILED, UsageError, shown

KEEP_WORDS = ("Keep both somewhere safe: the case number and the PIN cannot be recovered or shown again.\n"
              "With them you can check the case or withdraw it at any time:\n"
              "  ncii-hash case status {case} --hub {hub}\n"
              "  ncii-hash case withdraw {case} --hub {hub}")


def add_survivor_commands(sub: Any) -> None:
    s = sub.add_parser("submit", help="send a submission file to a hub; prints a case number and PIN",
                       epilog="example: ncii-hash submit submission.json --hub https://hub.example.org")
    s.add_argument("submission")
    s.add_argument("--hub", required=True, help="the hub's address (https://..., or http:// to this computer only)")
    s.add_argument("--json", action="store_true", help='print {"case_number": ..., "pin": ...} only')
    s.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds to wait for the hub (default 30)")
    s.set_defaults(func=cmd_submit)

    c = sub.add_parser("case", help="check or withdraw your case at a hub (the PIN is asked for, never an argument)")
    csub = c.add_subparsers(dest="case_action", required=True)
    for action, text in (("status", "is the case active, how many items, what partners reported"),
                         ("withdraw", "withdraw the case: partner platforms delete its hashes at their next sync")):
        x = csub.add_parser(action, help=text, epilog=f"example: echo \"$PIN\" | ncii-hash case {action} "
                                                      "NC-7K3M-Q9TD-2XAV --hub https://hub.example.org")
        x.add_argument("case_number")
        x.add_argument("--hub", required=True, help="the hub's address")
        x.add_argument("--json", action="store_true")
        x.add_argument("--timeout", type=float, default=TIMEOUT)
    c.set_defaults(func=cmd_case)


def hub_url(text: str) -> str:
    try:
        return check_base_url(text)
    except ValueError as exc:
        raise UsageError(f"--hub: {exc}") from None


# ---------------------------------------------------------------------------- submit
def cmd_submit(args: argparse.Namespace) -> int:
    hub = hub_url(args.hub)
    sub = read_submission(args.submission)  # checked before anything is sent
    body = Path(args.submission).read_bytes()
    shown_to = sys.stderr if args.json else sys.stdout
    render_submission(args.submission, sub, shown_to)
    shown_to.write(f"\nSending exactly this file to {hub}/cases ...\n")
    shown_to.flush()
    try:
        opened = open_case(hub, body, timeout=args.timeout)
    except HTTPStatusError as exc:
        return failed(f"the hub did not open a case ({exc.status}): {exc.detail}")
    except HTTPConnectionError as exc:
        return failed(f"{exc}. The hub may or may not have received the submission: check with the hub's "
                      "operator before sending it again")
    except ValueError as exc:
        return failed(str(exc))
    case, pin = opened.case_number, opened.pin
    if args.json:
        write_json({"case_number": case, "pin": pin}, sys.stdout)
        return EXIT_OK
    print(f"\nThe hub opened case {case}.\n\n  case number: {case}\n  PIN:         {pin}\n")
    print(KEEP_WORDS.format(case=case, hub=hub))
    return EXIT_OK


# ---------------------------------------------------------------------------- case
def cmd_case(args: argparse.Namespace) -> int:
    hub = hub_url(args.hub)
    case = args.case_number.strip()
    if not case or len(case) > MAX_CASE_NUMBER:
        raise UsageError(f"{args.case_number!r} is not a case number (like NC-7K3M-Q9TD-2XAV)")
    pin = read_pin(sys.stdin)
    try:
        answer = case_request(hub, case, pin, args.case_action, timeout=args.timeout)
    except HTTPStatusError as exc:
        return failed(case_error(exc, withdrawing=args.case_action == "withdraw"))
    except HTTPConnectionError as exc:
        return failed(str(exc))
    except ValueError as exc:
        return failed(str(exc))
    if args.json:
        write_json(answer, sys.stdout)
    elif args.case_action == "status":
        render_case_status(answer, sys.stdout)
    else:
        print(f"case {answer.get('case_number', case)} is withdrawn: its {answer.get('hashes', 0)} hash(es) leave the "
              "hub's feed, and partner platforms delete them at their next sync.")
    return EXIT_OK


def read_pin(stdin: TextIO) -> str:
    """The PIN from a prompt that does not echo, or the first line of piped standard input."""
    if stdin.isatty():
        try:
            pin = getpass.getpass("PIN (not shown as you type): ")
        except EOFError:
            pin = ""
    else:
        pin = stdin.readline()
    pin = pin.strip()
    if not pin:
        raise UsageError("no PIN: type it at the prompt, or pipe it on standard input "
                         "(a PIN is never taken as an argument: other users can read command lines)")
    return pin


def case_error(exc: HTTPStatusError, *, withdrawing: bool) -> str:
    unchanged = " Nothing was changed." if withdrawing else ""
    if exc.status == 429:
        wait = retry_seconds(exc)
        when = f"try again in {wait} second{'s' if wait != 1 else ''}" if wait is not None else "try again later"
        return f"too many wrong PINs for this case or from this computer; {when}.{unchanged}"
    if exc.status == 403:
        return f"wrong case number or PIN.{unchanged}"
    return f"the hub answered {exc.status}: {exc.detail}.{unchanged}"


def render_case_status(answer: dict, out: TextIO) -> None:
    items, hashes = answer.get("items", "?"), answer.get("hashes", "?")
    feedback = answer.get("feedback") or {}
    counts = ", ".join(f"{k} {v}" for k, v in sorted(feedback.items()) if v) if isinstance(feedback, dict) else ""
    out.write(f"case {answer.get('case_number', '?')}: {answer.get('status', '?')}\n"
              f"  items: {items}, hashes: {hashes}\n"
              f"  partner feedback: {counts or 'none yet'}\n")


def failed(message: str, code: Optional[int] = None) -> int:
    print(f"ncii-hash: {shown(message)}", file=sys.stderr)
    return EXIT_SOME_FAILED if code is None else code
