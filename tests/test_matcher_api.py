"""The matcher answers HMA 2.0's requests with HMA's shapes and status codes: one contract test
per route against a live ``ncii-hash matcher serve`` on 127.0.0.1, on SQLite and on
PostgreSQL, each response checked against the schema HMA's OpenAPI description gives it
(untyped responses against the shapes of HMA's blueprints)."""

from __future__ import annotations

import random

import httpx
import numpy as np
import pytest

from matcher_helpers import OpenApi, bank_target, flip_bits, photo, random_hex, served_matcher, until

SPECIMEN1 = "facd8bcb2a49bcebdec1985298d5fe84bcd006c187c598c720c3c087b3fdb318"
SPECIMEN2 = "facd8bcb2a49bcebdec1985228d5ae84bcd006c187c598c720c2b087b3fdb318"  # distance 9 (HMA's own test)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory):
    """(client, OpenApi, bank target) of one matcher per store, shared by this module's tests."""
    target = bank_target(request, tmp_path_factory)
    for client, _ in served_matcher(target):
        yield client, OpenApi(), target


def new_bank(client: httpx.Client, api: OpenApi, name: str, **body) -> dict:
    r = client.post("/c/banks", json={"name": name, **body})
    assert r.status_code == 201, r.text
    return api.check("POST", "/c/banks", r)


def add_signal(client: httpx.Client, bank: str, hex_value: str) -> int:
    r = client.post(f"/c/bank/{bank}/signal", json={"pdq": hex_value})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["signals"] == {"pdq": hex_value} and isinstance(body["id"], int)
    return body["id"]


def test_status_routes(served):
    client, _, _ = served
    for path in ("/status", "/status/live"):
        r = client.get(path)
        assert (r.status_code, r.text) == (200, "I-AM-ALIVE")


def test_bank_routes(served):
    client, api, _ = served
    listed = api.check("GET", "/c/banks", client.get("/c/banks"))
    assert {"name": "STOPNCII", "matching_enabled_ratio": 1.0} in listed  # the origin banks
    assert new_bank(client, api, "API_BANK_A") == {"name": "API_BANK_A", "matching_enabled_ratio": 1.0}
    assert new_bank(client, api, "API_BANK_B", enabled=False)["matching_enabled_ratio"] == 0.0
    assert new_bank(client, api, "API_BANK_C", enabled_ratio=0.25)["matching_enabled_ratio"] == 0.25
    for bad, status in (("01_BANK", 400), ("lower_case", 400), ("API_BANK_A", 403)):
        r = client.post("/c/banks", json={"name": bad})
        assert r.status_code == status and isinstance(api.check("POST", "/c/banks", r)["message"], str)
    got = client.get("/c/bank/API_BANK_A")
    assert api.check("GET", "/c/bank/{bank_name}", got) == {"name": "API_BANK_A", "matching_enabled_ratio": 1.0}
    missing = client.get("/c/bank/NO_SUCH_BANK")
    assert missing.status_code == 404 and "message" in api.check("GET", "/c/bank/{bank_name}", missing)

    r = client.put("/c/bank/API_BANK_C", json={"name": "API_BANK_RENAMED"})
    assert api.check("PUT", "/c/bank/{bank_name}", r) == {"name": "API_BANK_RENAMED", "matching_enabled_ratio": 0.25}
    assert client.put("/c/bank/API_BANK_RENAMED", json={"enabled": False}).json()["matching_enabled_ratio"] == 0
    assert client.put("/c/bank/API_BANK_RENAMED", json={"enabled_ratio": 0.5}).json()["matching_enabled_ratio"] == 0.5
    for body, status in (({"name": "1_bad"}, 400), ({"name": "API_BANK_A"}, 403), ({"enabled_ratio": 2}, 400)):
        r = client.put("/c/bank/API_BANK_RENAMED", json=body)
        assert r.status_code == status and "message" in api.check("PUT", "/c/bank/{bank_name}", r)
    assert client.put("/c/bank/NO_SUCH_BANK", json={"enabled": True}).status_code == 404

    for _ in range(2):  # deleting twice (and deleting what does not exist) succeeds, as in HMA
        r = client.delete("/c/bank/API_BANK_RENAMED")
        assert api.check("DELETE", "/c/bank/{bank_name}", r) == {"message": "Done"}
    assert client.get("/c/bank/API_BANK_RENAMED").status_code == 404
    refused = client.delete("/c/bank/STOPNCII")
    assert refused.status_code == 403 and "message" in refused.json()


def test_signal_content_and_lookup_routes(served):
    client, api, _ = served
    rng = np.random.default_rng(17)
    new_bank(client, api, "LOOKUP_BANK")
    new_bank(client, api, "OFF_BANK", enabled_ratio=0.0)
    near = random_hex(rng)
    cid = add_signal(client, "LOOKUP_BANK", near)
    off = add_signal(client, "OFF_BANK", near)
    query = flip_bits(near, 5)

    r = client.get("/m/lookup", params={"signal_type": "pdq", "signal": query})
    assert api.check("GET", "/m/lookup", r) == {"LOOKUP_BANK": [{"bank_content_id": cid, "distance": "5"}]}
    r = client.get("/m/lookup", params={"signal_type": "pdq", "signal": query, "bypass_coinflip": "true"})
    assert r.json() == {"LOOKUP_BANK": [{"bank_content_id": cid, "distance": "5"}],
                        "OFF_BANK": [{"bank_content_id": off, "distance": "5"}]}
    r = client.get("/m/lookup", params={"signal_type": "pdq", "signal": query, "banks": "OFF_BANK",
                                        "bypass_coinflip": "true"})
    assert list(r.json()) == ["OFF_BANK"]
    assert client.get("/m/lookup", params={"signal_type": "pdq", "signal": flip_bits(near, 32)}).json() == {}
    # extra parameters HMA clients never send: an inclusive threshold
    assert client.get("/m/lookup", params={"signal_type": "pdq", "signal": query, "threshold": 4}).json() == {}

    r = client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": query})
    assert sorted(api.check("GET", "/m/raw_lookup", r)["matches"]) == sorted([cid, off])
    r = client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": query, "include_distance": "true",
                                            "banks": "LOOKUP_BANK"})
    assert api.check("GET", "/m/raw_lookup", r) == {"matches": [{"bank_content_id": cid, "distance": "5"}]}

    path = "/c/bank/{bank_name}/content/{content_id}"
    r = client.get(f"/c/bank/LOOKUP_BANK/content/{cid}", params={"include_signals": "true"})
    body = api.check("GET", path, r)
    assert body["id"] == cid and body["signals"] == {"pdq": near} and body["disable_until_ts"] == 1
    assert client.get(f"/c/bank/OFF_BANK/content/{cid}").status_code == 404  # in another bank
    assert client.get("/c/bank/LOOKUP_BANK/content/987654321").status_code == 404

    # disabled content stops matching in /m/lookup, never in /m/raw_lookup (HMA's rule)
    r = client.put(f"/c/bank/LOOKUP_BANK/content/{cid}", json={"disable_until_ts": 0, "note": "checked"})
    assert api.check("PUT", path, r)["disable_until_ts"] == 0 and r.json()["note"] == "checked"
    assert client.get("/m/lookup", params={"signal_type": "pdq", "signal": query}).json() == {}
    assert cid in client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": query}).json()["matches"]
    assert client.put(f"/c/bank/LOOKUP_BANK/content/{cid}", json={"disable_until_ts": 9999999999}).status_code == 400
    client.put(f"/c/bank/LOOKUP_BANK/content/{cid}", json={"disable_until_ts": 1})

    r = client.delete(f"/c/bank/LOOKUP_BANK/content/{cid}")
    assert api.check("DELETE", path, r)["deleted"] == 1
    assert client.delete(f"/c/bank/LOOKUP_BANK/content/{cid}").json()["deleted"] == 0
    assert client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": query}).json() == {"matches": [off]}
    assert client.get(f"/c/bank/LOOKUP_BANK/content/{cid}").status_code == 404


def test_coin_flip_follows_the_seed_and_the_ratio(served):
    client, api, _ = served
    new_bank(client, api, "HALF_BANK", enabled_ratio=0.5)
    value = random_hex(np.random.default_rng(5))
    cid = add_signal(client, "HALF_BANK", value)
    for seed in ("a", "b", "c", "d", "e", "f"):
        expected = {"HALF_BANK": [{"bank_content_id": cid, "distance": "0"}]} if random.Random(seed).random() <= 0.5 \
            else {}
        got = client.get("/m/lookup", params={"signal_type": "pdq", "signal": value, "seed": seed}).json()
        assert got == expected, seed


def test_upload_routes(served):
    client, api, _ = served
    new_bank(client, api, "PHOTO_BANK")
    image = photo(3)
    r = client.post("/h/hash", files={"photo": ("x.png", image, "image/png")})
    hashed = api.check("POST", "/h/hash", r)["pdq"]
    assert len(hashed) == 64

    r = client.post("/c/bank/PHOTO_BANK/content", files={"photo": ("x.png", image, "image/png")})
    assert r.status_code == 200, r.text
    added = api.check("POST", "/c/bank/{bank_name}/content", r)
    assert added["signals"] == {"pdq": hashed}

    r = client.post("/m/lookup", files={"photo": ("y.png", image, "image/png")})
    assert api.check("POST", "/m/lookup", r) == {"pdq": {"PHOTO_BANK": [{"bank_content_id": added["id"],
                                                                           "distance": "0"}]}}
    rotated = photo(3, rotate=1)
    assert client.post("/m/lookup", files={"photo": ("r.png", rotated, "image/png")}).json() == {"pdq": {}}
    r = client.post("/m/lookup", params={"dihedral": "true"}, files={"photo": ("r.png", rotated, "image/png")})
    assert [m["bank_content_id"] for m in r.json()["pdq"]["PHOTO_BANK"]] == [added["id"]]


def test_compare_index_and_configuration_routes(served):
    client, api, _ = served
    r = client.post("/m/compare", json={"pdq": [SPECIMEN1, SPECIMEN2]})
    assert api.check("POST", "/m/compare", r) == {"pdq": [True, {"distance": 9}]}
    for bad in (["banana"], {"pdq": "banana"}, {"pdq": []}, {"pdq": ["banana", "banana"]},
                {"pdq": [SPECIMEN1, SPECIMEN2, SPECIMEN1]}, {"no_such_type": [SPECIMEN1, SPECIMEN2]}):
        r = client.post("/m/compare", json=bad)
        assert r.status_code == 400 and isinstance(api.check("POST", "/m/compare", r)["message"], str), bad

    status = api.check("GET", "/m/index/status", client.get("/m/index/status"))["pdq"]
    assert status["present"] is True and isinstance(status["built_to"], int) and isinstance(status["size"], int)
    assert client.get("/m/index/status", params={"signal_type": "nope"}).status_code == 400
    assert api.check("GET", "/c/signal_type", client.get("/c/signal_type")) == [{"name": "pdq", "enabled_ratio": 1.0}]
    assert {"name": "photo", "enabled": True} in api.check("GET", "/c/content_type", client.get("/c/content_type"))
    # fetching media by URL is off unless an allow-list is configured: no socket is opened
    for method, path, params in (("GET", "/m/lookup", {"url": "http://127.0.0.1:9/x.jpg"}),
                                 ("GET", "/h/hash", {"url": "http://127.0.0.1:9/x.jpg"})):
        r = client.request(method, path, params=params)
        assert r.status_code == 403 and "off" in r.json()["message"]


def test_a_banked_video_is_one_content_item(served):
    """A case's video is one item: any frame's match reports the video's content id (its first
    frame's hash id), which the content route shows with the video's MD5."""
    from ncii_hash.bank import HashBank

    client, api, target = served
    rng = np.random.default_rng(23)
    frames = rng.integers(0, 256, (3, 32), dtype=np.uint8)
    md5 = "0123456789abcdef0123456789abcdef"
    with HashBank(target, create=False) as writer:
        writer.add_case(videos=[(frames, np.array([90, 90, 90]), md5)])
    def raw_hits() -> list:
        return [client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": bytes(f).hex()}).json()["matches"]
                for f in frames]
    assert until(lambda: all(raw_hits()))  # another process's write: applied within the deadline
    hits = raw_hits()
    assert len({tuple(h) for h in hits}) == 1 and len(hits[0]) == 1
    cid = hits[0][0]
    r = client.get(f"/c/bank/LOCAL/content/{cid}", params={"include_signals": "true"})
    assert api.check("GET", "/c/bank/{bank_name}/content/{content_id}", r)["signals"] == {"video_md5": md5}
    assert client.get(f"/c/bank/LOCAL/content/{cid + 1}").status_code == 404  # a later frame is no item
    r = client.get("/m/lookup", params={"signal_type": "pdq", "signal": bytes(frames[2]).hex()})
    assert r.json() == {"LOCAL": [{"bank_content_id": cid, "distance": "0"}]}
