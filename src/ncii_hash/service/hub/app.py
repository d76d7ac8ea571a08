"""The hub's FastAPI app: ``create_hub_app(store, settings)``.

Thin by design: routers per concern (survivors' cases, the partner feed), dependencies for
the store and the partner's keys, pydantic models for bodies; the store knows nothing of
HTTP. Two ASGI middlewares wrap it: the body limit (413 before a byte too many is read) and
the one log line per request -- method, route *template*, status, duration -- because paths
carry case numbers and nothing the hub logs may carry a case number, PIN, hash or client
address (uvicorn's own access log is off).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, AsyncIterator

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ...errors import StoreUnavailableError

from .cases_routes import router as cases_router
from .context import HubContext, HubSettings
from .partner_routes import router as partner_router
from .store import HubStore

log = logging.getLogger("ncii_hash.hub")


def create_hub_app(store: HubStore, settings: HubSettings = HubSettings()) -> FastAPI:
    context = HubContext(store, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_maintain(context))
        try:
            yield
        finally:
            task.cancel()

    app = FastAPI(title="ncii-hash hub", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.hub = context
    app.include_router(cases_router)
    app.include_router(partner_router)
    app.add_exception_handler(StoreUnavailableError, _unavailable)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(BodyLimit, submission_bytes=settings.max_submission_bytes,
                       partner_bytes=settings.max_partner_bytes)
    app.add_middleware(RequestLog)
    return app


async def _maintain(context: HubContext) -> None:
    while True:
        try:
            await run_in_threadpool(context.maintain)
        except StoreUnavailableError:
            pass
        except Exception:  # noqa: BLE001 - keep the server up; say so without any data
            log.error("maintenance failed (will retry)")
        await asyncio.sleep(context.settings.maintenance_seconds)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "the hub's store is unavailable; retry"}, status_code=503,
                        headers={"Retry-After": "1"})


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"detail": "the body is not valid JSON"}, status_code=400)
    parts = []
    for e in errors[:3]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
    return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyLimit:
    """413 for bodies over the limit: survivors' submissions, partners' posts (under /v1)."""

    def __init__(self, app: Any, submission_bytes: int, partner_bytes: int):
        self.app = app
        self.submission_bytes = submission_bytes
        self.partner_bytes = partner_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.partner_bytes if scope["path"].startswith("/v1/") else self.submission_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                response = JSONResponse({"detail": f"request body larger than {limit} bytes"}, status_code=413)
                await response(scope, receive, send)
                return
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


class RequestLog:
    """One line per request: method, route template (never the path), status, milliseconds."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(no route)"
            log.info("%s %s %d %.1fms", scope.get("method", "-"), template, status[0],
                     (time.perf_counter() - started) * 1000)
