"""Running the hub on uvicorn (:func:`ncii_hash.service.web.serve_app`): bind (127.0.0.1
unless told otherwise), print the address once, serve with uvicorn's access log off (the app
logs its own path-free line)."""

from __future__ import annotations

import sys
from typing import TextIO

from ..web import serve_app
from .app import create_hub_app
from .context import HubSettings
from .store import HubStore


def serve(store: HubStore, settings: HubSettings, *, host: str = "127.0.0.1", port: int = 8000,
          out: TextIO = sys.stdout) -> None:
    """Serve until interrupted. The listening socket is bound before the address line is
    printed, so a client that read the line can connect at once."""
    serve_app(lambda _worker: create_hub_app(store, settings), host=host, port=port, loggers=["ncii_hash.hub"], out=out,
              banner=lambda address: f"ncii-hash hub: serving {address} (partner API at {address}/v1)")
