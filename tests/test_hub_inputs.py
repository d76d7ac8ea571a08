"""Bad input at a live hub gets a clear 4xx with {"detail": "..."} and changes nothing
(docs/hub.md): malformed JSON, wrong versions, hashes of the wrong length, oversized bodies,
missing or unknown partner keys, bad feed parameters."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest

from hub_server import hub, hub_store, open_case, partner_headers, stock_client, submission_body  # noqa: F401

MiB = 1024 * 1024


def feed(hub, keys, **params) -> httpx.Response:
    return httpx.get(f"{hub.api_url}/FetchHashes", params=params, headers=partner_headers(keys), timeout=30)


def post_raw(url: str, data: bytes, key: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Idempotency-Key": key or secrets.token_urlsafe(32)}
    return httpx.post(url, content=data, headers=headers, timeout=60)


def assert_nothing_banked(hub, keys) -> None:
    page = feed(hub, keys).json()
    assert page["count"] == 0 and page["nextSetTimestamp"] == 10**12


def test_bad_submissions_are_refused_and_change_nothing(hub):
    keys = hub.add_partner("p")
    good = submission_body(1)
    wrong_version = {**good, "version": 4}
    short_hash = json.loads(json.dumps(good))
    short_hash["items"][0]["pdq"] = "ab" * 31
    empty = {**good, "items": [], "counts": {"items": 0}}
    cases = {
        b"{not json": "not valid JSON",
        json.dumps(wrong_version).encode(): "unsupported submission version 4",
        json.dumps(short_hash).encode(): "64",
        json.dumps(empty).encode(): "no items",
        json.dumps({**good, "file_name": "me.jpg"}).encode(): "unexpected fields",
        b"[]": "JSON object",
    }
    for body, words in cases.items():
        r = post_raw(f"{hub.url}/cases", body)
        assert r.status_code == 400, body
        assert words in r.json()["detail"], r.json()
    # The idempotency key is required and checked.
    assert httpx.post(f"{hub.url}/cases", json=good).status_code == 400
    assert post_raw(f"{hub.url}/cases", json.dumps(good).encode(), key="short").status_code == 400
    # Oversized: more than 16 MiB is refused before it is read.
    big = post_raw(f"{hub.url}/cases", b"{" + b" " * (16 * MiB) + b"}")
    assert big.status_code == 413 and "larger than" in big.json()["detail"]
    assert_nothing_banked(hub, keys)
    # PIN bodies: a missing or oversized PIN is a 422, never a PIN check.
    case = open_case(hub.url, good)[0].json()
    for body in ({}, {"pin": "x" * 65}, {"pin": 7}, {"pin": "ABC", "extra": 1}):
        r = httpx.post(f"{hub.url}/cases/{case['case_number']}/withdraw", json=body)
        assert r.status_code == 422 and isinstance(r.json()["detail"], str), body
    r = httpx.post(f"{hub.url}/cases/{case['case_number']}/withdraw", content=b"{oops",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert httpx.post(f"{hub.url}/cases/{case['case_number']}/status", json={"pin": case["pin"]}).json()["status"] == "active"


def test_partner_keys_are_checked(hub):
    keys = hub.add_partner("p")
    open_case(hub.url, submission_body(2))
    assert httpx.get(f"{hub.api_url}/FetchHashes").status_code == 401
    fetch_key, subscription_key, base = keys
    for bad in ((fetch_key, subscription_key[:-1] + "x", base), ("x" + fetch_key, subscription_key, base),
                ("a", "b", base), (fetch_key, "000000000000." + subscription_key.split(".", 1)[1], base)):
        r = feed(hub, bad)
        assert r.status_code == 401 and r.json()["detail"] == "unknown or revoked partner keys"
        assert httpx.post(f"{hub.api_url}/SubmitFeedback", json={"count": 0, "hashFeedbacks": []},
                          headers=partner_headers(bad)).status_code == 401
    assert feed(hub, keys).status_code == 200  # the good keys (now cached) work
    assert hub.remove_partner("p").returncode == 0  # revoked by another process
    assert feed(hub, keys).status_code == 401
    assert hub.remove_partner("p").returncode == 1


def test_bad_partner_posts_and_parameters(hub):
    keys = hub.add_partner("p")
    case = open_case(hub.url, submission_body(3))[0].json()
    value = feed(hub, keys).json()["hashRecords"][0]["hashValue"]
    h = partner_headers(keys)
    bad_feedback = {"count": 2, "hashFeedbacks": [{"hashValue": value, "feedbackValue": "Blocked", "tags": []},
                                                  {"hashValue": value, "feedbackValue": "Loved", "tags": []}]}
    r = httpx.post(f"{hub.api_url}/SubmitFeedback", json=bad_feedback, headers=h)
    assert r.status_code == 400 and "Loved" in r.json()["detail"]
    r = httpx.post(f"{hub.api_url}/SubmitFeedback", content=b"{", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 400
    r = httpx.post(f"{hub.api_url}/SubmitFeedback", content=b"[" + b" " * (4 * MiB) + b"]",
                   headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 413
    status = httpx.post(f"{hub.url}/cases/{case['case_number']}/status", json={"pin": case["pin"]}).json()
    assert status["feedback"] == {}  # the good item of the refused post was not kept either
    # Feedback on a hash the hub does not hold is ignored, not an error.
    r = httpx.post(f"{hub.api_url}/SubmitFeedback", headers=h, json={"count": 1, "hashFeedbacks": [
        {"hashValue": "99" * 32, "feedbackValue": "Blocked", "tags": []}]})
    assert r.status_code == 200 and r.json() == {"count": 0}
    for record in ({"signalType": "ImagePDQ", "hashValue": "ab" * 31}, {"signalType": "VideoTMK", "hashValue": "ab"},
                   {"signalType": "StopNCIISignalType.VideoMD5", "hashValue": "ab" * 32}):
        r = httpx.post(f"{hub.api_url}/SubmitHashes", headers=h, json={"count": 1, "hashRecords": [record]})
        assert r.status_code == 400 and "hashRecords[0]" in r.json()["detail"], record
    ok = httpx.post(f"{hub.api_url}/SubmitHashes", headers=h, json={"count": 1, "hashRecords": [
        {"signalType": "StopNCIISignalType.VideoMD5", "hashValue": "AB" * 16, "CSPFeedbacks": []}]})
    assert ok.json() == {"count": 1}
    for params, code in (({"pageSize": 0}, 400), ({"pageSize": 10001}, 400), ({"pageSize": "many"}, 422),
                         ({"startTimestamp": 10**12 + 5}, 400), ({"signalTypes": "ImagePDQ,Text"}, 400),
                         ({"nextPageToken": "abc.def"}, 400), ({"nextPageToken": "x"}, 400)):
        r = feed(hub, keys, **params)
        assert r.status_code == code and isinstance(r.json()["detail"], str), params
    assert feed(hub, keys).json()["count"] == 2  # nothing changed: the two images of the one case
