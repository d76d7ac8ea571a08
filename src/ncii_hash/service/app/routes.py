"""The local app's FastAPI app: ``create_app(state, keys)``. Pages and assets by GET; every
change by POST (Origin and custom header checked by :class:`.security.Guard`). File bytes
arrive as the raw body of ``POST /api/hash`` -- no form, no file name -- are hashed in a worker
thread, one file at a time, and dropped; only the hash and a thumbnail are kept and answered.
Hub calls are made by this process (:mod:`ncii_hash._util.hub_cases`), never by the page.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Callable, Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ..._util.http import HTTPConnectionError, HTTPStatusError, check_base_url
from ..._util.hub_cases import case_request, open_case, retry_seconds
from ..web import BodyLimit
from .hashing import MAX_FILE_BYTES, Refused, features_available, hash_media
from .pages import Pages
from .security import AppKeys, Guard
from .state import HEARTBEAT_SECONDS, AppState
from .uploads import MAX_JSON_BYTES, OneAtATime, read_body, read_json

OPEN_PATHS = frozenset({"/exit", "/static/exit.css"})


def create_app(state: AppState, keys: AppKeys, *, on_idle: Optional[Callable[[], None]] = None) -> Any:
    pages = Pages()
    one_file = OneAtATime()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_watch_idle(state, on_idle)) if on_idle is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request, lang: Optional[str] = None) -> HTMLResponse:
        chosen = pages.language(lang, request.headers.get("accept-language", ""))
        return HTMLResponse(pages.render("index.html", chosen))

    @app.get("/exit", response_class=HTMLResponse)
    async def neutral_page() -> HTMLResponse:
        return HTMLResponse(pages.render("exit.html", "en"))

    @app.get("/static/{name:path}")
    async def static(name: str) -> Response:
        asset = pages.static(name)
        if asset is None:
            raise HTTPException(404, "no such file")
        return Response(asset.body, media_type=asset.content_type)

    @app.get("/api/state")
    async def app_state() -> dict:
        return {"hub": state.hub, "folder_files": len(state.folder_files), "max_file_bytes": MAX_FILE_BYTES,
                "features_available": features_available(), "heartbeat_seconds": HEARTBEAT_SECONDS}

    @app.post("/api/heartbeat", status_code=204)
    async def heartbeat() -> Response:
        state.heartbeat()
        return Response(status_code=204)

    async def hashed(request: Request, read: Callable[[], Any], features: bool, window: bool) -> Response:
        async with one_file():  # one file's bytes in memory at a time
            try:
                data = await read()
                media = await run_in_threadpool(hash_media, data, features=features, window=window)
                del data
                if await request.is_disconnected():  # cancelled by the page: keep nothing
                    return Response(status_code=204)
                item_id = state.add(media)
            except Refused as exc:
                return JSONResponse({"error": exc.code}, status_code=422)
        return JSONResponse({"id": item_id, **media.summary()})

    @app.post("/api/hash")
    async def hash_upload(request: Request, features: bool = False, window: bool = False) -> Response:
        return await hashed(request, lambda: read_body(request, MAX_FILE_BYTES), features, window)

    @app.post("/api/folder/{index}")
    async def hash_folder_file(request: Request, index: int, features: bool = False, window: bool = False) -> Response:
        if not 0 <= index < len(state.folder_files):
            raise HTTPException(404, "no such file in the folder")
        path = state.folder_files[index]

        async def read() -> bytes:
            try:
                if path.stat().st_size > MAX_FILE_BYTES:
                    raise Refused("too_large")
                return await run_in_threadpool(path.read_bytes)
            except OSError:
                raise Refused("unreadable") from None

        return await hashed(request, read, features, window)

    @app.post("/api/forget")
    async def forget(request: Request) -> dict:
        body = await read_json(request)
        state.forget(_ids(body))
        return {}

    @app.post("/api/clear")
    async def clear() -> dict:
        state.clear()
        return {}

    @app.post("/api/submission")
    async def submission(request: Request) -> dict:
        body = await read_json(request)
        text = state.build_submission(_ids(body), features=body.get("features") is True,
                                      windows=body.get("windows") is True)
        if text is None:
            raise HTTPException(409, "nothing to send: no hashed item is left")
        return {"text": text}

    @app.get("/api/submission.json")
    async def submission_file() -> Response:
        if state.submission is None:
            raise HTTPException(404, "no submission has been made yet")
        return Response(state.submission.encode(), media_type="application/json",
                        headers={"Content-Disposition": 'attachment; filename="submission.json"'})

    @app.post("/api/submit")
    async def submit(request: Request) -> JSONResponse:
        body = await read_json(request)
        hub = _hub(body)
        text = state.submission
        if text is None:
            raise HTTPException(409, "nothing to send: make the submission first")
        try:
            opened = await run_in_threadpool(open_case, hub, text.encode())
        except (HTTPStatusError, HTTPConnectionError, ValueError) as exc:
            return _hub_error(exc, sending=True)
        return JSONResponse({"case_number": opened.case_number, "pin": opened.pin})

    @app.post("/api/case")
    async def case(request: Request) -> JSONResponse:
        body = await read_json(request)
        hub = _hub(body)
        number, pin, action = body.get("case_number"), body.get("pin"), body.get("action")
        if not isinstance(number, str) or not isinstance(pin, str) or not pin.strip() \
                or action not in ("status", "withdraw"):
            return JSONResponse({"error": "case_missing"}, status_code=400)
        try:
            answer = await run_in_threadpool(case_request, hub, number, pin.strip(), action)
        except (HTTPStatusError, HTTPConnectionError, ValueError) as exc:
            return _hub_error(exc, sending=False)
        feedback = answer.get("feedback")
        return JSONResponse({"case_number": str(answer.get("case_number", number)),
                             "status": str(answer.get("status", "")), "items": answer.get("items"),
                             "hashes": answer.get("hashes"),
                             "feedback": feedback if isinstance(feedback, dict) else {}})

    return Guard(BodyLimit(app, _limit), keys, open_paths=OPEN_PATHS, activity=state)


def _limit(path: str) -> int:
    return MAX_FILE_BYTES if path == "/api/hash" else MAX_JSON_BYTES


def _ids(body: dict) -> list:
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise HTTPException(400, "'ids' must be a list of item ids")
    return ids


def _hub(body: dict) -> str:
    try:
        return check_base_url(body.get("hub") or "")
    except ValueError:
        raise HTTPException(400, "bad_hub") from None


def _hub_error(exc: Exception, *, sending: bool) -> JSONResponse:
    if isinstance(exc, HTTPStatusError):
        if exc.status == 429:
            return JSONResponse({"error": "too_many_tries", "retry_after": retry_seconds(exc)}, status_code=429)
        if exc.status == 403 and not sending:
            return JSONResponse({"error": "wrong_pin"}, status_code=403)
        return JSONResponse({"error": "hub_refused", "status": exc.status}, status_code=502)
    if isinstance(exc, HTTPConnectionError):
        return JSONResponse({"error": "unreachable_maybe_sent" if sending else "unreachable"}, status_code=502)
    return JSONResponse({"error": "bad_answer"}, status_code=502)


async def _watch_idle(state: AppState, on_idle: Callable[[], None]) -> None:
    while not state.should_stop():
        await asyncio.sleep(1.0)
    on_idle()
