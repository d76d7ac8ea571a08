"""Progress on stderr (tqdm: count, rate and time left), for hashing images and videos.

Shown only when it helps a person watching: stderr is a terminal, there is more than one
item, and the user did not ask for quiet (``-q``). Never on stdout, which carries results.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Optional

from tqdm import tqdm


class ProgressBar:
    """A tqdm bar that is also the ``progress(done, total)`` callback of ``pdq_hash_many``
    (called from the thread that runs the batch)."""

    def __init__(self, total: int, *, unit: str, quiet: bool, desc: Optional[str] = None):
        stream = sys.stderr  # looked up per bar: tests and callers may replace sys.stderr
        shown = not quiet and total > 1 and _is_terminal(stream)
        self._bar = tqdm(total=total, unit=unit, desc=desc, file=stream, disable=not shown, leave=True,
                         dynamic_ncols=True)

    @property
    def enabled(self) -> bool:
        return not self._bar.disable

    def __call__(self, done: int, total: int) -> None:
        if self.enabled and done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def advance(self, n: int = 1) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
