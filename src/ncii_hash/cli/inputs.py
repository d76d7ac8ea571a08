"""Finding, describing and reading the command line's inputs: image and video files in
folders (links and unreadable folders reported, never fatal), hash lists, the progress bar,
and the usage error every command raises. Used by :mod:`ncii_hash.cli`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..hash_lists import HASH_LIST_SUFFIXES, read_hash_list  # noqa: F401
from ..image.io import IMAGE_SUFFIXES

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".3gp", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".ts"})


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def hash_videos(paths: list, args: argparse.Namespace) -> list:
    """[(path, VideoHash or None, reason or None)] -- one bad video never stops the rest."""
    out = []
    for p in paths:
        try:
            from ..video.vpdq import hash_video

            vh = hash_video(p, seconds_per_hash=args.seconds_per_hash, threads=args.threads)
            out.append((p, vh, None))
        except ImportError as exc:
            out.append((p, None, str(exc)))
        except ValueError as exc:  # VideoError and bad options
            out.append((p, None, getattr(exc, "reason", None) or str(exc)))
        if not args.quiet and len(paths) > 1 and sys.stderr.isatty():
            sys.stderr.write(f"\rvideos: {len(out)}/{len(paths)}")
            if len(out) == len(paths):
                sys.stderr.write("\n")
    return out

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def shown(path: object) -> str:
    """A path for printing: bytes that are not UTF-8 (kept by Python as surrogates) are shown
    escaped, e.g. \\xff, so output never fails on an odd file name."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


UNLISTED_FOLDERS: list = []  # folders a walk could not list (reported; they make the exit status 1)


def iter_inputs(paths: Sequence[str], recursive: bool) -> Iterator[Path]:
    """Files named directly, and the image files in named folders (sorted, no symlink loops)."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            seen: set = set()
            yield from _walk(p, recursive, seen)
        else:
            yield p  # missing or unreadable files are reported by the hasher


def _walk(folder: Path, recursive: bool, seen: set) -> Iterator[Path]:
    try:
        key = folder.resolve()
    except (OSError, RuntimeError):
        return
    if key in seen:
        return
    seen.add(key)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        print(f"ncii-hash: {shown(folder)}: cannot list folder ({exc.strerror})", file=sys.stderr)
        UNLISTED_FOLDERS.append(str(folder))
        return
    for e in entries:
        path = Path(e.path)
        try:
            is_dir = e.is_dir()
        except OSError:  # e.g. a link that points at itself
            is_dir = False
        if is_dir:
            if recursive:
                yield from _walk(path, recursive, seen)
        elif path.suffix.lower() in IMAGE_SUFFIXES or is_video(path):
            # Regular files, and also dangling or looping links with an image name:
            # the hasher reports those by name instead of skipping them silently.
            yield path


class Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal and N > 1)."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.enabled = enabled and total > 1 and sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def read_hash_file(path: Path) -> np.ndarray:
    try:
        return read_hash_list(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read hash list: {exc}") from None
