"""What the matcher's routes share: the matcher of the app, the HMA-style error, the API-key
checks, parsing a PDQ signal, and running store work off the event loop."""

from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar

import numpy as np
from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from .matcher import Matcher

SIGNAL_TYPES = {"pdq": 1.0}  #: HMA signal types this matcher serves, with their enabled ratio
T = TypeVar("T")


class ApiError(HTTPException):
    """An HMA-style error: ``{"message": text}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(status, message, headers=headers)


def matcher(request: Request) -> Matcher:
    return request.app.state.matcher


def ready_matcher(request: Request) -> Matcher:
    m = matcher(request)
    if not m.ready:
        raise ApiError(503, "index not yet ready", headers={"Retry-After": "1"})
    return m


def _bearer(request: Request) -> Optional[str]:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _check_key(request: Request) -> None:
    m = ready_matcher(request)
    token = _bearer(request)
    assert m.keys is not None
    if token is None or not await run_in_threadpool(m.keys.valid, token):
        raise ApiError(401, "an API key is required (Authorization: Bearer <key>; ncii-hash matcher add-key)",
                       headers={"WWW-Authenticate": "Bearer"})


async def writer(request: Request) -> None:
    """Curation writes need an API key when the matcher is not bound to loopback."""
    if matcher(request).settings.require_key_for_writes:
        await _check_key(request)


async def looker(request: Request) -> None:
    """/m/* and /h/* need an API key when so configured."""
    if matcher(request).settings.require_key_for_matching:
        await _check_key(request)


def signal_type(name: Optional[str]) -> str:
    if name not in SIGNAL_TYPES:
        raise ApiError(400, f"No such SignalType '{name}'")
    return name


def pdq_codes(signal: Optional[str], what: str = "signal") -> np.ndarray:
    """A PDQ hash given as 64 hex digits, as a ``(1, 32)`` array; 400 otherwise."""
    text = (signal or "").strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else b""  # inner spaces leave fewer than 32 bytes
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ApiError(400, f"invalid {what}: a PDQ hash is 64 hexadecimal digits")
    return np.frombuffer(raw, dtype=np.uint8).reshape(1, 32).copy()


def flag(value: Optional[str], name: str, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ApiError(400, f"invalid boolean parameter {name} - prefer true/false")


def threshold(value: Optional[str], default: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or not 0 <= int(value) <= 256:
        raise ApiError(400, "threshold must be a whole number from 0 to 256")
    return int(value)


def banks_filter(value: Optional[str]) -> Optional[set[str]]:
    return set(value.split(",")) if value else None


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    return await run_in_threadpool(fn, *args)
