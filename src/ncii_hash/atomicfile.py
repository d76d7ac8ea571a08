"""Crash-safe, owner-only file replacement, shared by everything that writes hashes.

The new content goes to a temporary file in the target's folder (mode 0600), is flushed and
fsynced, renamed over the target, and the folder is fsynced so the rename itself is durable.
On any error the temporary file is removed and the previous file stays as it was: a reader
sees either the old file or the new one, never a mix, even if the process dies midway.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_private_file(target: os.PathLike | str, *, text: bool = False) -> Iterator[IO]:
    """``with atomic_private_file(path) as f: f.write(...)`` replaces ``path`` atomically."""
    target = Path(os.fspath(target))
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        # fdopen first: from here the file object owns fd and closes it on any error.
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8", "newline": ""} if text else {})) as f:
            os.fchmod(f.fileno(), 0o600)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_folder(folder)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover - file systems that refuse fsync on folders
        pass
    finally:
        os.close(dir_fd)
