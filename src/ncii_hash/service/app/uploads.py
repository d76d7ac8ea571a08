"""Reading a request body ourselves, in chunks, up to a limit -- never through the framework's
form parsing, which spools uploads over 1 MB to a temporary file: an intimate picture must
never reach the disk. At most one file is in memory at a time (:data:`ONE_FILE_AT_A_TIME`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import HTTPException, Request

MAX_JSON_BYTES = 64 * 1024  #: every POST but a file's


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body (at most ``limit`` bytes: else 413) as one bytes object, from memory."""
    chunks: list[bytes] = []
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> dict:
    """A small JSON object body; 400 if it is not one."""
    data = await read_body(request, MAX_JSON_BYTES)
    try:
        obj: Any = json.loads(data or b"{}")
    except (ValueError, RecursionError):
        raise HTTPException(400, "the body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return obj


class OneAtATime:
    """An asyncio lock made on first use (inside the server's event loop)."""

    def __init__(self) -> None:
        self._lock: Any = None

    def __call__(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock
