"""``ncii-hash matcher serve|add-key|remove-key``: the HMA-compatible matching service
(docs/matcher.md) over a bank (a file path or a ``postgresql://`` URL).

Bound to loopback (the default) the routes are open, as HMA's are; bound to any other address
the curation routes' writes need an API key (``add-key`` prints one once; the bank keeps its
SHA-256) -- on loopback too with ``--require-keys`` (a reverse proxy on the same host) -- and
``--keys-for-matching`` asks one for ``/m/*`` and ``/h/*`` as well.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from .usage import EXIT_OK, EXIT_SOME_FAILED, UsageError


def add_matcher_parser(sub: "argparse._SubParsersAction") -> None:
    h = sub.add_parser("matcher", help="serve HMA 2.0's matching API over a bank, with a live index")
    hsub = h.add_subparsers(dest="action", required=True)
    x = hsub.add_parser("serve", help="serve the matcher (127.0.0.1 unless --host says otherwise)",
                        epilog="example: ncii-hash matcher serve bank.db --port 5000")
    x.add_argument("bank", help="a bank file or a postgresql:// URL (several matchers may share one)")
    x.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; put TLS in front)")
    x.add_argument("--port", type=int, default=5000, help="port (0 = any free port; the address is printed)")
    x.add_argument("--backend", default=None, help="the index backend (default: HashIndex's default)")
    x.add_argument("--fetch-allow", action="append", default=[], metavar="HOST",
                   help="allow fetching media by URL from HOST and its subdomains (repeatable; default: never)")
    x.add_argument("--require-keys", action="store_true",
                   help="require an API key for writes on loopback too (behind a reverse proxy on this host)")
    x.add_argument("--keys-for-matching", action="store_true",
                   help="require an API key for /m/* and /h/* too (writes always need one off loopback)")
    x.add_argument("--poll", type=float, default=None, metavar="SECONDS",
                   help="apply the change log at least this often (default 0.05; PostgreSQL also wakes on NOTIFY)")
    x.add_argument("--snapshot-dir", metavar="DIR",
                   help="a postgresql:// bank: keep the index snapshot in DIR (created owner-only), so a restart "
                        "loads it plus the log tail instead of reading the whole table (bank files keep theirs "
                        "next to the file)")
    x.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes on the port, each with its own index (default 1; one per core for the most "
                        "lookups per second, at one index's memory each; a write through any worker is in "
                        "every worker's next lookup)")
    x.add_argument("--threads", type=int, default=0, metavar="N",
                   help="threads per batch of lookups (default 0: the cores divided among the workers)")
    for name, text in (("add-key", "create an API key; prints it once"), ("remove-key", "remove an API key")):
        x = hsub.add_parser(name, help=text, epilog=f"example: ncii-hash matcher {name} bank.db moderation-tool")
        x.add_argument("bank")
        x.add_argument("name")
    h.set_defaults(func=cmd_matcher)


def cmd_matcher(args: argparse.Namespace) -> int:
    from .._util.http import is_loopback_host
    from ..bank.store import open_database
    from ..index import backend_names
    from ..service.access import StoreAccess
    from ..service.matcher import DEFAULT_BACKEND, Matcher, MatcherSettings
    from ..service.matcher.matcher import DEFAULT_POLL_SECONDS
    from ..service.matcher.keys import ApiKeys
    from ..service.matcher.server import serve

    if args.action == "serve":
        backend = args.backend or DEFAULT_BACKEND
        if backend not in backend_names():
            raise UsageError(f"--backend must be one of {', '.join(sorted(backend_names()))}")
        if args.poll is None:
            args.poll = DEFAULT_POLL_SECONDS
        if not args.poll > 0:
            raise UsageError("--poll must be positive")
        if args.threads < 0:
            raise UsageError("--threads must be 0 (all cores) or more")
        if not 1 <= args.workers <= 64:
            raise UsageError("--workers must be between 1 and 64")
        if args.workers > 1 and not hasattr(os, "fork"):
            raise UsageError("--workers above 1 needs a system with fork() (Linux, macOS)")
        threads = args.threads or (max(1, (os.cpu_count() or 1) // args.workers) if args.workers > 1 else 0)
        open_database(args.bank, create=False).close()  # a missing or foreign bank is a usage error now
        loopback = is_loopback_host(args.host)
        settings = MatcherSettings(backend=backend, poll_seconds=args.poll, require_key_for_writes=args.require_keys or not loopback,
                                   require_key_for_matching=args.keys_for_matching, fetch_allow=tuple(args.fetch_allow),
                                   threads=threads, snapshot_dir=args.snapshot_dir)
        try:
            serve(lambda worker: Matcher(args.bank, dataclasses.replace(settings, worker=worker.index),
                                         board=worker.board),
                  host=args.host, port=args.port, workers=args.workers)
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})") from None
        return EXIT_OK
    access = StoreAccess(open_database(args.bank, create=False))
    try:
        keys = ApiKeys(access)
        if args.action == "add-key":
            if not args.name.strip():
                raise UsageError("a key name must not be empty")
            token = keys.add(args.name)
            if token is None:
                raise UsageError(f"a key named {args.name!r} exists already")
            print(token)
            print("keep this key: the matcher stores only its SHA-256 and cannot show it again", file=sys.stderr)
            return EXIT_OK
        if not keys.remove(args.name):
            print(f"ncii-hash: no key named {args.name!r}", file=sys.stderr)
            return EXIT_SOME_FAILED
        print(f"ncii-hash matcher: removed key {args.name}")
        return EXIT_OK
    finally:
        access.close()
