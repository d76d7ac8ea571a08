"""Hash lists: text files with one PDQ hash (64 hex characters) per row, as ThreatExchange
CSV exports and ``ncii-hash bank export`` write them. The one reader of such files, used by
``ncii-hash match`` (first column only) and by the bank's CSV import (all columns).

Rules: UTF-8 (a BOM is allowed); CSV quoting; blank rows and rows whose first field starts
with ``#`` are skipped; the first row is a header when its first field is one of
:data:`HEADER_NAMES` (any case). A malformed file raises ``ValueError`` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Union

import numpy as np

from .hashes import PDQ_HASH_BYTES, from_hex

#: First fields that mark the first row as a header.
HEADER_NAMES = frozenset({"pdq", "hash", "signal", "pdq_hash"})
#: File endings ``ncii-hash match`` treats as hash lists rather than images.
HASH_LIST_SUFFIXES = frozenset({".txt", ".csv", ".hex", ".pdq"})

PathLike = Union[str, "os.PathLike[str]"]


def hash_list_rows(path: PathLike) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of every data row of the hash list at ``path``.

    Raises FileNotFoundError for a missing file and ValueError (naming the file, and the line
    where it applies) for unreadable, non-UTF-8 or malformed CSV text.
    """
    p = Path(os.fspath(path))
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such file") from None
    except OSError as exc:
        raise ValueError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p}: not a UTF-8 text file ({exc})") from None
    reader = csv.reader(io.StringIO(text), strict=True)
    rows = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:
            raise ValueError(f"{p}, line {reader.line_num}: malformed CSV ({exc})") from None
        lineno = reader.line_num
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if lineno == 1 and row[0].strip().lower() in HEADER_NAMES:
            continue
        rows.append((lineno, row))


def parse_hash_field(field: str, where: str) -> bytes:
    """The 32 bytes of a 64-hex-character field; ValueError naming ``where`` otherwise."""
    text = field.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 2 * PDQ_HASH_BYTES else b""
    except ValueError:
        raw = b""
    if len(raw) != PDQ_HASH_BYTES:
        try:
            from_hex(text)  # for its precise message
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        raise ValueError(f"{where}: {text!r} is not 64 hex characters")  # pragma: no cover - from_hex raised
    return raw


def read_hash_list(path: PathLike) -> np.ndarray:
    """The hashes in the first column of a hash list, ``uint8 (N, 32)`` in file order."""
    rows = hash_list_rows(path)
    raw = b"".join(parse_hash_field(row[0], f"{path}, line {lineno}") for lineno, row in rows)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, PDQ_HASH_BYTES).copy()
