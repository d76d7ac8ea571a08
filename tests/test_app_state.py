"""The local app's lifetime and memory rules, without a browser: when it stops (page gone, idle,
never while a file is being hashed), what a submission holds, the feature-set and centre-window
opt-ins, the assets being package data, and the CLI's checks before it binds anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")

from app_server import EXAMPLES, TIE_SIZE, AppServer, encode, flat_centre, login, picture, post_headers  # noqa: E402
from ncii_hash.service.app.hashing import HashedMedia, Refused, hash_media  # noqa: E402
from ncii_hash.service.app.pages import LANGUAGES, STATIC, Pages  # noqa: E402
from ncii_hash.service.app.state import MAX_ITEMS, AppState  # noqa: E402
from ncii_hash.submission import parse_submission  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_stops_when_the_page_goes_quiet_or_nothing_happens():
    clock = Clock()
    state = AppState(idle_seconds=600, page_gone_seconds=150, clock=clock)
    clock.now += 599
    assert not state.should_stop()
    clock.now += 2
    assert state.should_stop()  # never opened: the idle time

    state = AppState(idle_seconds=600, page_gone_seconds=150, clock=clock)
    state.request_started(); state.heartbeat(); state.request_ended()
    clock.now += 149
    assert not state.should_stop()
    clock.now += 2
    assert state.should_stop()  # opened, then no heartbeat: the page was closed

    state.request_started()  # a long video being hashed keeps it alive
    clock.now += 10_000
    assert not state.should_stop()
    state.request_ended()
    assert not state.should_stop()
    clock.now += 151
    assert state.should_stop()


def test_submission_holds_only_the_chosen_items_and_no_bytes():
    state = AppState()
    a = state.add(hash_media(encode(picture(1), "PNG")))
    b = state.add(hash_media(encode(picture(2), "JPEG")))
    text = state.build_submission([b, "unknown", b], features=False)
    sub = parse_submission(__import__("json").loads(text))
    assert len(sub) == 1 and state.submission == text
    assert state.build_submission([], features=False) is None and state.submission is None
    state.forget([a, b])
    assert state.build_submission([a, b], features=False) is None


def test_the_item_count_is_bounded():
    state = AppState()
    media = HashedMedia(kind="image", pdq=np.zeros(32, np.uint8), quality=90)
    for _ in range(MAX_ITEMS):
        state.add(media)
    with pytest.raises(Refused) as refused:
        state.add(media)
    assert refused.value.code == "too_many"


def test_feature_sets_only_when_asked():
    pytest.importorskip("cv2")
    data = encode(picture(5, (640, 480)), "PNG")
    state = AppState()
    plain = state.add(hash_media(data))
    rich = state.add(hash_media(data, features=True))
    import json

    assert "local_features" not in json.loads(state.build_submission([plain], features=True))
    with_sets = json.loads(state.build_submission([rich], features=True))
    assert with_sets["version"] == 2 and len(with_sets["local_features"]["sets"]) == 1
    assert json.loads(state.build_submission([rich], features=False))["version"] == 1


def test_centre_windows_only_when_asked():
    """The window is pdq_window_hash of the same bytes (so `ncii-hash hash --share-window`'s),
    kept only at quality >= 50; the submission is version 3 only when she asked and one exists."""
    import json

    from ncii_hash.image import pdq_hash, pdq_window_hash

    files = [p.read_bytes() for p in EXAMPLES] + [encode(picture(21, TIE_SIZE), "PNG"), encode(flat_centre(22), "PNG")]
    state = AppState()
    ids, plain = [], []
    for data in files:
        media = hash_media(data, window=True)
        assert media.pdq.tobytes() == pdq_hash(data).hash.tobytes()
        ref = pdq_window_hash(data)
        if ref.quality >= 50:
            assert media.window == (ref.hash.tobytes(), ref.quality)
            assert media.summary()["window"] == ref.hash.tobytes().hex()
        else:
            assert media.window is None and "window" not in media.summary()
        ids.append(state.add(media))
        plain.append(state.add(hash_media(data)))
        assert hash_media(data).window is None
    assert [pdq_window_hash(d).quality >= 50 for d in files] == [True, True, True, False]

    shared = json.loads(state.build_submission(ids, features=False, windows=True))
    assert shared["version"] == 3 and shared["counts"]["window_hashes"] == 3
    sub = parse_submission(shared)
    for w in sub.windows:
        data = files[[pdq_hash(d).hash.tobytes() for d in files].index(sub.hashes[w.image].tobytes())]
        assert w.name == "centre70" and (w.pdq, w.quality) == (pdq_window_hash(data).hash.tobytes(),
                                                               pdq_window_hash(data).quality)
    without = json.loads(state.build_submission(ids, features=False))
    assert without["version"] == 1 and "window_hashes" not in without["counts"]
    assert not any("windows" in item for item in without["items"])
    assert sorted(i["pdq"] for i in without["items"]) == sorted(i["pdq"] for i in shared["items"])
    assert json.loads(state.build_submission(plain, features=False, windows=True))["version"] == 1


def test_assets_are_package_data_and_catalogues_agree():
    pages = Pages()
    for name in STATIC:
        assert pages.static(name) is not None
    assert pages.static("../routes.py") is None
    keys = {lang: set(pages.catalogues[lang]) for lang in LANGUAGES}
    assert all(k == keys["en"] for k in keys.values())
    page = pages.render("index.html", "ar")
    assert "{{" not in page and 'dir="rtl"' in page
    for lang in LANGUAGES:  # every {{key}} of the page has words; nothing loads from elsewhere
        html = pages.render("index.html", lang)
        assert "http://" not in html and "//cdn" not in html and "@import" not in html
    assert "url(" not in pages.static("app.css").body.decode()
    try:  # the wheel takes every file under src/ncii_hash (scikit-build-core's own file list)
        from scikit_build_core.build._pathutil import iter_package_files
    except ImportError:
        return
    src = Path(__file__).resolve().parent.parent / "src" / "ncii_hash"
    if not src.is_dir():
        return
    shipped = {str(t) for _, t in iter_package_files(packages={"ncii_hash": str(src)}, include=[], src_exclude=[],
                                                      target_exclude=[], build_dir="build/x", mode="default")}
    for name in (*STATIC, "index.html", "exit.html"):
        assert f"ncii_hash/service/app/assets/{name}" in shipped


def test_the_app_stops_by_itself_when_idle(tmp_path):
    app = AppServer(extra_args=["--idle-minutes", "0.03"]).start()
    try:
        assert app.proc.wait(60) == 0
    finally:
        app.close()


def test_the_default_browser_is_opened_at_the_printed_address(tmp_path):
    import os
    import shlex
    import threading

    opened = tmp_path / "opened"
    os.mkfifo(opened)  # the test blocks on reading it until the "browser" writes the address
    got: list = []
    reader = threading.Thread(target=lambda: got.append(opened.read_text()), daemon=True)
    reader.start()
    record = f"import sys, pathlib; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])"
    with AppServer(browser=f"{shlex.quote(sys.executable)} -c {shlex.quote(record)} %s") as app:
        reader.join(60)
        assert got == [app.url]


def test_folder_mode_and_the_hub_are_offered(tmp_path):
    (tmp_path / "a.png").write_bytes(encode(picture(8), "PNG"))
    (tmp_path / "notes.txt").write_text("x")
    with AppServer(folder=tmp_path, extra_args=["--hub", "http://127.0.0.1:9"]) as app:
        client = login(app)
        state = client.get("/api/state").json()
        assert state["folder_files"] == 1 and state["hub"] == "http://127.0.0.1:9"
        r = client.post("/api/folder/0", headers=post_headers(app))
        assert r.status_code == 200 and r.json()["kind"] == "image"
        r = client.post("/api/submission", json={"ids": [r.json()["id"]]}, headers=post_headers(app))
        assert r.status_code == 200
        r = client.post("/api/submit", json={"hub": "http://hub.example.org"}, headers=post_headers(app))
        assert r.status_code == 400  # plain http to another computer: refused before any connection
        client.close()


def test_hub_failures_become_codes_the_page_words():
    import json

    from ncii_hash._util.http import HTTPConnectionError, HTTPStatusError
    from ncii_hash.service.app.routes import _hub_error

    def code(exc, sending):
        r = _hub_error(exc, sending=sending)
        return r.status_code, json.loads(r.body)

    assert code(HTTPConnectionError("x"), True) == (502, {"error": "unreachable_maybe_sent"})
    assert code(HTTPConnectionError("x"), False) == (502, {"error": "unreachable"})
    assert code(HTTPStatusError(403, "wrong case number or PIN"), False) == (403, {"error": "wrong_pin"})
    assert code(HTTPStatusError(429, "slow down", 7.2), False) == (429, {"error": "too_many_tries", "retry_after": 8})
    assert code(HTTPStatusError(400, "no items"), True) == (502, {"error": "hub_refused", "status": 400})
    assert code(ValueError("no case"), True) == (502, {"error": "bad_answer"})
    catalogue = Pages().catalogues["en"]
    for word in ("unreachable_maybe_sent", "unreachable", "wrong_pin", "too_many_tries", "hub_refused", "bad_answer",
                 "bad_hub", "case_missing"):
        assert word in catalogue
    from ncii_hash.service.app.hashing import REFUSAL_CODES

    assert all(f"error_{c}" in catalogue for c in REFUSAL_CODES)


@pytest.mark.parametrize("args, words", [
    (["--hub", "http://hub.example.org"], "plain http:// is only allowed to this computer"),
    (["--port", "70000"], "--port must be 0..65535"),
    (["/no/such/folder"], "is not a folder"),
    (["--idle-minutes", "0"], "--idle-minutes must be positive"),
])
def test_cli_refuses_bad_options_before_binding(args, words):
    done = subprocess.run([sys.executable, "-m", "ncii_hash", "app", "--no-browser", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and words in done.stderr and done.stdout == ""


def test_a_missing_browser_skips_here_and_fails_under_ci(monkeypatch):
    import browser

    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium found"):
        browser.require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        browser.require_browser()


def test_without_opencv_the_opt_in_is_not_offered_and_hashing_goes_on(monkeypatch):
    import ncii_hash.service.app.hashing as hashing

    monkeypatch.setattr(hashing, "try_import", lambda name: None)
    assert not hashing.features_available()
    media = hashing.hash_media(encode(picture(6), "PNG"), features=True)
    assert media.features is None and media.pdq is not None
