"""Parsing of hash exchange CSV files (``pdq,quality,case_id,kind,item``) for HashBank.import_.

Strict on purpose: any malformed row raises BankError naming the file and line, before
anything is written.
"""

from __future__ import annotations

from pathlib import Path

from .records import CASE_ID_PATTERN, MEDIA_KINDS, BankError, new_case_id
from ..hash_lists import hash_list_rows, parse_hash_field
from ..hashes import PDQ_MIN_QUALITY


def parse_hash_csv(p: Path, *, allow_low_quality: bool) -> tuple[list, dict]:
    """(case ids in file order, {case id: (codes, qualities, kinds, items)}) of a CSV file."""
    allow = allow_low_quality
    try:
        rows = hash_list_rows(p)
    except FileNotFoundError:
        raise
    except ValueError as exc:
        raise BankError(f"{exc}; nothing imported") from None
    groups: dict = {}
    order: list = []
    anonymous = new_case_id()
    for lineno, row in rows:
        where = f"{p}, line {lineno}"
        try:
            code = parse_hash_field(row[0], where)
        except ValueError as exc:
            raise BankError(str(exc)) from None
        quality = 100
        if len(row) > 1 and row[1].strip():
            quality = _whole_number(row[1], where, "quality", "an integer 0..100")
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
            item = _whole_number(row[4], where, "item", "an integer")
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


def _whole_number(raw: str, where: str, name: str, expected: str) -> int:
    """A field of plain ASCII digits (no sign, no Unicode digits, no underscores) as an int."""
    field = raw.strip()
    if not (field.isascii() and field.isdigit()):
        raise BankError(f"{where}: {name} {raw!r} is not {expected}")
    return int(field)
