"""The library's exceptions: one base, :class:`NciiHashError`, so a caller can catch
everything ncii_hash raises on purpose in one clause.

Errors about a value the caller gave (a file that is not an image, a malformed submission, a
bad bank row) also derive from ``ValueError``; wrong types raise ``TypeError``; a missing
file raises ``FileNotFoundError``; a missing optional dependency raises ``ImportError``
naming the extra to install.
"""

from __future__ import annotations


class NciiHashError(Exception):
    """Base of every error ncii_hash raises on purpose."""


class _SourceError(NciiHashError, ValueError):
    """An input could not be processed: ``source`` names it, ``reason`` says why."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self):  # keep (source, reason) across pickling (worker processes, Ray)
        return (type(self), (self.source, self.reason))


class ImageError(_SourceError):
    """An image could not be hashed; the message names the input and the reason."""


class VideoError(_SourceError):
    """A video could not be hashed; the message names the file and the reason."""


class SubmissionError(NciiHashError, ValueError):
    """A submission file is malformed; the message says where and how."""


class FeatureError(NciiHashError, ValueError):
    """A local feature set could not be computed or parsed."""


class BankError(NciiHashError, ValueError):
    """Something is wrong with a bank operation's input or the bank itself; nothing was written."""


class FeedError(NciiHashError, ValueError):
    """A hash-exchange feed record or page is malformed; the message names the field."""


class IndexFileError(NciiHashError, ValueError):
    """An index file is foreign, truncated, corrupt or of an unsupported version: rebuild it."""


class StoreUnavailableError(NciiHashError, RuntimeError):
    """The database server could not be reached or the connection was lost (a PostgreSQL
    restart, a killed connection): the open transaction was rolled back (when the loss came
    at commit, its outcome is unknown). Retry later; an HTTP layer answers 503. The message
    never holds the connection's password."""


class ShardUnavailableError(NciiHashError, RuntimeError):
    """A shard stayed unreachable after the allowed restarts; nothing partial was returned."""


__all__ = [
    "NciiHashError",
    "ImageError",
    "VideoError",
    "SubmissionError",
    "FeatureError",
    "BankError",
    "FeedError",
    "IndexFileError",
    "ShardUnavailableError",
    "StoreUnavailableError",
]
