"""The local app in a real browser (Playwright + the system's Chromium; see tests/browser.py):
the whole flow with real files -- the check, choosing files, blurred thumbnails, progress,
removing an item, saving, sending to a real hub, the case number and PIN, status, withdrawal --
in English and Arabic, with axe-core finding no WCAG 2.x A/AA violation on any step, no request
leaving 127.0.0.1 and no file name in any request. Screenshots of each step are written to
$NCII_HASH_APP_SCREENSHOTS (docs/images/app holds the ones docs/app.md shows)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app_server import (
    EXAMPLES,
    TIE_SIZE,
    AppServer,
    canonical,
    cli_submission,
    encode,
    flat_centre,
    media_files,
    picture,
)
from browser import WCAG, LoopbackOnly, browser  # noqa: F401  (browser: the fixture)
from hub_server import HubServer

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    server = HubServer(str(tmp_path_factory.mktemp("hub") / "hub.db"))
    with server:
        yield server


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return media_files(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def app(hub, tmp_path_factory):
    with AppServer(tmpdir=tmp_path_factory.mktemp("spool"), extra_args=["--hub", hub.url]) as server:
        yield server


@pytest.fixture(scope="module")
def screens(tmp_path_factory) -> Path:
    where = os.environ.get("NCII_HASH_APP_SCREENSHOTS")
    folder = Path(where) if where else tmp_path_factory.mktemp("screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def guard():
    return LoopbackOnly()


@pytest.fixture
def page(browser, guard):
    context = browser.new_context(accept_downloads=True, locale="en-US")
    context.route("**/*", guard)
    page = context.new_page()
    yield page
    context.close()
    assert guard.foreign == [], f"requests left 127.0.0.1: {guard.foreign}"


def no_violations(page, where: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options=WCAG)
    found = [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in results.response["violations"]]
    assert found == [], f"axe on {where}: {found}"


def open_app(page, app, lang: str = "") -> None:
    page.goto(app.url + (f"&lang={lang}" if lang else ""))
    assert "token=" not in page.url  # exchanged for the cookie and removed
    page.wait_for_selector("body.ready")


def answer_check(page, age="yes", you="yes", intimate="yes") -> None:
    for name, value in (("age", age), ("you", you), ("intimate", intimate)):
        page.check(f"input[name={name}][value={value}]")
    page.click("#check-continue")


def wait_text(page, selector: str, start: str) -> None:
    """Wait until the element's text starts with ``start`` (a function, not a string the page
    would have to eval: the app's CSP forbids eval, for Playwright too)."""
    page.wait_for_function("([s, t]) => (document.querySelector(s).textContent || '').startsWith(t)",
                           arg=[selector, start])


def status(page) -> str:
    return page.inner_text("#status")


# ---- the whole flow ------------------------------------------------------------------------------
def test_whole_flow_with_a_real_hub(page, app, hub, media, guard, screens, tmp_path):
    open_app(page, app)
    assert page.title() == "Local tool"
    no_violations(page, "the check")
    page.screenshot(path=str(screens / "1-check.png"), full_page=True)
    answer_check(page)
    assert page.is_visible("#step-choose")
    no_violations(page, "choosing files")
    page.screenshot(path=str(screens / "2-choose.png"), full_page=True)

    files = [media[k] for k in ("jpeg", "png", "webp", "heic", "video")]
    page.set_input_files("#pick-files", [str(f) for f in files])
    wait_text(page, "#status", "Done")
    assert status(page) == "Done: 5 fingerprinted, 0 could not be used."
    assert page.get_attribute("#progress", "value") == "5"
    alts = page.eval_on_selector_all("#thumbs img", "els => els.map(e => [e.alt, e.className])")
    assert alts == [[f"photo {i} of 5, blurred", "thumb blurred"] for i in range(1, 5)]
    assert page.get_attribute("#thumbs [role=img]", "aria-label") == "video 5 of 5"
    no_violations(page, "the thumbnails")
    page.screenshot(path=str(screens / "3-hashed-blurred.png"), full_page=True)
    page.click("#reveal")
    assert page.get_attribute("#reveal", "aria-pressed") == "true"
    assert page.eval_on_selector("#thumbs img", "e => [e.alt, e.className]") == ["photo 1 of 5", "thumb"]
    page.click("#reveal")
    assert page.eval_on_selector("#thumbs img", "e => e.className") == "thumb blurred"

    page.click("#to-review")
    page.wait_for_selector("#step-review:not([hidden])")
    shown = json.loads(page.inner_text("#submission-text"))
    assert canonical(shown) == canonical(cli_submission(files, tmp_path))  # bit-exact with `ncii-hash hash`
    assert "No names, dates, places or pictures are included." in page.inner_text("#step-review")
    no_violations(page, "what will be sent")
    page.screenshot(path=str(screens / "4-review.png"), full_page=True)

    png_hash = next(i["pdq"] for i in shown["items"] if i.get("pdq") and i["pdq"] in
                    cli_submission([media["png"]], tmp_path)["items"][0]["pdq"])
    row = page.locator("#review-items li", has_text=png_hash[:16])
    row.get_by_role("button", name="Remove").click()
    page.wait_for_function("(h) => document.getElementById('submission-text').textContent.indexOf(h) < 0",
                           arg=png_hash)
    left = json.loads(page.inner_text("#submission-text"))
    assert left["counts"]["items"] == 4 and png_hash not in json.dumps(left)
    assert status(page).startswith("Removed photo")

    with page.expect_download() as download:
        page.click("#save")
    saved = Path(download.value.path()).read_text()
    assert json.loads(saved) == left and saved.strip() == page.inner_text("#submission-text").strip()

    assert page.input_value("#hub") == hub.url
    page.click("#send")
    page.wait_for_selector("#step-done:not([hidden])")
    case, pin = page.inner_text("#done-case"), page.inner_text("#done-pin")
    assert case.startswith("NC-") and len(pin) >= 10
    assert "cannot be recovered" in page.inner_text("#step-done")
    no_violations(page, "the case number and PIN")
    page.screenshot(path=str(screens / "5-case-opened.png"), full_page=True)
    with page.expect_download() as case_file:
        page.click("#save-case")
    assert case in Path(case_file.value.path()).read_text()

    page.click("#done-to-case")
    assert page.inner_text("#done-pin") == ""  # shown once: gone when the step is left
    page.fill("#case-number", case)
    page.fill("#case-pin", pin)
    page.click("#case-status")
    wait_text(page, "#case-result", "Case")
    assert page.inner_text("#case-result").startswith(f"Case {case} is active: 4 items")
    no_violations(page, "status and withdrawal")
    page.screenshot(path=str(screens / "6-case-status.png"), full_page=True)
    page.click("#case-withdraw")
    assert status(page) == "Tick the box above first."
    page.check("#withdraw-sure")
    page.click("#case-withdraw")
    wait_text(page, "#case-result", f"Case {case} is withdrawn. Platforms")
    page.click("#case-status")
    wait_text(page, "#case-result", f"Case {case} is withdrawn.")
    page.fill("#case-pin", "WRONGPIN00")
    page.click("#case-status")
    wait_text(page, "#case-result", "Wrong case number")

    uploads = [b for b in guard.bodies if len(b) > 10_000]
    assert len(uploads) >= 5  # the files' bytes were seen by the interception...
    for body in guard.bodies:  # ...and no file name, or part of one, is in anything the page sent
        for f in files:
            assert f.name.encode() not in body and f.stem.encode() not in body
    assert pin not in app.output() and case not in app.output()


def window_files(folder: Path) -> list:
    """The two example photos, a picture whose centre box needs round-half-even, and one whose
    centre is flat (its window, quality 0, is never shared)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = list(EXAMPLES)
    for name, px in (("tie.png", picture(21, TIE_SIZE)), ("flat.png", flat_centre(22))):
        (folder / name).write_bytes(encode(px, "PNG"))
        out.append(folder / name)
    return out


def test_centre_window_opt_in(page, app, tmp_path):
    """Off by default: the submission is version 1 as before. Ticked before choosing the files:
    version 3 with each picture's centre hash, the same as `pdq_window_hash`, and the review
    step says they are included."""
    from ncii_hash.image import pdq_hash, pdq_window_hash

    files = window_files(tmp_path / "media")
    whole = {pdq_hash(str(f)).hash.tobytes().hex(): f for f in files}
    for ticked in (False, True):
        open_app(page, app)
        answer_check(page)
        assert page.is_visible("#window") and not page.is_checked("#window")
        assert "no more of your picture can be recovered" in page.inner_text("#window-box")
        if ticked:
            page.check("#window")
        page.set_input_files("#pick-files", [str(f) for f in files])
        wait_text(page, "#status", "Done")
        page.click("#to-review")
        page.wait_for_selector("#step-review:not([hidden])")
        shown = json.loads(page.inner_text("#submission-text"))
        assert sorted(i["pdq"] for i in shown["items"]) == sorted(whole)
        if not ticked:
            assert shown["version"] == 1 and "window_hashes" not in shown["counts"]
            assert not any("windows" in i for i in shown["items"]) and page.is_hidden("#review-windows")
            assert "centre" not in page.inner_text("#review-items")
            continue
        assert shown["version"] == 3 and shown["counts"]["window_hashes"] == 3
        for item in shown["items"]:
            centre = pdq_window_hash(str(whole[item["pdq"]]))
            expected = {"centre70": {"pdq": centre.hash.tobytes().hex(), "quality": centre.quality}}
            assert item.get("windows") == (expected if centre.quality >= 50 else None), whole[item["pdq"]].name
        assert page.inner_text("#review-windows").startswith(
            "Also included, because you chose it: a fingerprint of the centre of 3 of your 4 photos.")
        assert page.locator("#review-items li", has_text="centre fingerprint").count() == 3
        no_violations(page, "what will be sent, with centre hashes")


def test_cancel_stops_after_the_file_in_progress(page, app, tmp_path):
    pictures = []
    for i in range(3):
        p = tmp_path / f"p{i}.png"
        p.write_bytes(encode(picture(20 + i), "PNG"))
        pictures.append(str(p))
    held = []

    def hold_second(route):
        held.append(route)
        if len(held) != 2:
            route.continue_()

    page.route("**/api/hash*", hold_second)
    open_app(page, app)
    answer_check(page)
    page.set_input_files("#pick-files", pictures)
    wait_text(page, "#status", "Making fingerprint 2 of 3.")
    page.click("#cancel")
    wait_text(page, "#status", "Stopped")
    assert status(page) == "Stopped. 1 fingerprinted so far."
    assert page.locator("#thumbs img").count() == 1
    assert len(held) == 2
    try:
        held[1].continue_()
    except Exception:  # noqa: BLE001 - the page already gave up on it
        pass


def test_unusable_files_are_named_on_the_page_only(page, app, guard, tmp_path):
    note = tmp_path / "diary notes.txt"
    note.write_text("not a picture\n")
    broken = tmp_path / "broken-photo.jpg"
    broken.write_bytes(encode(picture(30), "JPEG")[:500])
    open_app(page, app)
    answer_check(page)
    page.set_input_files("#pick-files", [str(note), str(broken)])
    wait_text(page, "#status", "Done")
    errors = page.inner_text("#errors")
    assert "diary notes.txt: This is not a picture or video this tool can read." in errors
    assert "broken-photo.jpg: This file could not be read. It may be damaged." in errors
    assert page.is_disabled("#to-review")
    assert not any(b"diary" in b or b"broken-photo" in b for b in guard.bodies)


def test_drop_a_file(page, app):
    import base64

    open_app(page, app)
    answer_check(page)
    data = base64.b64encode(encode(picture(40), "PNG")).decode()
    page.evaluate("""(data) => {
        const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", data)
    wait_text(page, "#status", "Done")
    assert page.get_attribute("#thumbs img", "alt") == "photo 1 of 1, blurred"


def test_reflow_at_320_pixels_and_the_check_by_keyboard(page, app):
    page.set_viewport_size({"width": 320, "height": 640})
    open_app(page, app)
    for step in ("#step-check", "#step-choose"):
        assert page.evaluate("() => document.scrollingElement.scrollWidth") <= 320, step
        if step == "#step-check":
            page.focus("input[name=age][value=yes]")
            for name in ("age", "you", "intimate"):
                if name != "age":
                    page.keyboard.press("Tab")  # into the next group (its first radio)
                page.keyboard.press("Space")
                assert page.is_checked(f"input[name={name}][value=yes]")
            page.keyboard.press("Tab")  # to Continue
            page.keyboard.press("Enter")
            assert page.is_visible("#step-choose")
            assert page.evaluate("() => document.activeElement.id") == "choose-title"


def test_the_accessibility_check_can_fail(page):
    page.set_content("<html><body><img src='data:,'><input type='text'></body></html>")
    with pytest.raises(AssertionError, match="image-alt"):
        no_violations(page, "a page with faults")


def test_under_18_is_sent_to_take_it_down_and_goes_no_further(page, app):
    open_app(page, app)
    answer_check(page, age="no")
    assert page.is_visible("#under18") and page.is_hidden("#step-choose")
    assert page.get_attribute("#under18 a", "href") == "https://takeitdown.ncmec.org/"
    page.click("#check-continue")
    assert page.is_hidden("#step-choose")
    no_violations(page, "under 18")


def test_arabic_is_right_to_left_and_accessible(page, app, media, screens):
    open_app(page, app, lang="ar")
    assert page.get_attribute("html", "dir") == "rtl" and page.get_attribute("html", "lang") == "ar"
    assert page.title() == "أداة محلية"
    no_violations(page, "the check, in Arabic")
    page.screenshot(path=str(screens / "7-arabic.png"), full_page=True)
    answer_check(page)
    page.set_input_files("#pick-files", [str(media["jpeg"])])
    wait_text(page, "#status", "تم")
    assert page.get_attribute("#thumbs img", "alt") == "الصورة 1 من 1، مموّهة"
    no_violations(page, "the thumbnails, in Arabic")
    page.click("#to-review")
    page.wait_for_selector("#step-review:not([hidden])")
    no_violations(page, "what will be sent, in Arabic")
    page.click("#send")
    page.wait_for_selector("#step-done:not([hidden])")
    no_violations(page, "the case number and PIN, in Arabic")
    page.click("#done-to-case")
    no_violations(page, "status and withdrawal, in Arabic")
    page.click("#case-back")
    answer_check(page)  # the answers are kept
    page.set_input_files("#pick-files", [str(media["png"])])
    wait_text(page, "#status", "تم")
    page.click("#to-review")
    page.wait_for_selector("#step-review:not([hidden])")
    page.click("#back-to-hash")
    page.click("#add-more")
    assert page.is_visible("#step-choose")
    no_violations(page, "choosing files, in Arabic")


def test_quick_exit_clears_the_page_and_goes_nowhere_outside(page, app, media):
    open_app(page, app)
    answer_check(page)
    page.set_input_files("#pick-files", [str(media["png"])])
    wait_text(page, "#status", "Done")
    page.click("#quick-exit")
    page.wait_for_url(f"{app.base}/exit")
    assert page.title() == "New Tab"
    assert "photo" not in page.content() and "fingerprint" not in page.content().lower()
    page.go_back()  # the app's page was replaced, not left in the history
    assert not page.url.startswith(app.base + "/?") and page.url != app.base + "/"
