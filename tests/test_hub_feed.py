"""The feed's rules at a live hub (docs/hub.md, "Partners"): a partner that starts after a
withdrawal never receives the withdrawn hashes; a hash shared by cases stays Active while one
of them is; page tokens are bound to the partner, forged ones get 400, expired ones 410, and
the same token twice serves the same page; changes during a delta wait for the next one; the
retention purge deletes withdrawn values and old checkpoints then get 410."""

from __future__ import annotations

import httpx
import pytest

from hub_server import FakeClock, InProcessHub, hub, hub_store, open_case, partner_headers, submission_body  # noqa: F401

EPOCH = 10**12


def fetch(url: str, keys, **params) -> httpx.Response:
    return httpx.get(f"{url}/v1/FetchHashes", params=params, headers=partner_headers(keys), timeout=30)


def follow(url: str, keys, start: int = 10, page_size: int = 800) -> tuple[dict, int]:
    got, token = {}, None
    while True:
        params = {"startTimestamp": start, "pageSize": page_size}
        if token:
            params["nextPageToken"] = token
        page = fetch(url, keys, **params).json()
        got.update({r["hashValue"]: r for r in page["hashRecords"]})
        if not page["hasMoreRecords"]:
            return got, page["nextSetTimestamp"]
        token = page["nextPageToken"]


def withdraw(url: str, case: dict) -> None:
    r = httpx.post(f"{url}/cases/{case['case_number']}/withdraw", json={"pin": case["pin"]}, timeout=30)
    assert r.status_code == 200


def test_late_partner_never_receives_withdrawn_hashes(hub):
    early = hub.add_partner("early")
    first = open_case(hub.url, submission_body(1))[0].json()
    seen, checkpoint = follow(hub.url, early)
    assert len(seen) == 2
    second = open_case(hub.url, submission_body(2))[0].json()
    withdraw(hub.url, second)  # added and withdrawn after the early partner's checkpoint
    withdraw(hub.url, first)
    late = hub.add_partner("late")
    assert follow(hub.url, late) == ({}, EPOCH + 4)
    delta, _ = follow(hub.url, early, start=checkpoint)
    assert set(delta) == set(seen)  # the first case's hashes, now withdrawn; nothing of the second
    assert all(r["hashStatus"] == "Withdrawn" and r["caseNumbers"] == {first["case_number"]: "Withdrawn"}
               for r in delta.values())


def test_a_hash_in_two_cases_stays_active_while_one_is(hub):
    keys = hub.add_partner("p")
    a = open_case(hub.url, submission_body(7, images=1))[0].json()
    b = open_case(hub.url, submission_body(7, images=1))[0].json()  # the same picture, another survivor
    _, checkpoint = follow(hub.url, keys)
    withdraw(hub.url, a)
    delta, _ = follow(hub.url, keys, start=checkpoint)
    (record,) = delta.values()
    assert record["hashStatus"] == "Active"
    assert record["caseNumbers"] == {a["case_number"]: "Withdrawn", b["case_number"]: "Active"}


def test_page_tokens_bound_replayed_and_changes_wait_for_the_next_delta(hub):
    one, two = hub.add_partner("one"), hub.add_partner("two")
    for seed in range(3):
        open_case(hub.url, submission_body(seed, images=2))
    first = fetch(hub.url, one, pageSize=2).json()
    token = first["nextPageToken"]
    assert first["hasMoreRecords"] and first["nextSetTimestamp"] == EPOCH
    # Changes after the delta began are not in it (its end is fixed when the first page is served).
    late = open_case(hub.url, submission_body(50, images=1))[0].json()
    second = fetch(hub.url, one, pageSize=2, nextPageToken=token).json()
    again = fetch(hub.url, one, pageSize=2, nextPageToken=token).json()  # a retried GET: the same page
    assert {k: v for k, v in again.items() if k != "nextPageToken"} == {k: v for k, v in second.items()
                                                                        if k != "nextPageToken"}
    # its token may differ only in its expiry (an hour from when it was served: the two GETs can
    # straddle a second), and continues the delta at the same place
    assert (fetch(hub.url, one, pageSize=2, nextPageToken=again["nextPageToken"]).json()["hashRecords"]
            == fetch(hub.url, one, pageSize=2, nextPageToken=second["nextPageToken"]).json()["hashRecords"])
    third = fetch(hub.url, one, pageSize=2, nextPageToken=second["nextPageToken"]).json()
    assert not third["hasMoreRecords"] and third["nextPageToken"] is None and third["nextSetTimestamp"] == EPOCH + 3
    values = [r["hashValue"] for p in (first, second, third) for r in p["hashRecords"]]
    assert len(values) == len(set(values)) == 6
    after, _ = follow(hub.url, one, start=third["nextSetTimestamp"])
    assert {n for r in after.values() for n in r["caseNumbers"]} == {late["case_number"]}
    # Another partner's token, a forged one, a tampered one: 400.
    assert fetch(hub.url, two, pageSize=2, nextPageToken=token).status_code == 400
    body, mac = token.split(".")
    flipped = body[:5] + ("B" if body[5] != "B" else "C") + body[6:]
    for forged in (body + "." + mac[::-1], flipped + "." + mac, "e30." + mac):
        r = fetch(hub.url, one, pageSize=2, nextPageToken=forged)
        assert r.status_code == 400 and "page token" in r.json()["detail"]


def test_expired_token_and_retention(hub_store):
    clock = FakeClock()
    with InProcessHub(hub_store, clock=clock, retention_days=30) as live:
        fast, slow = live.add_partner("fast"), live.add_partner("slow")
        cases = [open_case(live.url, submission_body(s, images=2))[0].json() for s in range(3)]
        first = fetch(live.url, fast, pageSize=1).json()
        clock.advance(3601)
        r = fetch(live.url, fast, pageSize=1, nextPageToken=first["nextPageToken"])
        assert r.status_code == 410 and "expired" in r.json()["detail"]
        _, slow_checkpoint = follow(live.url, slow)
        _, fast_checkpoint = follow(live.url, fast)
        withdraw(live.url, cases[0])
        delta, fast_checkpoint = follow(live.url, fast, start=fast_checkpoint)
        assert len(delta) == 2 and all(r["hashStatus"] == "Withdrawn" for r in delta.values())
        # The slow partner has not fetched past the withdrawal: nothing is purged yet.
        live.store.feed.purge(clock(), live.settings.retention_seconds)
        slow_delta, slow_checkpoint = follow(live.url, slow, start=slow_checkpoint)
        assert set(slow_delta) == set(delta)
        # Both were served the delta's last page, but a served page may never have arrived:
        # only asking from the new checkpoint proves a partner stored it.
        assert live.store.feed.purge(clock(), live.settings.retention_seconds) == 0
        assert follow(live.url, fast, start=fast_checkpoint)[0] == {}
        assert live.store.feed.purge(clock(), live.settings.retention_seconds) == 0  # slow still behind
        assert follow(live.url, slow, start=slow_checkpoint)[0] == {}
        # Now every partner has: the withdrawn values are deleted from the store.
        assert live.store.feed.purge(clock(), live.settings.retention_seconds) == 2
        with live.store.access.read():
            held = {r[0] for r in live.store.access.execute("SELECT hash_value FROM hash_values").fetchall()}
        assert held.isdisjoint(delta) and len(held) == 4
        # A checkpoint from before the purged withdrawal: 410; from the beginning is always fine.
        old = fetch(live.url, slow, startTimestamp=EPOCH + 2)
        assert old.status_code == 410 and "checkpoint too old" in old.json()["detail"]
        assert len(follow(live.url, slow)[0]) == 4
        # The retention time purges even when a partner lags behind.
        withdraw(live.url, cases[1])
        assert live.store.feed.purge(clock(), live.settings.retention_seconds) == 0
        clock.advance(30 * 86400 + 1)
        assert live.store.feed.purge(clock(), live.settings.retention_seconds) == 2
        status = httpx.post(f"{live.url}/cases/{cases[1]['case_number']}/status", json={"pin": cases[1]["pin"]})
        assert status.json()["status"] == "withdrawn" and status.json()["hashes"] == 2
