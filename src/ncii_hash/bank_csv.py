"""Parsing of hash exchange CSV files (``pdq,quality,case_id,kind,item``) for HashBank.import_.

Strict on purpose: any malformed row raises BankError naming the file and line, before
anything is written.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .bank_schema import CASE_ID_PATTERN, MEDIA_KINDS, BankError, _new_case_id
from .hashes import PDQ_HASH_BYTES, PDQ_MIN_QUALITY, from_hex


def parse_hash_csv(p: Path, *, allow_low_quality: bool) -> tuple[list, dict]:
    """(case ids in file order, {case id: (codes, qualities, kinds, items)}) of a CSV file."""
    allow = allow_low_quality
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such file") from None
    except OSError as exc:
        raise BankError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise BankError(f"{p}: not a UTF-8 text file ({exc})") from None
    groups: dict = {}
    order: list = []
    anonymous = _new_case_id()
    reader = csv.reader(io.StringIO(text), strict=True)
    for lineno, row in _csv_rows(reader, p):
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if lineno == 1 and row[0].strip().lower() in ("pdq", "hash", "signal", "pdq_hash"):
            continue
        where = f"{p}, line {lineno}"
        hexs = row[0].strip()
        try:
            raw = bytes.fromhex(hexs) if len(hexs) == 64 else b""
        except ValueError:
            raw = b""
        if len(raw) != PDQ_HASH_BYTES:
            try:
                from_hex(hexs)  # for its precise message
            except ValueError as exc:
                raise BankError(f"{where}: {exc}") from None
            raise BankError(f"{where}: {hexs!r} is not 64 hex characters")
        code = raw
        quality = 100
        if len(row) > 1 and row[1].strip():
            field = row[1].strip()
            if not (field.isascii() and field.isdigit()):
                raise BankError(f"{where}: quality {row[1]!r} is not an integer 0..100")
            quality = int(field)
            if not 0 <= quality <= 100:
                raise BankError(f"{where}: quality {quality} is outside 0..100")
        if quality < PDQ_MIN_QUALITY and not allow:
            raise BankError(f"{where}: quality {quality} is below {PDQ_MIN_QUALITY} (use allow_low_quality)")
        cid = row[2].strip() if len(row) > 2 and row[2].strip() else anonymous
        if not CASE_ID_PATTERN.match(cid):
            raise BankError(f"{where}: case id {cid!r} must be 1-128 characters from A-Z a-z 0-9 _ . : -")
        kind = row[3].strip() if len(row) > 3 and row[3].strip() else "image"
        if kind not in MEDIA_KINDS:
            raise BankError(f"{where}: kind {kind!r} must be one of {MEDIA_KINDS}")
        item = 0
        if len(row) > 4 and row[4].strip():
            field = row[4].strip()
            if not (field.isascii() and field.isdigit()):
                raise BankError(f"{where}: item {row[4]!r} is not an integer")
            item = int(field)
            if item < 0 or (item == 0) != (kind == "image"):
                raise BankError(f"{where}: item must be 0 for images and >= 1 for video frames")
        elif kind == "video_frame":
            item = 1
        if len(row) > 5:
            raise BankError(f"{where}: {len(row)} columns; expected at most 5 (pdq,quality,case_id,kind,item)")
        if cid not in groups:
            groups[cid] = ([], [], [], [])
            order.append(cid)
        groups[cid][0].append(code)
        groups[cid][1].append(quality)
        groups[cid][2].append(kind)
        groups[cid][3].append(item)
    if not order:
        raise BankError(f"{p}: no hashes found")
    return order, groups


def _csv_rows(reader: Any, path: Path):
    """(line number, row) pairs; malformed CSV (bad quoting, oversized fields) -> BankError."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise BankError(f"{path}, line {reader.line_num}: malformed CSV ({exc}); nothing imported") from None
        yield reader.line_num, row


