"""The local app's protection against other web pages and other local users' programs, on the
model of a notebook server on localhost (see docs/app.md, "Security"):

* **Token to cookie.** The address printed (and opened) carries a random 256-bit token. A GET
  with the right token is answered with a redirect to the page (``/``, other query kept) without it and a
  session cookie (another 256 random bits): ``HttpOnly`` (no script reads it),
  ``SameSite=Strict`` (no other site's page sends it) and named after the port, because
  cookies are not kept apart by port and another local server would otherwise see it. Every
  other request needs the cookie; without it: 403 (a page saying to open the printed link).
* **Host.** Exactly ``127.0.0.1:PORT``; anything else is 403, so a foreign domain re-pointed at
  127.0.0.1 (DNS rebinding) gets nothing even though the browser thinks it is same-origin.
* **POST** needs ``Origin: http://127.0.0.1:PORT`` and the header ``X-Ncii-App: 1``: a foreign
  page cannot send a custom header without a CORS preflight, and the app answers no preflight
  (no CORS headers at all, OPTIONS is 405). GET never changes anything.
* **Headers on every answer**, errors and assets included: a CSP of ``default-src 'none'`` plus
  the page's own script, style, images (its own and ``data:`` thumbnails) and fetches;
  ``Cache-Control: no-store`` (thumbnails and hashes never reach a disk cache);
  ``Referrer-Policy: no-referrer``; no framing, no sniffing.
* **Sizes** are checked behind this guard (:class:`ncii_hash.service.web.BodyLimit`, and the
  routes read bodies themselves, in chunks, up to the same limit: :func:`.uploads.read_body`).

Tokens and cookies are compared in constant time and never logged.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl, urlencode

APP_HEADER = "x-ncii-app"  #: the custom header every POST carries (value "1")
COOKIE_PREFIX = "ncii_hash_app_"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)
_OURS = {name for name, _ in SECURITY_HEADERS}
FORBIDDEN_PAGE = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Local page</title></head>"
                  "<body><main><h1>Open the link printed in the terminal</h1><p>This page opens only from the "
                  "address that <code>ncii-hash app</code> printed when it started.</p></main></body></html>")


@dataclass(frozen=True)
class AppKeys:
    """The secrets of one run of the app on ``port``."""

    port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://{self.host}"

    @property
    def cookie_name(self) -> str:
        return f"{COOKIE_PREFIX}{self.port}"


Send = Callable[[dict], Awaitable[None]]


class Guard:
    """ASGI middleware applying the rules of this module to every HTTP request.

    ``open_paths`` are served without the cookie (the quick-exit page and what it loads);
    ``activity`` is told when each authenticated request starts and ends (the app's idle clock)."""

    def __init__(self, app: Any, keys: AppKeys, *, open_paths: frozenset = frozenset(), activity: Any = None):
        self.app = app
        self.keys = keys
        self.open_paths = open_paths
        self.activity = activity

    async def __call__(self, scope: dict, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan
            return
        send = _with_headers(send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        method, path = scope["method"], scope["path"]
        if headers.get("host") != self.keys.host:
            await _plain(send, 403, "wrong host")
            return
        if method not in ("GET", "HEAD", "POST"):
            await _plain(send, 405, "method not allowed", [(b"allow", b"GET, HEAD, POST")])
            return
        if method == "POST" and (headers.get("origin") != self.keys.origin or headers.get(APP_HEADER) != "1"):
            await _plain(send, 403, "cross-site request refused")
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        token = next((v for k, v in query if k == "token"), None)
        if method == "GET" and token is not None:
            await self._exchange(send, path, query, token)
            return
        if not self._has_cookie(headers.get("cookie", "")):
            if path in self.open_paths and method != "POST":
                await self.app(scope, receive, send)
            elif method == "GET" and not path.startswith("/api/"):
                await _html(send, 403, FORBIDDEN_PAGE)
            else:
                await _plain(send, 403, "open the link printed by ncii-hash app")
            return
        if self.activity is None:
            await self.app(scope, receive, send)
            return
        self.activity.request_started()
        try:
            await self.app(scope, receive, send)
        finally:
            self.activity.request_ended()

    def _has_cookie(self, header: str) -> bool:
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.keys.cookie_name and secrets.compare_digest(value.encode(), self.keys.session.encode()):
                return True
        return False

    async def _exchange(self, send: Send, path: str, query: list, token: str) -> None:
        """The right token: a session cookie and the same address without the token."""
        if not secrets.compare_digest(token.encode(), self.keys.token.encode()):
            await _html(send, 403, FORBIDDEN_PAGE)
            return
        rest = urlencode([(k, v) for k, v in query if k != "token"])
        # Always to the page itself: a path such as //elsewhere would make a scheme-relative
        # Location (an open redirect).
        location = "/" + ("?" + rest if rest else "")
        cookie = f"{self.keys.cookie_name}={self.keys.session}; HttpOnly; SameSite=Strict; Path=/"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode()),
                                (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def _with_headers(send: Send) -> Send:
    async def sending(message: dict) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _OURS]
            message = {**message, "headers": kept + list(SECURITY_HEADERS)}
        await send(message)

    return sending


async def _plain(send: Send, status: int, detail: str, extra: list = []) -> None:  # noqa: B006 - never mutated
    import json

    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body})


async def _html(send: Send, status: int, page: str) -> None:
    body = page.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
