"""``ncii-hash app [FOLDER]``: the survivor's local web page (docs/app.md).

Serves a page on 127.0.0.1 only, opens it in the default browser and prints its one-time
address; hashing happens in this process. With FOLDER, the page offers the pictures and videos
in it (and its subfolders) as well as files chosen in the page. The app opens no connection
except to the hub the survivor names (``--hub`` or typed in the page).
"""

from __future__ import annotations

import argparse
import os

from .._util.http import check_base_url
from .inputs import InputWalk
from .usage import EXIT_OK, UsageError, shown


def add_app_parser(sub: "argparse._SubParsersAction") -> None:
    a = sub.add_parser("app", help="open a page on this computer to hash pictures and videos, and send only the "
                                   "hashes to a hub if you choose",
                       epilog="example: ncii-hash app ~/Pictures/private --hub https://hub.example.org")
    a.add_argument("folder", nargs="?", help="a folder whose pictures and videos the page offers (optional)")
    a.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: any free port)")
    a.add_argument("--no-browser", dest="browser", action="store_false",
                   help="do not open a browser; open the printed address yourself")
    a.add_argument("--hub", default="", help="the hub's address, filled in on the page (https://..., or http:// "
                                             "to this computer only)")
    a.add_argument("--idle-minutes", type=float, default=30.0,
                   help="stop after this many minutes without any request (default 30); the app also stops "
                        "about 2.5 minutes after the page is closed")
    a.set_defaults(func=cmd_app)


def cmd_app(args: argparse.Namespace) -> int:
    try:
        from ..service.app import run_app
    except ImportError as exc:
        raise UsageError(f"the app needs FastAPI and uvicorn ({exc.name or exc}): pip install 'ncii-hash[app]'") from None
    hub = ""
    if args.hub:
        try:
            hub = check_base_url(args.hub)
        except ValueError as exc:
            raise UsageError(f"--hub: {exc}") from None
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be 0..65535 (0: any free port)")
    if not args.idle_minutes > 0:
        raise UsageError("--idle-minutes must be positive")
    files = []
    if args.folder:
        walk = InputWalk(recursive=True)
        if not os.path.isdir(args.folder):
            raise UsageError(f"{shown(args.folder)} is not a folder")
        files = list(walk.files([args.folder]))
    try:
        run_app(folder_files=files, hub=hub, port=args.port, open_browser=args.browser,
                idle_seconds=args.idle_minutes * 60)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror or exc})") from None
    except KeyboardInterrupt:
        pass
    return EXIT_OK
