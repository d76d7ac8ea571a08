"""What the local app holds while the page is open, in memory only: the hashed items (hashes,
qualities and thumbnails -- never a file's bytes or name), the submission last shown to the
survivor (saved and submitted exactly as shown), the files of the folder the app was started
with, and when the page was last heard from (the app stops when the page has gone quiet).

Thread-safety: one lock guards the items; the page is one user's, so contention is nil.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ...submission import make_submission
from .hashing import HashedMedia, Refused, image_window

MAX_ITEMS = 10_000  #: hashed items kept at once
#: The page sends a heartbeat every HEARTBEAT_SECONDS; a page not heard from for
#: PAGE_GONE_SECONDS is taken as closed (browsers slow timers in background tabs to once a
#: minute, so this is well above a minute).
HEARTBEAT_SECONDS = 10
PAGE_GONE_SECONDS = 150
#: With no request at all for this long (the page never opened, or left open and asleep), the
#: app stops: ``ncii-hash app --idle-minutes``.
DEFAULT_IDLE_SECONDS = 30 * 60


class AppState:
    def __init__(self, *, folder_files: Sequence[Path] = (), hub: str = "",
                 idle_seconds: float = DEFAULT_IDLE_SECONDS, page_gone_seconds: float = PAGE_GONE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.folder_files = list(folder_files)
        self.hub = hub
        self.idle_seconds = idle_seconds
        self.page_gone_seconds = page_gone_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[str, HashedMedia] = {}
        self._submission: Optional[str] = None
        self._last_request = clock()
        self._last_heartbeat: Optional[float] = None
        self._busy = 0

    # ---- items ------------------------------------------------------------------------------------
    def add(self, media: HashedMedia) -> str:
        with self._lock:
            if len(self._items) >= MAX_ITEMS:
                raise Refused("too_many")
            item_id = secrets.token_hex(8)
            self._items[item_id] = media
            return item_id

    def forget(self, ids: Sequence[str]) -> None:
        with self._lock:
            for i in ids:
                self._items.pop(i, None)
            self._submission = None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._submission = None

    def build_submission(self, ids: Sequence[str], *, features: bool, windows: bool = False) -> Optional[str]:
        """The submission of the items ``ids`` (those still known), as the exact text that is
        shown, saved and sent; None when none of them is known. ``windows``: include the centre
        window hashes of the pictures that have one (hashed with the opt-in on; version 3)."""
        with self._lock:
            chosen = [self._items[i] for i in dict.fromkeys(ids) if i in self._items]
            if not chosen:
                self._submission = None
                return None
            images = [m for m in chosen if m.kind == "image" and m.pdq is not None]
            hashes = [m.pdq for m in images if m.pdq is not None]  # all of them (narrowed for mypy)
            shared = [image_window(k, m) for k, m in enumerate(images)] if windows else []
            sub = make_submission(np.stack(hashes) if hashes else np.zeros((0, 32), np.uint8), [m.quality for m in images],
                                  videos=[m.video for m in chosen if m.video is not None],
                                  features=[m.features for m in images if features and m.features],
                                  windows=[w for w in shared if w is not None])
            self._submission = json.dumps(sub.to_dict(), indent=2) + "\n"
            return self._submission

    @property
    def submission(self) -> Optional[str]:
        return self._submission

    # ---- liveness ---------------------------------------------------------------------------------
    def request_started(self) -> None:
        with self._lock:
            self._busy += 1
            self._last_request = self._clock()

    def request_ended(self) -> None:
        with self._lock:
            self._busy -= 1
            self._last_request = self._clock()

    def heartbeat(self) -> None:
        self._last_heartbeat = self._clock()

    def should_stop(self) -> bool:
        """The page was closed (no heartbeat for a while) or nothing happened for the idle time."""
        with self._lock:
            if self._busy:
                return False
            quiet = self._clock() - self._last_request  # heartbeats are requests too
            return quiet > (self.page_gone_seconds if self._last_heartbeat is not None else self.idle_seconds)
