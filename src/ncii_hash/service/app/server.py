"""Running the local app: bind 127.0.0.1 (a free port with ``port=0``) first, make the keys for
that port, print the one address line with the token, open the default browser unless told
not to, and serve until the page is closed or the app has been idle (:mod:`.state`)."""

from __future__ import annotations

import sys
import threading
import webbrowser
from pathlib import Path
from typing import Sequence, TextIO

from ..web import configure_logging, listening_socket
from .routes import create_app
from .security import AppKeys
from .state import DEFAULT_IDLE_SECONDS, AppState

HOST = "127.0.0.1"  #: never anything else: the app is for this computer only


def run_app(*, folder_files: Sequence[Path] = (), hub: str = "", port: int = 0, open_browser: bool = True,
            idle_seconds: float = DEFAULT_IDLE_SECONDS, out: TextIO = sys.stdout) -> None:
    """Serve the app until the page is closed, the idle time passes, or Ctrl-C."""
    import uvicorn

    sock, address = listening_socket(HOST, port)
    keys = AppKeys(port=sock.getsockname()[1])
    state = AppState(folder_files=folder_files, hub=hub, idle_seconds=idle_seconds)
    configure_logging(["ncii_hash.app"])
    server: list = []
    app = create_app(state, keys, on_idle=lambda: setattr(server[0], "should_exit", True))
    # Access log off, no server header, proxies not trusted: as every service (web.serve_app).
    config = uvicorn.Config(app, access_log=False, log_config=None, log_level="warning",
                            server_header=False, proxy_headers=False)
    server.append(uvicorn.Server(config))
    url = f"{address}/?token={keys.token}"
    print(f"ncii-hash app: open {url}", file=out, flush=True)
    if open_browser:  # in a thread: a text-mode browser would otherwise wait for a server not yet serving
        threading.Thread(target=webbrowser.open, args=(url,), name="open-browser", daemon=True).start()
    server[0].run(sockets=[sock])
