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
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ...errors import StoreUnavailableError
from ..web import BodyLimit, RequestLog

from .cases_routes import router as cases_router
from .context import HubContext, HubSettings
from .partner_routes import router as partner_router
from .store import HubStore
from .survivor_routes import router as survivor_router

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
    app.include_router(survivor_router)
    app.add_exception_handler(StoreUnavailableError, _unavailable)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(BodyLimit, limit_for=lambda path: settings.max_partner_bytes if path.startswith("/v1/")
                       else settings.max_submission_bytes)  # partners' posts under /v1, else submissions
    app.add_middleware(RequestLog, log=log)
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
