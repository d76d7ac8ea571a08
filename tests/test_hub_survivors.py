"""Survivors' endpoints against a live hub (docs/hub.md, "Survivors"): case numbers and PINs,
idempotent retries, forgiving input, wrong PINs that withdraw nothing and are slowed down
(429 + Retry-After) without ever locking the case, and a server log free of case numbers,
PINs, hashes and client addresses."""

from __future__ import annotations

import re

import httpx
import pytest

from hub_server import (FakeClock, InProcessHub, hub, hub_store, open_case,  # noqa: F401
                        partner_headers, submission_body)

CASE = re.compile(r"^NC-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
PIN = re.compile(r"^[0-9A-HJKMNP-TV-Z]{10}$")


def status(url: str, case_number: str, pin: str) -> httpx.Response:
    return httpx.post(f"{url}/cases/{case_number}/status", json={"pin": pin})


def withdraw(url: str, case_number: str, pin: str) -> httpx.Response:
    return httpx.post(f"{url}/cases/{case_number}/withdraw", json={"pin": pin})


def test_open_check_withdraw_and_the_log_holds_nothing_personal(hub):
    body = submission_body(1, images=2, videos=1)
    r, key = open_case(hub.url, body)
    assert r.status_code == 201
    case = r.json()
    assert CASE.match(case["case_number"]) and PIN.match(case["pin"])
    assert (case["items"], case["hashes"]) == (3, 4)  # 2 images, 1 video: its MD5 and its frames
    # The idempotent retry: same case, same PIN, 200; the same key with another body: 409.
    again, _ = open_case(hub.url, body, key)
    assert again.status_code == 200 and again.json() == case
    other, _ = open_case(hub.url, submission_body(2), key)
    assert other.status_code == 409
    # Forgiving input: lower case, no hyphens, O for 0, I/L for 1.
    loose = case["case_number"].lower().replace("-", " ")
    pin = case["pin"].lower().replace("0", "o").replace("1", "l")
    s = status(hub.url, loose, pin)
    assert s.status_code == 200
    assert s.json() == {"case_number": case["case_number"], "status": "active", "items": 3, "hashes": 4, "feedback": {}}
    w = withdraw(hub.url, case["case_number"], case["pin"])
    assert w.status_code == 200 and w.json() == {"case_number": case["case_number"], "status": "withdrawn", "hashes": 4}
    assert withdraw(hub.url, case["case_number"], case["pin"]).json()["status"] == "withdrawn"  # harmless twice
    assert status(hub.url, case["case_number"], "WRONGPIN00").status_code == 403
    hub.stop()
    address_line, log = hub.output().split("\n", 1)
    assert address_line.startswith("ncii-hash hub: serving http://127.0.0.1:")
    assert "POST /cases/{case_number}/withdraw 200" in log and "POST /cases 201" in log
    secrets_ = [case["case_number"], case["case_number"].replace("-", ""), case["pin"], "127.0.0.1",
                body["items"][0].get("pdq") or body["items"][0]["md5"]]
    for secret in secrets_:
        assert secret.lower() not in log.lower(), secret
    assert not re.search(r"\b[0-9a-f]{32,}\b", log)


def test_unknown_case_and_wrong_pin_look_the_same(hub):
    case = open_case(hub.url, submission_body(3))[0].json()
    unknown = status(hub.url, "NC-0000-0000-0000", case["pin"])
    wrong = status(hub.url, case["case_number"], "0000000000")
    assert unknown.status_code == wrong.status_code == 403
    assert unknown.json() == wrong.json() == {"detail": "wrong case number or PIN"}
    assert status(hub.url, "not a case", case["pin"]).status_code == 400


def test_wrong_pins_withdraw_nothing_are_slowed_and_the_right_pin_works_after(hub_store):
    clock = FakeClock()
    with InProcessHub(hub_store, clock=clock) as live:
        keys = live.add_partner("p")
        case = open_case(live.url, submission_body(4))[0].json()
        n = case["case_number"]
        for _ in range(3):  # three free wrong attempts
            assert withdraw(live.url, n, "AAAAAAAAAA").status_code == 403
        slowed = withdraw(live.url, n, case["pin"])  # even the right PIN waits: not checked at all
        assert slowed.status_code == 429 and slowed.headers["Retry-After"] == "1"
        assert status(live.url, n, case["pin"]).status_code == 429
        clock.advance(1)
        assert withdraw(live.url, n, "AAAAAAAAAA").status_code == 403  # 4th failure: wait 2 s
        assert withdraw(live.url, n, "AAAAAAAAAA").headers["Retry-After"] == "2"
        clock.advance(2)
        assert withdraw(live.url, n, "AAAAAAAAAA").status_code == 403  # 5th: 4 s
        clock.advance(3)
        assert withdraw(live.url, n, case["pin"]).headers["Retry-After"] == "1"
        # Nothing was withdrawn: the feed still has the case active.
        feed = httpx.get(f"{live.api_url}/FetchHashes", headers=partner_headers(keys)).json()
        assert {s for r in feed["hashRecords"] for s in r["caseNumbers"].values()} == {"Active"}
        clock.advance(1)
        ok = withdraw(live.url, n, case["pin"])
        assert ok.status_code == 200 and ok.json()["status"] == "withdrawn"
        # The right PIN reset the case's count: a new wrong PIN is free again (per case), but
        # this client's own count (memory only) still slows it.
        assert live.store.cases.auth(n).failures == 0
        assert withdraw(live.url, n, "AAAAAAAAAA").status_code == 403
        assert withdraw(live.url, n, "AAAAAAAAAA").status_code == 429
        clock.advance(3600)
        assert status(live.url, n, case["pin"]).status_code == 200  # never locked for good


def test_backoff_is_capped_at_an_hour(hub_store):
    clock = FakeClock()
    with InProcessHub(hub_store, clock=clock) as live:
        case = open_case(live.url, submission_body(5))[0].json()
        for _ in range(20):
            r = withdraw(live.url, case["case_number"], "AAAAAAAAAA")
            if r.status_code == 429:
                clock.advance(int(r.headers["Retry-After"]))
                r = withdraw(live.url, case["case_number"], "AAAAAAAAAA")
            assert r.status_code == 403
        last = withdraw(live.url, case["case_number"], case["pin"])
        assert last.status_code == 429 and int(last.headers["Retry-After"]) == 3600
        clock.advance(3600)
        assert withdraw(live.url, case["case_number"], case["pin"]).status_code == 200
