"""Finding and reading the command line's inputs: image and video files named directly or
found in folders (links followed once, dangling links and unreadable folders reported, never
fatal), hash lists, and videos hashed one by one.

A walk's findings live in an :class:`InputWalk` made for one run, so repeated runs in one
process never see each other's unreadable folders.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Sequence

import numpy as np

from ..hash_lists import HASH_LIST_SUFFIXES, read_hash_list
from ..image import IMAGE_SUFFIXES
from ..video import VideoHash, hash_video
from .progress import ProgressBar
from .usage import UsageError, shown

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".3gp", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".ts"})


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


class InputWalk:
    """One run's walk over paths: files named directly, and the image and video files in named
    folders (sorted; each real folder once per named path, so symlink loops end). Folders that cannot be listed
    are reported on stderr as they are met and kept in :attr:`unlisted`."""

    def __init__(self, *, recursive: bool):
        self.recursive = recursive
        self.unlisted: list[str] = []

    def files(self, paths: Sequence[str]) -> Iterator[Path]:
        for raw in paths:
            p = Path(raw)
            if p.is_dir():
                yield from self._walk(p, set())  # a folder named twice is walked twice, as asked
            else:
                yield p  # missing or unreadable files are reported by the hasher

    def _walk(self, folder: Path, seen: set) -> Iterator[Path]:
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
            self.unlisted.append(str(folder))
            return
        for e in entries:
            path = Path(e.path)
            try:
                is_dir = e.is_dir()
            except OSError:  # e.g. a link that points at itself
                is_dir = False
            if is_dir:
                if self.recursive:
                    yield from self._walk(path, seen)
            elif path.suffix.lower() in IMAGE_SUFFIXES or is_video(path):
                # Regular files, and also dangling or looping links with an image name:
                # the hasher reports those by name instead of skipping them silently.
                yield path


def iter_inputs(paths: Sequence[str], recursive: bool) -> Iterator[Path]:
    """The files of a fresh :class:`InputWalk` over ``paths``."""
    return InputWalk(recursive=recursive).files(paths)


@dataclass
class MatchInputs:
    """What ``match`` was given, sorted by kind (folders are searched recursively)."""

    images: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    hash_lists: list[Path] = field(default_factory=list)

    @classmethod
    def find(cls, raw_paths: Sequence[str], walk: InputWalk) -> "MatchInputs":
        found = cls()
        for raw in raw_paths:
            p = Path(raw)
            if p.is_file() and p.suffix.lower() in HASH_LIST_SUFFIXES:
                found.hash_lists.append(p)
                continue
            for f in walk.files([raw]):
                (found.videos if is_video(f) else found.images).append(f)
        return found

    def __bool__(self) -> bool:
        return bool(self.images or self.videos or self.hash_lists)


def read_hash_file(path: Path) -> np.ndarray:
    try:
        return read_hash_list(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read hash list: {exc}") from None


class VideoOutcome(NamedTuple):
    """One video of a batch: its vPDQ hash, or why it has none."""

    path: str
    video_hash: Optional[VideoHash]
    reason: Optional[str]


def hash_videos(paths: Sequence[str], *, seconds_per_hash: float, threads: int, quiet: bool) -> list[VideoOutcome]:
    """Hash each video in turn; one bad video never stops the rest."""
    out = []
    with ProgressBar(len(paths), unit="video", desc="videos", quiet=quiet) as bar:
        for p in paths:
            try:
                out.append(VideoOutcome(p, hash_video(p, seconds_per_hash=seconds_per_hash, threads=threads), None))
            except ImportError as exc:
                out.append(VideoOutcome(p, None, str(exc)))
            except ValueError as exc:  # VideoError and bad options
                out.append(VideoOutcome(p, None, getattr(exc, "reason", None) or str(exc)))
            bar.advance()
    return out
