"""Bad requests get HMA's ``{"message": ...}`` with the right status code and change nothing;
API keys guard the routes when configured; media is fetched by URL only from allow-listed
hosts (a server on 127.0.0.1 here), never following a redirect."""

from __future__ import annotations

import http.server
import threading

import httpx
import pytest

from hub_server import run_cli
from matcher_helpers import init_bank, photo, served_matcher, start_matcher

H = "facd8bcb2a49bcebdec1985298d5fe84bcd006c187c598c720c3c087b3fdb318"


@pytest.fixture(scope="module")
def matcher(tmp_path_factory):
    yield from served_matcher(str(tmp_path_factory.mktemp("matcher") / "bank.db"))


def state(client: httpx.Client) -> tuple:
    banks = client.get("/c/banks").json()
    size = client.get("/m/index/status").json()["pdq"]["size"]
    return banks, size, client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": H}).json()


LOOKUP = {"signal_type": "pdq", "signal": H}
BAD = [
    ("GET", "/m/lookup", {}, None, 400),
    ("GET", "/m/lookup", {"signal_type": "pdq", "signal": "zz"}, None, 400),
    ("GET", "/m/lookup", {"signal_type": "pdq", "signal": H + "00"}, None, 400),
    ("GET", "/m/lookup", {"signal_type": "video_md5", "signal": H}, None, 400),
    ("GET", "/m/lookup", {**LOOKUP, "bypass_coinflip": "maybe"}, None, 400),
    ("GET", "/m/lookup", {**LOOKUP, "threshold": "-1"}, None, 400),
    ("GET", "/m/raw_lookup", {"signal_type": "pdq"}, None, 422),
    ("GET", "/m/raw_lookup", {"signal": H}, None, 422),
    ("GET", "/m/raw_lookup", {**LOOKUP, "include_distance": "perhaps"}, None, 400),
    ("POST", "/m/lookup", {}, {"json": {"pdq": H}}, 400),
    ("POST", "/m/lookup", {}, {"files": {"photo": ("a.png", b"not an image", "image/png")}}, 400),
    ("POST", "/m/lookup", {}, {"files": {"video": ("a.mp4", b"\0" * 64, "video/mp4")}}, 400),
    ("POST", "/m/lookup", {}, {"files": {"sticker": ("a.png", b"\0", "image/png")}}, 400),
    ("POST", "/m/lookup", {}, {"files": [("photo", ("a.png", b"1", "image/png")), ("photo", ("b.png", b"2", "image/png"))]}, 400),
    ("POST", "/h/hash", {}, None, 400),
    ("POST", "/m/compare", {}, {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ("POST", "/c/banks", {}, {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ("POST", "/c/banks", {}, {"json": ["BANK"]}, 400),
    ("POST", "/c/banks", {}, {"json": {"enabled": True}}, 422),
    ("POST", "/c/banks", {}, {"json": {"name": "GOOD_NAME", "enabled_ratio": "all"}}, 400),
    ("POST", "/c/bank/NO_SUCH_BANK/signal", {}, {"json": {"pdq": H}}, 404),
    ("POST", "/c/bank/INPUT_BANK/signal", {}, {"json": {}}, 400),
    ("POST", "/c/bank/INPUT_BANK/signal", {}, {"json": {"video_md5": "0" * 32}}, 400),
    ("POST", "/c/bank/INPUT_BANK/signal", {}, {"json": {"pdq": "zz"}}, 400),
    ("POST", "/c/bank/INPUT_BANK/signal", {}, {"json": {"pdq": 5}}, 400),
    ("POST", "/c/bank/INPUT_BANK/signal", {}, {"json": {"pdq": H, "note": "x" * 256}}, 400),
    ("POST", "/c/bank/INPUT_BANK/content", {}, None, 400),
    ("POST", "/c/bank/INPUT_BANK/content", {}, {"files": {"photo": ("flat.png", b"\x89PNG", "image/png")}}, 400),
    ("GET", "/c/bank/INPUT_BANK/content/abc", {}, None, 422),
    ("PUT", "/c/bank/INPUT_BANK/content/999999", {}, {"json": {"disable_until_ts": 5}}, 404),
    ("DELETE", "/c/bank/LOCAL", {}, None, 403),
    ("PUT", "/c/bank/INPUT_BANK", {}, {"json": {"name": "lower"}}, 400),
    ("POST", "/c/banks", {}, {"content": b"{" + b" " * (2 * 1024 * 1024) + b"}",
                              "headers": {"content-type": "application/json"}}, 413),
    ("GET", "/no/such/route", {}, None, 404),
    ("DELETE", "/m/lookup", {}, None, 405),
]


def test_bad_requests_get_a_message_and_change_nothing(matcher):
    client, server = matcher
    assert client.post("/c/banks", json={"name": "INPUT_BANK"}).status_code == 201
    cid = client.post("/c/bank/INPUT_BANK/signal", json={"pdq": H}).json()["id"]
    before = state(client)
    for method, path, params, extra, status in BAD:
        r = client.request(method, path, params=params, **(extra or {}))
        assert r.status_code == status, (method, path, params, r.status_code, r.text)
        body = r.json()
        assert isinstance(body, dict) and isinstance(body["message"], str) and body["message"], (path, body)
    bad_until = client.put(f"/c/bank/INPUT_BANK/content/{cid}", json={"disable_until_ts": "soon"})
    assert bad_until.status_code == 400 and "message" in bad_until.json()
    assert state(client) == before
    # the log names routes, never what was asked for
    log = server.output()
    assert "/c/bank/{bank_name}/signal" in log and H not in log and "INPUT_BANK" not in log


class _Media(http.server.BaseHTTPRequestHandler):
    image = b""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path == "/moved.png":
            self.send_response(302)
            self.send_header("Location", "/photo.png")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.image)))
        self.end_headers()
        self.wfile.write(self.image)

    def log_message(self, *args: object) -> None:
        pass


def test_api_keys_and_fetching_by_url(tmp_path):
    target = str(tmp_path / "bank.db")
    init_bank(target)
    done = run_cli("matcher", "add-key", target, "moderation-tool")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    _Media.image = photo(9)
    media = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Media)
    threading.Thread(target=media.serve_forever, daemon=True).start()
    server = start_matcher(target, "--require-keys", "--keys-for-matching", "--fetch-allow", "127.0.0.1")
    client = httpx.Client(base_url=server.url, timeout=30)
    auth = {"Authorization": f"Bearer {key}"}
    try:
        assert client.get("/status").status_code == 200 and client.get("/status/live").status_code == 200
        for headers in ({}, {"Authorization": "Bearer nciim_wrong"}, {"Authorization": key}):
            r = client.post("/c/banks", json={"name": "KEYED_BANK"}, headers=headers)
            assert r.status_code == 401 and "message" in r.json() and r.headers["www-authenticate"] == "Bearer"
            assert client.get("/m/lookup", params=LOOKUP, headers=headers).status_code == 401
        assert client.post("/c/banks", json={"name": "KEYED_BANK"}, headers=auth).status_code == 201
        assert client.get("/m/lookup", params=LOOKUP, headers=auth).json() == {}

        url = f"http://127.0.0.1:{media.server_address[1]}"
        fetched = client.get("/h/hash", params={"url": f"{url}/photo.png"}, headers=auth)
        uploaded = client.post("/h/hash", files={"photo": ("p.png", photo(9), "image/png")}, headers=auth)
        assert fetched.status_code == 200 and fetched.json() == uploaded.json()
        added = client.post("/c/bank/KEYED_BANK/content", params={"url": f"{url}/photo.png"}, headers=auth).json()
        r = client.get("/m/lookup", params={"url": f"{url}/photo.png"}, headers=auth)
        assert r.json() == {"pdq": {"KEYED_BANK": [{"bank_content_id": added["id"], "distance": "0"}]}}
        for bad in (f"{url}/moved.png", f"http://localhost:{media.server_address[1]}/photo.png",
                    "ftp://127.0.0.1/photo.png", "not a url"):
            r = client.get("/h/hash", params={"url": bad}, headers=auth)
            assert r.status_code == 400 and "message" in r.json(), bad

        assert run_cli("matcher", "remove-key", target, "moderation-tool").returncode == 0
        assert client.get("/m/lookup", params=LOOKUP, headers=auth).status_code == 401  # at once
    finally:
        client.close()
        server.close()
        media.shutdown()
        media.server_close()
