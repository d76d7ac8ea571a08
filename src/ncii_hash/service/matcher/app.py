"""The matcher's ASGI app: ``create_matcher_app(matcher)``, HMA 2.0's routes and shapes.

Thin: routers per concern (health, hashing and matching; curation), dependencies for the
matcher and the API keys; the matcher and its catalog know nothing of HTTP. Every error is
HMA's ``{"message": text}`` with its status (HMA answers a malformed request with 400, a
missing required parameter with 422); a store that cannot be reached is 503 + Retry-After.
The request log and body limit are the services' shared ones (:mod:`ncii_hash.service.web`):
one line per request with the route *template*, never a path, hash or content id (for the hot
routes, one line per second with the count).
"""

from __future__ import annotations

import contextlib
import logging
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...errors import StoreUnavailableError
from ..web import BodyLimit, RequestLog
from .matcher import Matcher
from .routes_curation import router as curation_router
from .hot_routes import HotRoutes
from .routes_match import HOT_ROUTES, h_router, m_router, router as health_router

log = logging.getLogger("ncii_hash.matcher")
JSON_LIMIT = 1024 * 1024  #: bodies of routes that take JSON


def create_matcher_app(matcher: Matcher) -> RequestLog:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not matcher.ready:
            matcher.open_in_background()
        try:
            yield
        finally:
            matcher.close()

    app = FastAPI(title="ncii-hash matcher (HMA 2.0 compatible)", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.matcher = matcher
    for router in (health_router, h_router, m_router, curation_router):
        app.include_router(router)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StoreUnavailableError, _unavailable)
    app.add_exception_handler(Exception, _internal)
    upload = matcher.settings.max_upload_bytes
    app.add_middleware(BodyLimit, error_key="message",
                       limit_for=lambda path: upload if path in UPLOAD_PATHS or path.endswith("/content") else JSON_LIMIT)
    # Outside the FastAPI app, so a hot route skips its per-request work (routing, telemetry
    # checks, the middleware stack) as well; the request log sees every request.
    return RequestLog(HotRoutes(app, app, HOT_ROUTES), log=log, summarized=frozenset(path for _, path in HOT_ROUTES))


UPLOAD_PATHS = ("/h/hash", "/m/lookup")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "error"
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route"
    elif exc.status_code == 405:
        message = "method not allowed on this route"
    return JSONResponse({"message": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    parts = []
    for e in errors[:3]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "path", "query"))
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
    return JSONResponse({"message": "; ".join(parts) or "invalid request"}, status_code=422)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"message": "the matcher's store is unavailable; retry"}, status_code=503,
                        headers={"Retry-After": "1"})


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error("internal error (%s)", exc.__class__.__name__)  # the class only: no data reaches the log
    return JSONResponse({"message": "internal error"}, status_code=500)
