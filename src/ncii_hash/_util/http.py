"""The one HTTP client of the library (stdlib ``urllib.request`` only): JSON in, JSON out, to
one origin, with timeouts, bounded retries and no redirects.

Used by the survivor's ``ncii-hash submit``/``case`` (to the hub she names) and by the
platform's feed sync (to the hub or StopNCII). Rules every caller gets:

* :func:`check_base_url`: ``https://`` anywhere; plain ``http://`` only to a loopback host
  (127.0.0.0/8, ::1, ``localhost``), so hashes and PINs never cross a network in the clear.
  Checked before any connection is made.
* No redirect is followed (a 3xx is an error naming where it pointed): the caller's request
  goes to the origin it named, or nowhere.
* Retries (connection errors, timeouts, and the statuses a caller lists, 5xx and 429 by
  default) wait with exponential backoff, or the server's ``Retry-After`` when it gives one
  (capped), and resend the *same* request -- headers included, so an ``Idempotency-Key``
  makes a retried POST safe.
* An error answer raises :class:`HTTPStatusError` carrying the status, the server's plain
  ``detail`` and ``Retry-After``; a network failure after the last retry raises
  :class:`HTTPConnectionError`. Never logs bodies or headers (they carry hashes and secrets).
"""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping, Optional

from ..errors import NciiHashError

# urllib.request (and with it http.client, ssl and sockets) is imported only when a client is
# made: importing this module -- as every `import ncii_hash` does through the bank's sync -- loads
# no network code, so the survivor's hashing path never does.

DEFAULT_TIMEOUT = 30.0  #: seconds per connection attempt and per read
DEFAULT_RETRIES = 4
MAX_RETRY_WAIT = 30.0  #: seconds; a longer Retry-After is not waited for, the error is raised
MAX_RESPONSE_BYTES = 256 * 2**20
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class HTTPConnectionError(NciiHashError, OSError):
    """The server could not be reached (refused, unknown host, timeout, TLS failure)."""


class HTTPStatusError(NciiHashError):
    """The server answered with an error status; ``detail`` is its plain message."""

    def __init__(self, status: int, detail: str, retry_after: Optional[float] = None):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash, or ValueError saying why it is refused."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("give the server's address, e.g. https://hub.example.org")
    url = url.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// address")
    if parts.username or parts.password:
        raise ValueError(f"{url!r}: user names or passwords in the address are not supported")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: the address may not have a ?query or #fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"{url!r}: plain http:// is only allowed to this computer (127.0.0.1, ::1, localhost); "
                         "use https:// so nothing is sent unencrypted")
    try:
        _ = parts.port  # a port that is not a number raises ValueError
    except ValueError:
        raise ValueError(f"{url!r}: the port is not a number 0-65535") from None
    return url.rstrip("/")


def _opener() -> Any:
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
            return None  # urllib then raises the 3xx as an HTTPError, handled below

    return urllib.request.build_opener(NoRedirect())


@dataclass
class JsonClient:
    """Requests to one origin (``base_url``, checked by :func:`check_base_url`)."""

    base_url: str
    headers: Mapping[str, str]
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = 0.5  #: seconds before the first retry, doubled each time
    sleep: Optional[Callable[[float], None]] = None  #: how to wait between retries (default: pause)

    def __post_init__(self) -> None:
        self.base_url = check_base_url(self.base_url)
        self._opener = _opener()

    def url(self, path: str, params: Optional[Mapping[str, Any]] = None) -> str:
        url = self.base_url + "/" + path.lstrip("/")
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return url

    def request(self, method: str, path: str, *, body: Any = None, raw_body: Optional[bytes] = None,
                params: Optional[Mapping[str, Any]] = None, headers: Optional[Mapping[str, str]] = None,
                retry_statuses: Collection[int] = RETRY_STATUSES) -> tuple[int, Any]:
        """``(status, decoded JSON)`` of a 2xx answer; HTTPStatusError / HTTPConnectionError otherwise."""
        data = raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
        all_headers = {"Accept": "application/json", "User-Agent": "ncii-hash", **self.headers, **(headers or {})}
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        url = self.url(path, params)
        import urllib.request

        attempt = 0
        while True:
            req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
            try:
                return self._once(req)
            except HTTPStatusError as exc:
                if exc.status not in retry_statuses or attempt >= self.retries:
                    raise
                wait = exc.retry_after if exc.retry_after is not None else self.backoff * 2 ** attempt
                if wait > MAX_RETRY_WAIT:
                    raise
            except HTTPConnectionError:
                if attempt >= self.retries:
                    raise
                wait = self.backoff * 2 ** attempt
            attempt += 1
            (self.sleep or pause)(wait)

    def _once(self, req: Any) -> tuple[int, Any]:
        import urllib.error

        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return resp.status, _decode(resp.read(MAX_RESPONSE_BYTES + 1), resp.status)
        except urllib.error.HTTPError as exc:
            with exc:
                raise _status_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout, TLS, reset mid-answer
            reason = getattr(exc, "reason", exc)
            raise HTTPConnectionError(f"cannot reach {self.base_url}: {reason}") from None


def pause(seconds: float) -> None:
    """Wait between retries (tests replace it to record the waits instead)."""
    time.sleep(seconds)


def _decode(data: bytes, status: int) -> Any:
    if len(data) > MAX_RESPONSE_BYTES:
        raise HTTPStatusError(status, f"the answer is larger than {MAX_RESPONSE_BYTES} bytes")
    if not data:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise HTTPStatusError(status, "the answer is not JSON (is this the right address?)") from None


def _status_error(exc: Any) -> HTTPStatusError:
    """The HTTPStatusError of a ``urllib.error.HTTPError``."""
    status = int(exc.code)
    retry_after = _seconds(exc.headers.get("Retry-After") if exc.headers else None)
    if 300 <= status < 400:
        where = exc.headers.get("Location", "?") if exc.headers else "?"
        return HTTPStatusError(status, f"the server redirects to {where}; redirects are not followed "
                                       "(give the final address)", retry_after)
    try:
        body = json.loads(exc.read(1 << 16) or b"null")
    except (ValueError, OSError, RecursionError):
        body = None
    return HTTPStatusError(status, error_detail(body) or (exc.reason or "error"), retry_after)


def error_detail(body: Any) -> str:
    """The plain message of a ``{"detail": ...}`` error body (FastAPI's validation lists included)."""
    detail = body.get("detail") if isinstance(body, Mapping) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        msgs = []
        for d in detail[:5]:
            if isinstance(d, Mapping):
                loc = ".".join(str(x) for x in d.get("loc", ()) if x != "body")
                msgs.append(f"{loc}: {d.get('msg', '')}" if loc else str(d.get("msg", "")))
        return "; ".join(msgs)
    return ""


def _seconds(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
