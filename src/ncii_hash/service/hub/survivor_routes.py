"""The survivor's page: ``GET /survivor`` (HTML in the asked or accepted language),
``GET /survivor/static/{name}`` (its scripts, style, words and WebAssembly modules) and
``GET /exit`` (the neutral page of the quick-exit button). See docs/wasm.md.

The page hashes in the browser and calls only this hub's ``/cases`` API; every answer here
carries its strict CSP and the other security headers of
:data:`ncii_hash.service.survivor.page.HEADERS`.
"""

from __future__ import annotations

import functools

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from ..survivor.page import EXIT_PATH, HEADERS, PAGE_PATH, STATIC_PREFIX, SurvivorPage

router = APIRouter(tags=["survivor page"], include_in_schema=False)


@functools.lru_cache(maxsize=1)
def page() -> SurvivorPage:
    """The page's files, read once on first use (a hub that never serves it never reads them)."""
    return SurvivorPage()


@router.get(PAGE_PATH, response_class=HTMLResponse)
def survivor_page(request: Request, lang: str | None = None) -> HTMLResponse:
    p = page()
    chosen = p.language(lang, request.headers.get("accept-language", ""))
    return HTMLResponse(p.render(chosen), headers=HEADERS)


@router.get(STATIC_PREFIX + "{name:path}")
def survivor_static(name: str) -> Response:
    asset = page().static(name)
    if asset is None:
        raise HTTPException(404, "no such file")
    return Response(asset.body, media_type=asset.content_type, headers=HEADERS)


@router.get(EXIT_PATH, response_class=HTMLResponse)
def neutral_page() -> HTMLResponse:
    return HTMLResponse(page().render_exit(), headers=HEADERS)
