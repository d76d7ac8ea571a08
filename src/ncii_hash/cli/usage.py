"""What every command shares: the exit codes, the usage error, and how a path is shown.

Exit codes: 0 success, 1 some inputs failed (the rest were processed), 2 usage error.
"""

from __future__ import annotations

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The command cannot run as asked; the message tells the user what to change (exit 2)."""


def shown(path: object) -> str:
    """A path for printing: bytes that are not UTF-8 (kept by Python as surrogates) are shown
    escaped, e.g. \\xff, so output never fails on an odd file name."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
