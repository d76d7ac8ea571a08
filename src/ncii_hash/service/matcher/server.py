"""Running the matcher on uvicorn (:func:`ncii_hash.service.web.serve_app`): bind first, print
the address once, open the bank in the background (``/status`` is 503 until the index is
ready), serve with uvicorn's access log off -- from one process, or from ``workers`` forked
processes on the same port, each with its own :class:`Matcher` (``make_matcher(worker)``)."""

from __future__ import annotations

import sys
from typing import Callable, TextIO

from ..web import serve_app
from ..workers import Worker
from .app import create_matcher_app
from .matcher import Matcher


#: The GIL hand-over interval while serving. The lookup batcher's thread gives the GIL up at
#: every store query and kernel call; with the default 5 ms, each time it waits behind the busy
#: event loop for up to 5 ms, so a batch of a few milliseconds' work took tens (convoy effect).
SWITCH_INTERVAL = 0.0002


def serve(make_matcher: Callable[[Worker], Matcher], *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          out: TextIO = sys.stdout) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL)
    serve_app(lambda worker: create_matcher_app(make_matcher(worker)), host=host, port=port,
              loggers=["ncii_hash.matcher"], out=out, workers=workers,
              banner=lambda address: f"ncii-hash matcher: serving {address} (HMA 2.0 API)")
