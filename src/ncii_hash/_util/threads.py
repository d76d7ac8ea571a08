"""The one thread-count default: the cores this process may run on."""

from __future__ import annotations

import os


def default_threads() -> int:
    """Cores available to this process (its CPU affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int) -> int:
    """``threads`` itself, or :func:`default_threads` for 0."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be an int >= 0 (0 = all cores); got {threads!r}")
    return threads or default_threads()
