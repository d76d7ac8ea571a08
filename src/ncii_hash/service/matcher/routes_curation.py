"""HMA 2.0's curation routes over the bank's named banks (docs/matcher.md): ``/c/banks``,
``/c/bank/{name}`` (GET, PUT, DELETE), ``/c/bank/{name}/signal``, ``/c/bank/{name}/content``
and ``/c/bank/{name}/content/{id}`` (GET, PUT, DELETE), ``/c/signal_type``,
``/c/content_type``. Writes need an API key when the matcher is not bound to loopback.

Content added here is a case of its own in the bank (one image hash); deleting it withdraws
that case, so it stops matching in every matcher process. Content that came from a hub or an
import (banks ``STOPNCII``/``LOCAL``) is removed by withdrawing its case at the source, not here.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from fastapi import APIRouter, Depends, Request

from .catalog import Content, NamedBank
from .deps import SIGNAL_TYPES, ApiError, flag, off_loop, pdq_codes, ready_matcher, writer
from .matcher import Matcher
from .media import CONTENT_TYPES, hash_image, uploaded_file
from .refused import Refused

router = APIRouter(prefix="/c")
write = [Depends(writer)]
FIVE_YEARS = 5 * 365 * 86400


async def _json_object(request: Request, *, required: bool = True) -> dict:
    body = await request.body()
    if not body and not required:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


async def _catalog(m: Matcher, fn: str, *args: Any) -> Any:
    assert m.catalog is not None
    try:
        return await off_loop(getattr(m.catalog, fn), *args)
    except Refused as exc:
        raise ApiError(exc.status, exc.message) from None


def _note(value: Any) -> Optional[str]:
    if not value:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "note should be a string")
    if len(value) > 255:
        raise ApiError(400, "note must be at most 255 characters")
    return value


# ---- banks ------------------------------------------------------------------------------------
@router.get("/banks")
async def banks(request: Request) -> list:
    return [b.as_json() for b in await _catalog(ready_matcher(request), "banks")]


@router.post("/banks", status_code=201, dependencies=write)
async def bank_create(request: Request) -> dict:
    body = await _json_object(request)
    if "name" not in body:
        raise ApiError(422, "name is required")
    ratio = body.get("enabled_ratio")
    if ratio is None:
        ratio = 1.0 if body.get("enabled") is None else (1.0 if body["enabled"] else 0.0)
    return (await _catalog(ready_matcher(request), "create", body["name"], ratio)).as_json()


@router.get("/bank/{bank_name}")
async def bank_show(request: Request, bank_name: str) -> dict:
    bank: Optional[NamedBank] = await _catalog(ready_matcher(request), "bank", bank_name)
    if bank is None:
        raise ApiError(404, f"bank '{bank_name}' not found")
    return bank.as_json()


@router.put("/bank/{bank_name}", dependencies=write)
async def bank_update(request: Request, bank_name: str) -> dict:
    body = await _json_object(request)
    ratio = body.get("enabled_ratio")
    if body.get("enabled") is not None:
        ratio = 1.0 if body["enabled"] else 0.0
        ratio = body["enabled_ratio"] if body.get("enabled_ratio") is not None else ratio
    return (await _catalog(ready_matcher(request), "update", bank_name, body.get("name"), ratio)).as_json()


@router.delete("/bank/{bank_name}", dependencies=write)
async def bank_delete(request: Request, bank_name: str) -> dict:
    m = ready_matcher(request)
    bank: Optional[NamedBank] = await _catalog(m, "bank", bank_name)
    if bank is None:
        return {"message": "Done"}  # HMA: deleting a bank that does not exist succeeds
    if bank.origin is not None:
        raise ApiError(403, f"bank '{bank_name}' holds the cases synced from a hub or imported; "
                            "withdraw cases at their source instead")
    for case_id in await _catalog(m, "api_cases", bank_name):
        await off_loop(m.delete_case, case_id)
    await _catalog(m, "forget", bank_name)
    return {"message": "Done"}


# ---- content ----------------------------------------------------------------------------------
async def _add(m: Matcher, bank_name: str, codes: Any, hex_value: str, note: Optional[str],
               quality: Optional[int] = None) -> dict:
    """HMA's answer ``{"id", "signals"}``, plus the keys its OpenAPI description requires of
    these routes (``message``; ``disable_until_ts`` and ``bank``), so both kinds of client agree."""
    bank: NamedBank = await _catalog(m, "require", bank_name)
    cid = await off_loop(m.add_content, bank_name, codes, quality)
    if note is not None:
        await _catalog(m, "set_note", cid, note)
    return {"id": cid, "signals": {"pdq": hex_value}, "disable_until_ts": 1, "bank": bank.as_json(),
            "message": "Done"}


@router.post("/bank/{bank_name}/signal", dependencies=write)
async def bank_add_signal(request: Request, bank_name: str) -> dict:
    m = ready_matcher(request)
    await _catalog(m, "require", bank_name)
    body = await _json_object(request)
    note = _note(body.pop("note", None))
    if not body:
        raise ApiError(400, "No signals given")
    for name in body:
        if name not in SIGNAL_TYPES:
            raise ApiError(400, f"No such signal type {name}")
    value = body["pdq"]
    if not isinstance(value, str):
        raise ApiError(400, "Invalid pdq signal: a PDQ hash is 64 hexadecimal digits")
    codes = pdq_codes(value, "pdq signal")
    return await _add(m, bank_name, codes, value.strip().lower(), note)


@router.post("/bank/{bank_name}/content", dependencies=write)
async def bank_add_content(request: Request, bank_name: str) -> dict:
    m = ready_matcher(request)
    await _catalog(m, "require", bank_name)
    q = request.query_params
    try:
        if q.get("url"):
            data = await off_loop(m.fetcher.fetch, q["url"], q.get("content_type"))
        else:
            _, data = uploaded_file(request.headers.get("content-type"), await request.body())
        hashed = await off_loop(hash_image, data)
    except Refused as exc:
        raise ApiError(exc.status, exc.message) from None
    if hashed.codes is None:
        raise ApiError(400, f"the photo's PDQ quality is {hashed.quality}, below 50: it would match unrelated images")
    return await _add(m, bank_name, hashed.codes, hashed.hex, None, hashed.quality)


async def _content(m: Matcher, bank_name: str, content_id: int) -> Content:
    await _catalog(m, "require", bank_name)
    content: Optional[Content] = await _catalog(m, "content", content_id)
    if content is None or content.bank != bank_name:
        raise ApiError(404, f"content '{content_id}' not found")
    return content


def _content_json(content: Content, bank: NamedBank, include_signals: bool) -> dict:
    out: dict = {"id": content.content_id, "disable_until_ts": content.disable_until_ts,
                 "original_media_uri": None, "bank": bank.as_json()}
    if include_signals:
        out["signals"] = dict(content.signals)
    if content.note is not None:
        out["note"] = content.note
    return out


@router.get("/bank/{bank_name}/content/{content_id}")
async def bank_get_content(request: Request, bank_name: str, content_id: int) -> dict:
    m = ready_matcher(request)
    content = await _content(m, bank_name, content_id)
    bank = await _catalog(m, "require", bank_name)
    return _content_json(content, bank, flag(request.query_params.get("include_signals"), "include_signals"))


@router.put("/bank/{bank_name}/content/{content_id}", dependencies=write)
async def bank_update_content(request: Request, bank_name: str, content_id: int) -> dict:
    m = ready_matcher(request)
    await _content(m, bank_name, content_id)
    body = await _json_object(request)
    until = body.get("disable_until_ts")
    if until is not None:
        if isinstance(until, bool) or not isinstance(until, (int, str)) or not str(until).isdigit():
            raise ApiError(400, f"Invalid int: '{until}'")
        until = int(until)
        if until > time.time() + FIVE_YEARS:
            raise ApiError(400, "disable_until_ts must be less than 5 years in the future")
    note = _note(body.get("note")) if "note" in body else None
    await _catalog(m, "set_content", content_id, until, note, "note" in body)
    content = await _content(m, bank_name, content_id)
    bank = await _catalog(m, "require", bank_name)
    return {**_content_json(content, bank, False), "collab_metadata": {}, "user_metadata": None,
            "note": content.note, "message": "Done"}


@router.delete("/bank/{bank_name}/content/{content_id}", dependencies=write)
async def bank_delete_content(request: Request, bank_name: str, content_id: int) -> dict:
    m = ready_matcher(request)
    bank: NamedBank = await _catalog(m, "require", bank_name)
    content: Optional[Content] = await _catalog(m, "content", content_id)
    if content is None or content.bank != bank_name:
        return {"deleted": 0, "message": "Done"}
    if bank.origin is not None:
        raise ApiError(403, "content synced from a hub or imported is removed by withdrawing its case at the source")
    withdrawn = await off_loop(m.delete_case, content.case_id)
    return {"deleted": 1 if withdrawn else 0, "message": "Done"}


# ---- configuration ----------------------------------------------------------------------------
@router.get("/signal_type")
async def signal_types() -> list:
    return [{"name": name, "enabled_ratio": ratio} for name, ratio in SIGNAL_TYPES.items()]


@router.get("/content_type")
async def content_types() -> list:
    return [{"name": name, "enabled": enabled} for name, enabled in CONTENT_TYPES.items()]
