"""HMA 2.0's health, hashing and matching routes: ``/status``, ``/status/live``, ``/h/hash``,
``/m/lookup`` (GET: a signal or a URL; POST: an upload), ``/m/raw_lookup``, ``/m/compare``,
``/m/index/status``. Shapes follow HMA's blueprints (docs/matcher.md): a lookup answers
``{bank: [{"bank_content_id": id, "distance": "d"}]}`` (keyed by signal type first when the
media was hashed here), a raw lookup ``{"matches": [...]}``.

Extra optional parameters HMA clients do not send: ``threshold`` (default 31, inclusive),
``dihedral`` (uploads and URLs: also match the 8 rotations and flips) and ``windows`` (uploads
and URLs, default true: when the bank holds survivors' shared centre hashes, also search the
photo's window variants among them -- slight rotations, caption banners; docs/accuracy.md).
"""

from __future__ import annotations

import random
from typing import Any, Optional

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ...hashes import PDQ_MATCH_THRESHOLD, hamming
from .deps import (ApiError, banks_filter, flag, looker, matcher, off_loop, pdq_codes, ready_matcher, signal_type,
                   threshold)
from .matcher import Hit, Matcher, best_hits
from .media import Hashed, hash_image, uploaded_file
from .refused import Refused

router = APIRouter()
# /m/* and /h/* check API keys inline (``await looker(request)``) rather than as router
# dependencies: FastAPI's dependency machinery costs more than a lookup on the hot path.
m_router = APIRouter(prefix="/m")
h_router = APIRouter(prefix="/h")


@router.get("/status", response_class=PlainTextResponse)
async def status(request: Request) -> PlainTextResponse:
    m = matcher(request)
    if not m.ready:
        return PlainTextResponse("INDEX-NOT-LOADED", status_code=503)
    if m.stale:
        return PlainTextResponse("INDEX-STALE", status_code=503)
    return PlainTextResponse("I-AM-ALIVE")


@router.get("/status/live", response_class=PlainTextResponse)
async def live(request: Request) -> PlainTextResponse:
    return PlainTextResponse("I-AM-ALIVE")


# ---- hashing ----------------------------------------------------------------------------------
async def _hash_upload(request: Request, m: Matcher, *, variants: bool = False) -> Hashed:
    body = await request.body()
    try:
        _, data = uploaded_file(request.headers.get("content-type"), body)
        return await off_loop(_hash, m, data, variants)
    except Refused as exc:
        raise ApiError(exc.status, exc.message) from None


async def _hash_url(m: Matcher, url: str, content_type: Optional[str], types: Optional[str], *,
                    variants: bool = False) -> Hashed:
    if types and any(t not in ("pdq", "") for t in types.split(",")):
        raise ApiError(400, "this matcher hashes photos as pdq only")
    try:
        data = await off_loop(m.fetcher.fetch, url, content_type)
        return await off_loop(_hash, m, data, variants)
    except Refused as exc:
        raise ApiError(exc.status, exc.message) from None


def _hash(m: Matcher, data: bytes, variants: bool) -> Hashed:
    """A lookup's photo: with its window variants when asked for and the bank holds shared windows."""
    return hash_image(data, variants=variants and m.holds_windows())


@h_router.post("/hash")
async def hash_post(request: Request) -> dict:
    await looker(request)
    return {"pdq": (await _hash_upload(request, matcher(request))).hex}


@h_router.get("/hash")
async def hash_get(request: Request, url: Optional[str] = None, content_type: Optional[str] = None,
                   types: Optional[str] = None) -> dict:
    await looker(request)
    if not url:
        raise ApiError(400, "url is required")
    return {"pdq": (await _hash_url(matcher(request), url, content_type, types)).hex}


# ---- matching ---------------------------------------------------------------------------------
async def _hits(m: Matcher, hashed_or_codes: Any, radius: int, dihedral: bool) -> list[Hit]:
    if isinstance(hashed_or_codes, Hashed):
        if hashed_or_codes.codes is None:
            return []  # below quality 50: no hash, so no match (python-threatexchange gives "")
        queries = hashed_or_codes.dihedral if dihedral else hashed_or_codes.codes
    else:
        queries, dihedral = hashed_or_codes, False
    rows = await m.lookup_async(queries, radius=radius, dihedral=dihedral)
    if isinstance(hashed_or_codes, Hashed) and hashed_or_codes.windows is not None:
        h = hashed_or_codes
        return best_hits([rows[0], await off_loop(m.variant_hits, h.frames, h.windows, radius)])
    return rows[0]


def _by_bank(hits: list[Hit], banks: Optional[set[str]], seed: Optional[str], bypass: bool) -> dict[str, list[dict]]:
    """HMA's lookup: enabled content only; a bank answers when its matching_enabled_ratio is
    at least the request's coin flip (seeded by ``seed``; 0 with ``bypass_coinflip``)."""
    live = [h for h in hits if h.enabled and h.bank is not None]
    if not live:
        return {}
    coin = 0.0  # a ratio of 1.0 passes any flip in [0, 1): flip only when some bank needs it
    if not bypass and any(h.ratio < 1.0 for h in live):
        coin = random.random() if seed is None else random.Random(seed).random()
    out: dict[str, list[dict]] = {}
    for h in live:
        if h.ratio >= coin and (banks is None or h.bank in banks):
            out.setdefault(str(h.bank), []).append({"bank_content_id": h.content_id, "distance": str(h.distance)})
    return out


@m_router.get("/lookup")
async def lookup_get(request: Request) -> Response:
    """Query parameters (read directly: this is the hot path) -- ``signal_type`` + ``signal``,
    or ``url`` [+ ``content_type``, ``types``]; ``banks``, ``seed``, ``bypass_coinflip``;
    extra: ``threshold``, ``dihedral`` (URL only)."""
    await looker(request)
    q = request.query_params
    st, limit = q.get("signal_type"), threshold(q.get("threshold"), PDQ_MATCH_THRESHOLD)
    bypass, wanted, seed = flag(q.get("bypass_coinflip"), "bypass_coinflip"), banks_filter(q.get("banks")), q.get("seed")
    m = ready_matcher(request)
    if q.get("url"):
        hashed = await _hash_url(m, q["url"], q.get("content_type"), q.get("types"),
                                 variants=flag(q.get("windows"), "windows", True))
        hits = await _hits(m, hashed, limit, flag(q.get("dihedral"), "dihedral"))
        by_bank = _by_bank(hits, wanted, seed, bypass)
        if st is not None:  # HMA: the one signal type's matches, unwrapped
            return JSONResponse(by_bank if st == "pdq" else {})
        return JSONResponse({"pdq": by_bank})
    signal = q.get("signal")
    if not signal or not st:
        raise ApiError(400, "Either url or both signal and signal_type are required")
    signal_type(st)
    codes = pdq_codes(signal)
    return JSONResponse(_by_bank(await _hits(m, codes, limit, False), wanted, seed, bypass))


@m_router.post("/lookup")
async def lookup_post(request: Request) -> dict:
    await looker(request)
    q = request.query_params
    m = ready_matcher(request)
    limit, dihedral = threshold(q.get("threshold"), PDQ_MATCH_THRESHOLD), flag(q.get("dihedral"), "dihedral")
    hashed = await _hash_upload(request, m, variants=flag(q.get("windows"), "windows", True))
    hits = await _hits(m, hashed, limit, dihedral)
    return {"pdq": _by_bank(hits, banks_filter(q.get("banks")), q.get("seed"),
                            flag(q.get("bypass_coinflip"), "bypass_coinflip"))}


@m_router.get("/raw_lookup")
async def raw_lookup(request: Request) -> Response:
    """Every banked item within the threshold, enabled or not (HMA: the index alone)."""
    await looker(request)
    q = request.query_params
    for name in ("signal", "signal_type"):
        if not q.get(name):
            raise ApiError(422, f"{name} is required")
    signal_type(q.get("signal_type"))
    codes = pdq_codes(q.get("signal"))
    limit = threshold(q.get("threshold"), PDQ_MATCH_THRESHOLD)
    with_distance = flag(q.get("include_distance"), "include_distance")
    hits = await _hits(ready_matcher(request), codes, limit, False)
    wanted = banks_filter(q.get("banks"))
    if wanted is not None:
        hits = [h for h in hits if h.bank in wanted]
    if with_distance:
        return JSONResponse({"matches": [{"bank_content_id": h.content_id, "distance": str(h.distance)} for h in hits]})
    return JSONResponse({"matches": [h.content_id for h in hits]})


@m_router.post("/compare")
async def compare(request: Request) -> dict:
    await looker(request)
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "Request input was not a dict") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request input was not a dict")
    out: dict[str, Any] = {}
    for name, pair in body.items():
        if not isinstance(pair, list):
            raise ApiError(400, f"Comparison hashes for {name} was not a list")
        if len(pair) != 2:
            raise ApiError(400, "Comparison hash list length must be exactly 2")
        signal_type(name)
        if not all(isinstance(x, str) for x in pair):
            raise ApiError(400, f"Invalid {name} hash: hashes are strings")
        left, right = (pdq_codes(x, f"{name} hash") for x in pair)
        distance = int(hamming(left[0], right[0]))
        out[name] = [distance <= PDQ_MATCH_THRESHOLD, {"distance": distance}]
    return out


@m_router.get("/index/status")
async def index_status(request: Request) -> dict:
    await looker(request)
    st = request.query_params.get("signal_type")
    if st is not None:
        signal_type(st)
    return {"pdq": matcher(request).index_status()}


#: The routes clients and load balancers call most, served by HotRoutes (app.py) without the
#: framework's routing: each takes the request alone and reads its query parameters itself.
HOT_ROUTES = {("GET", "/status"): status, ("GET", "/status/live"): live, ("GET", "/m/lookup"): lookup_get,
              ("GET", "/m/raw_lookup"): raw_lookup}
