"""Running the hub on uvicorn: bind (127.0.0.1 unless told otherwise), print the address once,
serve with uvicorn's access log off (the app logs its own path-free line)."""

from __future__ import annotations

import logging
import socket
import sys
from typing import TextIO

from .app import create_hub_app
from .context import HubSettings
from .store import HubStore


def serve(store: HubStore, settings: HubSettings, *, host: str = "127.0.0.1", port: int = 8000,
          out: TextIO = sys.stdout) -> None:
    """Serve until interrupted. The listening socket is bound before the address line is
    printed, so a client that read the line can connect at once."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket says it is TCP; without it every answer on a reused connection waits ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    address = f"http://{shown}:{bound_port}"
    _configure_logging()
    app = create_hub_app(store, settings)
    config = uvicorn.Config(app, access_log=False, log_config=None, log_level="warning",
                            server_header=False, proxy_headers=False)
    print(f"ncii-hash hub: serving {address} (partner API at {address}/v1)", file=out, flush=True)
    uvicorn.Server(config).run(sockets=[sock])


def _configure_logging() -> None:
    """The hub's lines (and uvicorn's warnings) to stderr, in one plain format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name, level in (("ncii_hash.hub", logging.INFO), ("uvicorn", logging.WARNING), ("uvicorn.error", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True
