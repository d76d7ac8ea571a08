"""The matcher's hot paths give the framework's answers: the routes HotRoutes serves straight
from the ASGI scope answer every request (good, malformed, index not ready) exactly as the
FastAPI app behind it does; the resolver's cache follows the index and the catalog, including
another process's writes; and lookups read the store only when an id is new to the cache."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")

from ncii_hash.bank import HashBank  # noqa: E402
from ncii_hash.service.matcher import Matcher, create_matcher_app  # noqa: E402

RNG_SEED = 404


def _requests(hit: str) -> list[str]:
    ok = f"signal_type=pdq&signal={hit}"
    return [
        "/status", "/status/live",
        f"/m/lookup?{ok}", f"/m/lookup?{ok}&threshold=0", f"/m/lookup?{ok}&banks=LOCAL,OTHER",
        f"/m/lookup?{ok}&bypass_coinflip=true&seed=3", f"/m/lookup?signal_type=pdq&signal={hit.upper()}",
        f"/m/lookup?signal_type=pdq&signal={'0' * 64}",
        "/m/lookup", "/m/lookup?signal_type=pdq", f"/m/lookup?signal={hit}", f"/m/lookup?signal_type=md5&signal={hit}",
        f"/m/lookup?signal_type=pdq&signal={hit[:-1]}", f"/m/lookup?signal_type=pdq&signal={hit[:-2]}zz",
        f"/m/lookup?signal_type=pdq&signal={hit[:30]}%20{hit[31:]}", f"/m/lookup?{ok}&threshold=-1",
        f"/m/lookup?{ok}&threshold=999", f"/m/lookup?{ok}&bypass_coinflip=maybe",
        "/m/lookup?signal_type=pdq&url=http://127.0.0.1:9/x.jpg",
        f"/m/raw_lookup?{ok}", f"/m/raw_lookup?{ok}&include_distance=true", f"/m/raw_lookup?{ok}&banks=NONE",
        "/m/raw_lookup?signal_type=pdq", f"/m/raw_lookup?signal={hit}", f"/m/raw_lookup?signal_type=x&signal={hit}",
    ]


def _answers(app, paths: list[str]) -> list[tuple]:
    async def ask() -> list[tuple]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            out = []
            for p in paths:
                r = await c.get(p)
                out.append((p, r.status_code, r.headers.get("content-type"), r.headers.get("retry-after"), r.content))
            return out
    return asyncio.run(ask())


def _framework(app):
    """The FastAPI app behind the request log and the hot routes."""
    return app.app.inner


@pytest.fixture
def bank_with_hashes(tmp_path):
    rng = np.random.default_rng(RNG_SEED)
    codes = rng.integers(0, 256, (300, 32), dtype=np.uint8)
    path = tmp_path / "bank.db"
    with HashBank(path) as bank:
        bank.add_case(codes[:200])
        bank.add_case(codes[200:])
    return path, codes


def test_hot_routes_answer_as_the_framework_does(bank_with_hashes):
    path, codes = bank_with_hashes
    matcher = Matcher(str(path))
    matcher.open()
    try:
        app = create_matcher_app(matcher)
        paths = _requests(bytes(codes[7]).hex())
        hot, slow = _answers(app, paths), _answers(_framework(app), paths)
        assert hot == slow
        by_path = {p: (status, body) for p, status, _, _, body in hot}
        assert by_path[paths[2]][0] == 200 and b'"bank_content_id"' in by_path[paths[2]][1]
        assert {status for status, _ in by_path.values()} >= {200, 400, 403, 422}  # errors were exercised
        assert matcher.batcher is not None and matcher.batcher.calls > 0
    finally:
        matcher.close()


def test_hot_routes_answer_503_as_the_framework_does_before_the_index_is_ready(tmp_path):
    app = create_matcher_app(Matcher(str(tmp_path / "absent.db")))  # never opened
    paths = _requests("ab" * 32)
    hot = _answers(app, paths)
    assert hot == _answers(_framework(app), paths)
    assert any(status == 503 and retry == "1" for _, status, _, retry, _ in hot)


def test_the_resolver_follows_the_index_and_the_catalog_of_every_process(bank_with_hashes):
    path, codes = bank_with_hashes
    a, b = Matcher(str(path)), Matcher(str(path))  # two processes' views: separate connections
    a.open()
    b.open()
    try:
        assert a.catalog is not None and b.resolver is not None
        a.catalog.create("API_BANK", 1.0)
        value = np.full((1, 32), 0x5A, np.uint8)
        cid = a.add_content("API_BANK", value)

        def hits(m: Matcher) -> list:
            return [(h.content_id, h.bank, h.enabled) for h in m.lookup(value, radius=0).result(30)[0]]

        assert hits(a) == [(cid, "API_BANK", True)]  # its own write: at once
        b._follow()  # the change follower's step in the other process
        assert hits(b) == [(cid, "API_BANK", True)]
        reads = b.resolver.fetches
        for _ in range(5):
            assert hits(b) == [(cid, "API_BANK", True)]
        assert b.resolver.fetches == reads  # known ids: no store read

        a.catalog.set_content(cid, 0, None, False)  # disabled in process a
        assert hits(a) == [(cid, "API_BANK", False)]
        b._follow()
        assert hits(b) == [(cid, "API_BANK", False)]

        a.catalog.update("API_BANK", "RENAMED", 0.5)
        b._follow()
        got = b.lookup(value, radius=0).result(30)[0]
        assert [(h.bank, h.ratio) for h in got] == [("RENAMED", 0.5)]

        a.delete_case(a.catalog.content(cid).case_id)
        assert hits(a) == []
        b._follow()
        assert hits(b) == []
        # a banked hash of the bank's own cases resolves to the LOCAL bank in both
        assert [(h.content_id, h.bank) for h in b.lookup(codes[250:251], radius=0).result(30)[0]] == \
            [(h.content_id, h.bank) for h in a.lookup(codes[250:251], radius=0).result(30)[0]] != []
    finally:
        a.close()
        b.close()


def test_the_request_log_summarizes_hot_routes_each_second_and_logs_other_requests_one_by_one(caplog):
    """Lookups and health checks: one line per method, route and status per interval, with the
    count; any other route: one line per request. Neither names a path's values."""
    import logging

    from ncii_hash.service.web import RequestLog

    async def app(scope, receive, send):
        status = 404 if scope["path"].endswith("missing") else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    class Route:
        def __init__(self, path):
            self.path = path

    async def routed(scope, receive, send):
        scope["route"] = Route("/m/lookup" if scope["path"].startswith("/m/lookup") else "/c/bank/{bank_name}")
        await app(scope, receive, send)

    log = logging.getLogger("test.requestlog")
    wrapped = RequestLog(routed, log=log, summarized=frozenset({"/m/lookup"}), every_seconds=0.05)

    async def drive():
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            pass

        for path in ["/m/lookup"] * 7 + ["/m/lookupmissing"] * 2 + ["/c/bank/SECRET_BANK"] * 3:
            await wrapped({"type": "http", "method": "GET", "path": path}, receive, send)
        await asyncio.sleep(0.2)  # the summary's timer fires on the loop

    with caplog.at_level(logging.INFO, logger="test.requestlog"):
        asyncio.run(drive())
    lines = [r.getMessage() for r in caplog.records if r.name == "test.requestlog"]
    assert len([m for m in lines if m.startswith("GET /c/bank/{bank_name} 200 ")]) == 3
    summaries = [m for m in lines if m.startswith("GET /m/lookup ")]
    assert len(summaries) == 2, lines
    assert any(m.startswith("GET /m/lookup 200 x7 ") for m in summaries)
    assert any(m.startswith("GET /m/lookup 404 x2 ") for m in summaries)
    assert not any("SECRET_BANK" in m for m in lines)
