"""Running the matcher on uvicorn (:func:`ncii_hash.service.web.serve_app`): bind first, print
the address once, open the bank in the background (``/status`` is 503 until the index is
ready), serve with uvicorn's access log off."""

from __future__ import annotations

import sys
from typing import TextIO

from ..web import serve_app
from .app import create_matcher_app
from .matcher import Matcher


#: The GIL hand-over interval while serving. The lookup batcher's thread gives the GIL up at
#: every store query and kernel call; with the default 5 ms, each time it waits behind the busy
#: event loop for up to 5 ms, so a batch of a few milliseconds' work took tens (convoy effect).
SWITCH_INTERVAL = 0.0002


def serve(matcher: Matcher, *, host: str = "127.0.0.1", port: int = 8000, out: TextIO = sys.stdout) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL)
    serve_app(lambda: create_matcher_app(matcher), host=host, port=port, loggers=["ncii_hash.matcher"], out=out,
              banner=lambda address: f"ncii-hash matcher: serving {address} (HMA 2.0 API)")
