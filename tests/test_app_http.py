"""The local app over real HTTP (a real uvicorn on 127.0.0.1, started as ``ncii-hash app``):
the security rules on every request, the size limits, nothing spooled to disk, and hashes equal
to the library's and the CLI's for the same files (the centre-window opt-in's too)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app_server import (
    EXAMPLES,
    TIE_SIZE,
    AppServer,
    canonical,
    cli_submission,
    encode,
    flat_centre,
    login,
    media_files,
    picture,
    post_headers,
)

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


@pytest.fixture(scope="module")
def spool(tmp_path_factory):
    return tmp_path_factory.mktemp("spool")  # the app's TMPDIR: must stay empty


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return media_files(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def app(spool, media):
    with AppServer(tmpdir=spool, folder=next(iter(media.values())).parent) as server:
        yield server


@pytest.fixture
def client(app):
    c = login(app)
    yield c
    c.close()


def assert_guarded(response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert value in response.headers.get(name, ""), (name, response.status_code, dict(response.headers))
    assert not any(h.startswith("access-control-") for h in response.headers), dict(response.headers)
    assert "server" not in response.headers


# ---- the token, the cookie, the Host ------------------------------------------------------------
def test_token_becomes_a_strict_cookie_named_after_the_port_and_leaves_the_url(app):
    with httpx.Client(base_url=app.base) as c:
        r = c.get(f"/?token={app.token}&lang=ar", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/?lang=ar"  # the token is gone, the rest kept
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{app.cookie_name}=") and str(app.port) in app.cookie_name
        assert app.token not in cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert_guarded(r)
        for odd in ("//evil.example/", "/api/state", "/\\evil.example"):
            r = c.get(f"{odd}?token={app.token}", follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/", odd
        page = c.get("/?lang=ar")
        assert page.status_code == 200 and 'dir="rtl"' in page.text and 'lang="ar"' in page.text
        assert_guarded(page)


def test_no_token_or_cookie_gets_403(app):
    with httpx.Client(base_url=app.base) as c:
        for path in ("/", "/api/state", "/static/app.js", "/api/submission.json"):
            r = c.get(path)
            assert r.status_code == 403, path
            assert_guarded(r)
        assert "printed" in c.get("/").text  # the page says what to do
        assert c.get("/?token=" + "A" * 43, follow_redirects=False).status_code == 403  # a wrong token
        c.cookies.set(app.cookie_name, "not-the-session")
        assert c.get("/api/state").status_code == 403
        other = httpx.Client(base_url=app.base, cookies={"ncii_hash_app_1": "x"})
        assert other.get("/api/state").status_code == 403
        # The quick-exit page needs no cookie and is neutral.
        exit_page = c.get("/exit")
        assert exit_page.status_code == 200 and "<title>New Tab</title>" in exit_page.text
        assert_guarded(exit_page)


@pytest.mark.parametrize("host", ["evil.example:{port}", "localhost:{port}", "127.0.0.1", "127.0.0.1:1", ""])
def test_any_other_host_is_refused_even_with_the_cookie(client, app, host):
    r = client.get("/api/state", headers={"Host": host.format(port=app.port)})
    assert r.status_code == 403
    assert_guarded(r)
    r = client.post("/api/clear", headers={**post_headers(app), "Host": host.format(port=app.port)})
    assert r.status_code == 403


# ---- POST: Origin and the custom header; no CORS -----------------------------------------------
@pytest.mark.parametrize("headers", [
    {"X-Ncii-App": "1"},  # no Origin
    {"Origin": "http://evil.example", "X-Ncii-App": "1"},
    {"Origin": "http://localhost:{port}", "X-Ncii-App": "1"},
    {"Origin": "null", "X-Ncii-App": "1"},
    {"Origin": "{origin}"},  # no custom header
    {"Origin": "{origin}", "X-Ncii-App": "0"},
])
def test_posts_without_our_origin_and_header_are_refused(client, app, headers):
    made = {k: v.format(port=app.port, origin=app.origin) for k, v in headers.items()}
    r = client.post("/api/hash", content=encode(picture(9), "PNG"), headers=made)
    assert r.status_code == 403
    assert_guarded(r)


def test_no_preflight_and_no_cors(client, app):
    r = client.request("OPTIONS", "/api/hash", headers={"Origin": "http://evil.example",
                                                      "Access-Control-Request-Method": "POST",
                                                      "Access-Control-Request-Headers": "x-ncii-app"})
    assert r.status_code == 405
    assert_guarded(r)
    ok = client.post("/api/clear", headers=post_headers(app))
    assert ok.status_code == 200
    assert_guarded(ok)


def test_every_answer_carries_the_headers(client, app):
    for path in ("/", "/static/app.js", "/static/app.css", "/static/messages/ar.json", "/api/state",
                 "/static/../pyproject.toml", "/nothing-here"):
        assert_guarded(client.get(path))
    assert client.get("/static/nothing.js").status_code == 404
    state = client.get("/api/state").json()
    assert state["folder_files"] == 5 and state["hub"] == ""


# ---- sizes and the disk --------------------------------------------------------------------------
def test_size_limits(client, app):
    big = client.post("/api/forget", content=b"{" + b" " * 70_000 + b"}",
                      headers=post_headers(app, **{"Content-Type": "application/json"}))
    assert big.status_code == 413
    assert_guarded(big)

    def chunks():  # no Content-Length: the limit is counted while reading
        for _ in range(20):
            yield b" " * 8192

    streamed = client.post("/api/forget", content=chunks(), headers=post_headers(app))
    assert streamed.status_code == 413
    # A declared size over the limit is refused before anything is read (raw HTTP: no client
    # library sends a Content-Length it will not honour).
    import socket

    cookie = client.cookies.get(app.cookie_name)
    with socket.create_connection(("127.0.0.1", app.port), timeout=30) as s:
        s.sendall((f"POST /api/hash HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\nOrigin: {app.origin}\r\n"
                   f"X-Ncii-App: 1\r\nCookie: {app.cookie_name}={cookie}\r\nContent-Length: {600 * 2**20}\r\n"
                   "Connection: close\r\n\r\n").encode())
        head = s.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head
    assert "no-store" in head


def test_a_multi_megabyte_upload_stays_in_memory(client, app, spool, tmp_path):
    from ncii_hash.image import pdq_hash

    rng = np.random.default_rng(7)
    noisy = rng.integers(0, 256, (1400, 1400, 3), dtype=np.uint8)
    noisy[:700] //= 2
    data = encode(noisy, "PNG")
    assert len(data) > 4 * 2**20
    before = sorted(p.name for p in spool.iterdir())
    r = client.post("/api/hash", content=data, headers=post_headers(app))
    assert r.status_code == 200, r.text
    (tmp_path / "big.png").write_bytes(data)
    assert r.json()["pdq"] == pdq_hash(str(tmp_path / "big.png")).hash.tobytes().hex()
    assert before == [] and sorted(p.name for p in spool.iterdir()) == []


# ---- hashes ------------------------------------------------------------------------------------
def test_page_hashes_equal_the_library_and_the_cli(client, app, media, tmp_path):
    from ncii_hash.image import pdq_hash
    from ncii_hash.video import hash_video

    ids = []
    for kind, path in media.items():
        r = client.post("/api/hash", content=path.read_bytes(), headers=post_headers(app))
        assert r.status_code == 200, (kind, r.text)
        body = r.json()
        ids.append(body["id"])
        if kind == "video":
            assert body["kind"] == "video" and body["frames"] == len(np.unique(hash_video(path).frames, axis=0))
            assert body["thumbnail"] is None
        else:
            expected = pdq_hash(str(path))
            assert body["pdq"] == expected.hash.tobytes().hex() and body["quality"] == expected.quality
            assert body["thumbnail"].startswith("data:image/jpeg;base64,")
    r = client.post("/api/submission", json={"ids": ids, "features": False}, headers=post_headers(app))
    assert r.status_code == 200
    text = r.json()["text"]
    saved = client.get("/api/submission.json")
    assert saved.text == text and "attachment" in saved.headers["content-disposition"]
    assert_guarded(saved)

    assert canonical(json.loads(text)) == canonical(cli_submission(media.values(), tmp_path))
    for path in media.values():  # no name, no part of a name, no folder
        for word in (path.name, path.stem, path.parent.name, "beach", "secret"):
            assert word not in text


def test_centre_window_opt_in_gives_the_cli_window_hashes(client, app, tmp_path):
    """?window=true hashes each picture's centre too; the submission asked with windows is
    `ncii-hash hash --share-window`'s (version 3, windows of quality < 50 left out), and without
    them the same pictures give version 1 exactly as before."""
    from ncii_hash.image import pdq_hash, pdq_window_hash
    from ncii_hash.submission import parse_submission

    files = list(EXAMPLES)
    for name, px in (("tie.png", picture(21, TIE_SIZE)), ("flat.png", flat_centre(22))):
        (tmp_path / name).write_bytes(encode(px, "PNG"))
        files.append(tmp_path / name)
    ids, plain_ids = [], []
    for path in files:
        r = client.post("/api/hash?window=true", content=path.read_bytes(), headers=post_headers(app))
        assert r.status_code == 200, r.text
        body = r.json()
        whole, centre = pdq_hash(str(path)), pdq_window_hash(str(path))
        assert body["pdq"] == whole.hash.tobytes().hex() and body["quality"] == whole.quality
        assert body.get("window") == (centre.hash.tobytes().hex() if centre.quality >= 50 else None), path.name
        ids.append(body["id"])
        plain = client.post("/api/hash", content=path.read_bytes(), headers=post_headers(app)).json()
        assert "window" not in plain and plain["pdq"] == body["pdq"]
        plain_ids.append(plain["id"])

    r = client.post("/api/submission", json={"ids": ids, "windows": True}, headers=post_headers(app))
    shared = json.loads(r.json()["text"])
    assert shared["version"] == 3 and shared["counts"]["window_hashes"] == 3
    parse_submission(shared)
    out = tmp_path / "cli.json"
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "ncii_hash", "hash", *map(str, files), "-o", str(out), "-q",
                           "--share-window"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    cli = json.loads(out.read_text())
    assert canonical(shared) == canonical(cli) and shared["counts"] == cli["counts"]
    for item in shared["items"]:
        path = files[[pdq_hash(str(f)).hash.tobytes().hex() for f in files].index(item["pdq"])]
        if path.name == "flat.png":
            assert "windows" not in item
        else:
            centre = pdq_window_hash(str(path))
            assert item["windows"] == {"centre70": {"pdq": centre.hash.tobytes().hex(), "quality": centre.quality}}

    for chosen, windows in ((ids, False), (plain_ids, True), (plain_ids, False)):
        r = client.post("/api/submission", json={"ids": chosen, "windows": windows}, headers=post_headers(app))
        sub = json.loads(r.json()["text"])
        assert sub["version"] == 1 and "window_hashes" not in sub["counts"] and "windows" not in r.json()["text"]
        assert canonical(sub) == canonical({**cli, "items": [{k: v for k, v in i.items() if k != "windows"}
                                                             for i in cli["items"]]})
    assert client.post("/api/submission", json={"ids": ids, "windows": "yes"},
                       headers=post_headers(app)).json()["text"].count("windows") == 0


def test_folder_files_are_hashed_from_disk_the_same_way(client, app, media):
    from ncii_hash.image import pdq_hash

    names = sorted(p.name for p in media.values())
    index = names.index(media["png"].name)
    r = client.post(f"/api/folder/{index}", headers=post_headers(app))
    assert r.status_code == 200, r.text
    assert r.json()["pdq"] == pdq_hash(str(media["png"])).hash.tobytes().hex() and "window" not in r.json()
    from ncii_hash.image import pdq_window_hash

    r = client.post(f"/api/folder/{index}?window=true", headers=post_headers(app))
    assert r.json()["window"] == pdq_window_hash(str(media["png"])).hash.tobytes().hex()
    assert client.post("/api/folder/99", headers=post_headers(app)).status_code == 404


@pytest.mark.parametrize("data, code", [
    (b"", "empty"),
    (b"hello, this is a note\n" * 10, "unsupported"),
    (b"%PDF-1.4\n" + bytes(200), "unsupported"),
    (None, "unreadable"),  # a truncated JPEG
    ("huge", "too_large"),  # a PNG header announcing 400 megapixels (refused before decoding)
])
def test_unusable_files_get_a_code_the_page_words(client, app, data, code):
    if data is None:
        data = encode(picture(11), "JPEG")[:600]
    elif data == "huge":
        import struct
        import zlib

        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

        data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""))
    r = client.post("/api/hash", content=data, headers=post_headers(app))
    assert r.status_code == 422 and r.json() == {"error": code}
    assert_guarded(r)


def test_the_log_names_no_file_and_no_hash(app, media):
    out = app.output()
    for path in media.values():
        assert path.name not in out and path.stem not in out
    assert not any(len(w) == 64 and all(c in "0123456789abcdef" for c in w) for w in out.split())


def test_nothing_reached_the_temp_folder(client, app, spool, media):
    """Last in this module: after every upload above (pictures, HEIC, the video, the refusals),
    the app's TMPDIR is still empty."""
    r = client.post("/api/hash", content=media["video"].read_bytes(), headers=post_headers(app))
    assert r.status_code == 200
    assert sorted(p.name for p in spool.iterdir()) == []
