"""The hot routes without the framework's per-request machinery.

HMA clients call ``GET /m/lookup`` (and load balancers ``/status``, ``/status/live``) far more
often than anything else. Through FastAPI each such request pays for matching its path against
every route in turn, solving the endpoint's dependencies and the exception middleware -- on the
2-core target that was more CPU than a lookup at 1M hashes. :class:`HotRoutes` sits in front of
the app: a request whose method and exact path name one of its endpoints calls that endpoint
directly, with a Starlette ``Request`` over the same scope; everything else goes to the app.

The endpoints are the app's own route functions (``endpoint(request) -> Response``), so there
is one implementation of each route, and its errors go through the app's own exception
handlers (found by the exception's class, as Starlette does), so an answer is byte for byte
what the framework path gives. ``scope["route"]`` names the path, so the request log still
names the route template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class _Route:
    path: str


class HotRoutes:
    """ASGI: ``(method, path)`` in ``endpoints`` -> that endpoint; anything else -> ``inner``."""

    def __init__(self, inner: Any, fastapi_app: FastAPI, endpoints: dict[tuple[str, str], Endpoint]):
        self.inner = inner
        self.app = fastapi_app
        self.endpoints = endpoints
        #: what RequestLog reads a route's template from (hot paths have no path parameters)
        self.routes = {key: _Route(key[1]) for key in endpoints}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            key = (scope["method"], scope["path"])
            endpoint = self.endpoints.get(key)
            if endpoint is not None:
                scope["app"] = self.app
                scope["route"] = self.routes[key]
                request = Request(scope, receive, send)
                try:
                    response = await endpoint(request)
                except Exception as exc:  # noqa: BLE001 - answered by the app's own handler
                    response = await self._handled(request, exc)
                await response(scope, receive, send)
                return
        await self.inner(scope, receive, send)

    async def _handled(self, request: Request, exc: Exception) -> Response:
        handlers = self.app.exception_handlers
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                return await handler(request, exc)
        raise exc  # pragma: no cover - the app registers a handler for Exception
