"""``ncii-hash hub init|serve|add-partner|remove-partner``: run the exchange hub (docs/hub.md).

The only commands that start a server. ``add-partner`` prints the partner's keys once, as the
one-line key file python-threatexchange reads (``fetch_key,subscription_key,base_url``); the
hub keeps only their argon2id hashes.
"""

from __future__ import annotations

import argparse
import sys
import time

from .usage import EXIT_OK, EXIT_SOME_FAILED, UsageError


def add_hub_parser(sub: "argparse._SubParsersAction") -> None:
    h = sub.add_parser("hub", help="run the exchange hub: survivors' cases and a StopNCII-compatible partner feed")
    hsub = h.add_subparsers(dest="action", required=True)
    x = hsub.add_parser("init", help="create an empty hub store", epilog="example: ncii-hash hub init hub.db")
    x.add_argument("store", help="a file path or a postgresql:// URL")
    x = hsub.add_parser("serve", help="serve the hub (127.0.0.1 unless --host says otherwise)",
                        epilog="example: ncii-hash hub serve hub.db --port 8000")
    x.add_argument("store")
    x.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; put TLS in front)")
    x.add_argument("--port", type=int, default=8000, help="port (0 = any free port; the address is printed)")
    x.add_argument("--pin-cost", default="3,65536", metavar="TIME,MEMORY_KIB",
                   help="argon2id cost for PINs and partner keys (default 3,65536)")
    x.add_argument("--retention-days", type=float, default=30.0,
                   help="delete withdrawn hash values after this many days at the latest (default 30)")
    x = hsub.add_parser("add-partner", help="register a partner; prints its key line once",
                        epilog="example: ncii-hash hub add-partner hub.db example-platform --url https://hub.example/v1")
    x.add_argument("store")
    x.add_argument("name")
    x.add_argument("--url", default="http://127.0.0.1:8000/v1", help="the partner API's base URL for the key line")
    x.add_argument("--pin-cost", default="3,65536", metavar="TIME,MEMORY_KIB")
    x = hsub.add_parser("remove-partner", help="revoke a partner's keys", epilog="example: ncii-hash hub remove-partner hub.db example-platform")
    x.add_argument("store")
    x.add_argument("name")
    h.set_defaults(func=cmd_hub)


def cmd_hub(args: argparse.Namespace) -> int:
    from ..service.hub import HubSettings, SecretCost, open_hub_store
    from ..service.hub.credentials import SecretHasher, new_partner_keys
    from ..service.hub.server import serve

    if args.action == "init":
        open_hub_store(args.store, create=True).close()
        print(f"ncii-hash hub: created {args.store}")
        return EXIT_OK
    if args.action == "serve":
        if args.retention_days <= 0:
            raise UsageError("--retention-days must be positive")
        settings = HubSettings(pin_cost=SecretCost.parse(args.pin_cost), retention_days=args.retention_days)
        with open_hub_store(args.store) as store:
            try:
                serve(store, settings, host=args.host, port=args.port)
            except OSError as exc:
                raise UsageError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})") from None
        return EXIT_OK
    with open_hub_store(args.store) as store:
        if args.action == "add-partner":
            if not args.name.strip() or "," in args.name:
                raise UsageError("a partner name must be non-empty and without commas")
            hasher = SecretHasher(SecretCost.parse(args.pin_cost))
            partner_id, fetch_key, subscription_key = new_partner_keys()
            if not store.partners.add(partner_id, args.name, hasher.hash(fetch_key), hasher.hash(subscription_key),
                                      time.time()):
                raise UsageError(f"a partner named {args.name!r} exists already (names are not reused)")
            print(f"{fetch_key},{subscription_key},{args.url}")
            print("keep this line: the hub cannot show these keys again", file=sys.stderr)
            return EXIT_OK
        if not store.partners.revoke(args.name):
            print(f"ncii-hash: no active partner named {args.name!r}", file=sys.stderr)
            return EXIT_SOME_FAILED
        print(f"ncii-hash hub: revoked {args.name}")
        return EXIT_OK
