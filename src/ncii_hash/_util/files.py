"""Private files: crash-safe owner-only replacement, owner-only creation. The one writer of
every file that holds hashes (banks, index snapshots, submissions, backfill parts).

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


def write_private_bytes(target: os.PathLike | str, data: bytes) -> None:
    """Replace ``target`` with ``data`` atomically, owner-only."""
    with atomic_private_file(target) as f:
        f.write(data)


def create_private_file(path: os.PathLike | str) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (never widens an existing file)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def open_private(path: os.PathLike | str, flags: int) -> int:
    """``os.open`` with mode 0600 and close-on-exec: a file descriptor for a private file."""
    return os.open(path, flags | os.O_CLOEXEC, 0o600)


def unlink_if_exists(path: os.PathLike | str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def private_dir(path: os.PathLike | str) -> Path:
    """``path`` as a directory, created owner-only (0700) with its parents if missing."""
    folder = Path(os.fspath(path))
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder
