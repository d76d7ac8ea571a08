"""The hub's survivor page (/survivor, docs/wasm.md) in Debian's Chromium driven by Playwright
(tests/browser.py): the WebAssembly modules are bit-exact on the conformance images in the
browser too; the whole flow on a phone (viewport, touch) with JPEG, PNG and WebP files gives the
hashes of `ncii-hash hash`, sends them to the hub, checks and withdraws the case, with no request
at all while hashing; the centre-hash opt-in gives `pdq_window_hash`'s window hashes bit for bit
(version 3) and, unticked, the version-1 submission as before; axe finds no WCAG 2.x A/AA violation in English or Arabic; and how far the
browser's own decoding lands from Pillow's is measured on the conformance images."""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from app_server import EXAMPLES, TIE_SIZE, canonical, cli_submission, encode, flat_centre, media_files, picture
from browser import WCAG, LoopbackOnly, browser  # noqa: F401  (browser: the fixture)
from hub_server import HubServer
from PIL import Image
from wasm_helpers import (
    ASSETS,
    check_against_reference,
    prepared,
    published_digests,
    with_alpha,
    write_pixels,
)

import ncii_hash as nh

pytest.importorskip("fastapi")
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubServer(str(tmp_path_factory.mktemp("hub") / "hub.db")) as server:
        yield server


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # no request log on the test's output
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A plain local web server for the bit-exactness runs (fast, unlike a routed response):
    the page's own pdq.js, survivor.js and modules, a bare harness page, and test files."""
    folder = tmp_path_factory.mktemp("site")
    for name in ("pdq.js", "survivor.js", "pdq.wasm", "pdq-simd.wasm"):
        shutil.copy(ASSETS / name, folder / name)
    (folder / "index.html").write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>harness</title>'
        '<script src="pdq.js"></script><script src="survivor.js" data-base="/" data-integrity="{}" '
        'data-max-pixels="50000000" data-max-file-bytes="104857600"></script></head><body></body></html>')
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def guard():
    return LoopbackOnly()


def new_page(browser, guard, **options):
    context = browser.new_context(accept_downloads=True, locale="en-US", **options)
    context.route("**/*", guard)
    return context, context.new_page()


@pytest.fixture
def page(browser, guard):
    context, page = new_page(browser, guard)
    yield page
    context.close()
    assert guard.foreign == [], f"requests left 127.0.0.1: {guard.foreign}"


def open_page(page, hub, lang: str = "") -> None:
    response = page.goto(hub.url + "/survivor" + (f"?lang={lang}" if lang else ""))
    assert response.ok
    assert "'wasm-unsafe-eval'" in response.headers["content-security-policy"]
    page.wait_for_selector("body.ready")


def no_violations(page, where: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options=WCAG)
    found = [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in results.response["violations"]]
    assert found == [], f"axe on {where}: {found}"


def wait_text(page, selector: str, start: str) -> None:
    page.wait_for_function("([s, t]) => (document.querySelector(s).textContent || '').startsWith(t)",
                           arg=[selector, start])


# ---- bit-exactness in the browser ----------------------------------------------------------------
HASH_ALL = """async ([manifest, integrity]) => {
  const raw = new Uint8Array(await (await fetch("pixels.raw")).arrayBuffer());
  const out = {};
  for (const scalar of [true, false]) {
    const h = await NciiPdq.load("/", integrity, scalar);
    out[scalar ? "pdq.wasm" : "pdq-simd.wasm"] = {simd: h.simd, results: manifest.images.map((im) =>
      h.hash(raw.subarray(im.offset, im.offset + im.width * im.height * im.channels), im.width, im.height,
             im.channels, {dihedral: true}))};
  }
  return out;
}"""


def check_in_browser(page, hub, site, root: Path) -> int:
    """The modules as the hub serves them (their integrity checked), in a bare page of the
    test's own server, given the pixels Pillow decoded."""
    cases = prepared(root)
    folder, url = site
    _, manifest = write_pixels([px for _, px, _ in cases] + [with_alpha(px) for _, px, _ in cases], folder)
    open_page(page, hub)
    integrity = json.loads(page.get_attribute("script[data-integrity]", "data-integrity"))
    page.goto(url + "index.html")
    got = page.evaluate(HASH_ALL, [manifest, integrity])
    assert got["pdq-simd.wasm"]["simd"] is True and got["pdq.wasm"]["simd"] is False
    for module, answer in got.items():
        check_against_reference(module, answer["results"], cases)
    return len(cases)


def test_browser_subset_bit_exact(page, hub, site, subset_pdq):
    assert check_in_browser(page, hub, site, subset_pdq) >= 8


def test_browser_full_set_bit_exact(page, hub, site, full_pdq):
    assert check_in_browser(page, hub, site, full_pdq) == 49


# ---- the browser's decoder against Pillow's ------------------------------------------------------
HASH_FILES = """async (names) => {
  const out = [];
  for (const name of names) {
    const blob = await (await fetch(name)).blob();
    const r = await (await fetch("/api/hash", {method: "POST", body: blob})).json();
    out.push([r.pdq || null, r.quality === undefined ? null : r.quality, r.error || null]);
  }
  return out;
}"""


def decode_distances(page, site, paths: list) -> list:
    """(path, bits between the page's hash and `ncii-hash hash`'s, page error, qualities) per
    file: each file goes through survivor.js's own decoding and hashing."""
    folder, url = site
    for k, p in enumerate(paths):
        shutil.copy(p, folder / f"f{k}")
    page.goto(url + "index.html")
    got = page.evaluate(HASH_FILES, [f"f{k}" for k in range(len(paths))])
    out = []
    for p, (pdq, quality, error) in zip(paths, got):
        native = nh.pdq_hash(p)
        out.append((p, None if pdq is None else nh.hamming(pdq, native.hex), error, native.quality, quality))
    return out


def test_browser_decoding_against_pillow(page, site, full_pdq, record_property):
    """Measured, not only bounded: docs/wasm.md reports these numbers."""
    paths = sorted(p for p in (full_pdq / "data").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp",
                                                                                        ".gif", ".bmp"))
    rows = decode_distances(page, site, paths)
    hashed = [r for r in rows if r[1] is not None]
    exact = sum(1 for r in hashed if r[1] == 0 and r[3] == r[4])
    dist = [r[1] for r in hashed]
    summary = {"files": len(rows), "hashed": len(hashed), "bit_exact": exact, "max_bits": max(dist),
               "mean_bits": round(float(np.mean(dist)), 2),
               "differing": sorted((str(r[0].relative_to(full_pdq / "data")), r[1]) for r in hashed if r[1]),
               "refused": sorted((str(r[0].relative_to(full_pdq / "data")), r[2]) for r in rows if r[1] is None)}
    record_property("decode_vs_pillow", json.dumps(summary))
    print("decode vs Pillow:", json.dumps(summary))
    for p, bits, _, native_quality, _ in hashed:
        if native_quality >= 80:  # Meta's rule for decoder differences
            assert bits <= 10, f"{p}: {bits} bits from Pillow's decoding"


# ---- the flow on a phone -------------------------------------------------------------------------
def rotated_jpeg(folder: Path) -> Path:
    """A JPEG stored sideways with EXIF orientation 6 (the page must turn it like Pillow)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.fromarray(picture(7, (240, 320))).save(out, format="JPEG", quality=92, exif=exif.tobytes())
    path = folder / "IMG_0007.jpg"
    path.write_bytes(out.getvalue())
    return path


def frame_distances(page_frames: list, native_frames: list) -> dict:
    """How close the browser's frame hashes are to the native ones: for each page frame, the
    bits to the nearest native frame (the decoders differ, so equality is not expected)."""
    best = [min(nh.hamming(f["pdq"], g["pdq"]) for g in native_frames) for f in page_frames]
    return {"page_frames": len(page_frames), "native_frames": len(native_frames), "nearest_bits": sorted(best),
            "within_31_bits": sum(b <= 31 for b in best)}


def tap(page, selector: str) -> None:
    page.tap(selector)


def answer_check(page) -> None:
    for name in ("age", "you", "intimate"):
        tap(page, f"input[name={name}][value=yes]")
    tap(page, "#check-continue")


def shot(page, name: str) -> None:
    """Screenshots for docs/wasm.md when $NCII_HASH_SURVIVOR_SCREENSHOTS names a folder."""
    where = os.environ.get("NCII_HASH_SURVIVOR_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / f"{name}.png"))


def test_whole_flow_on_a_phone(browser, hub, guard, tmp_path):
    media = media_files(tmp_path / "media")
    files = [media["jpeg"], media["png"], media["webp"], rotated_jpeg(tmp_path / "media")]
    context, page = new_page(browser, guard, **PHONE)
    try:
        open_page(page, hub)
        assert page.evaluate("() => matchMedia('(pointer: coarse)').matches")
        no_violations(page, "the check")
        shot(page, "1-check")
        answer_check(page)
        assert page.is_visible("#step-choose")
        no_violations(page, "choosing files")

        requests: list = []
        page.on("request", lambda r: requests.append(r.url))
        context.set_offline(True)  # works offline once loaded
        page.set_input_files("#pick-files", [str(f) for f in files + [media["heic"], media["video"]]])
        wait_text(page, "#status", "Done")
        context.set_offline(False)
        assert requests == [], "the page made requests while hashing"
        assert page.inner_text("#status") == "Done: 5 fingerprinted, 1 could not be used."
        assert "IMG_0004.heic: This browser cannot read" in page.inner_text("#errors")
        assert page.get_attribute("#thumbs [role=img]", "aria-label") == "video 5 of 5"
        no_violations(page, "the thumbnails")
        shot(page, "2-hashed")

        tap(page, "#to-review")
        page.wait_for_selector("#step-review:not([hidden])")
        shown = json.loads(page.inner_text("#submission-text"))
        cli = cli_submission(files + [media["video"]], tmp_path)
        pictures = {**shown, "items": [i for i in shown["items"] if i["kind"] == "image"]}
        assert canonical(pictures) == canonical({**cli, "items": [i for i in cli["items"] if i["kind"] == "image"]})
        (video,) = [i for i in shown["items"] if i["kind"] == "video"]
        (native_video,) = [i for i in cli["items"] if i["kind"] == "video"]
        assert video["md5"] == native_video["md5"]  # StopNCII's video signal: exact
        assert shown["counts"] == {**cli["counts"], "video_frames": len(video["frames"])}
        near = frame_distances(video["frames"], native_video["frames"])
        print("video frames, page vs native:", json.dumps(near))
        assert near["page_frames"] >= 1 and near["within_31_bits"] == near["page_frames"]
        no_violations(page, "what will be sent")
        shot(page, "3-review")
        with page.expect_download() as download:
            tap(page, "#save")
        assert json.loads(Path(download.value.path()).read_text()) == shown

        assert page.input_value("#hub") == hub.url
        tap(page, "#send")
        page.wait_for_selector("#step-done:not([hidden])")
        case, pin = page.inner_text("#done-case"), page.inner_text("#done-pin")
        assert case.startswith("NC-") and len(pin) >= 10
        no_violations(page, "the case number and PIN")
        shot(page, "4-case-opened")

        tap(page, "#done-to-case")
        page.fill("#case-number", case)
        page.fill("#case-pin", pin)
        tap(page, "#case-status")
        wait_text(page, "#case-result", "Case")
        assert page.inner_text("#case-result").startswith(f"Case {case} is active: 5 items")
        no_violations(page, "status and withdrawal")
        tap(page, "#withdraw-sure")
        tap(page, "#case-withdraw")
        wait_text(page, "#case-result", f"Case {case} is withdrawn. Platforms")
        page.fill("#case-pin", "WRONGPIN00")
        tap(page, "#case-status")
        wait_text(page, "#case-result", "Wrong case number")

        for body in guard.bodies:  # only hashes went out: no file name, no picture
            assert len(body) < 20_000
            for f in files:
                assert f.stem.encode() not in body
        assert pin not in hub.output() and case not in hub.output()
    finally:
        context.close()
    assert guard.foreign == []


def test_arabic_page_on_a_phone(browser, hub, guard, tmp_path):
    media = media_files(tmp_path / "media")
    context, page = new_page(browser, guard, **PHONE)
    try:
        open_page(page, hub, "ar")
        assert page.get_attribute("html", "dir") == "rtl" and page.title() == "اصنعي بصمات لصورك"
        no_violations(page, "the check (ar)")
        answer_check(page)
        no_violations(page, "choosing files (ar)")
        page.set_input_files("#pick-files", [str(media["jpeg"])])
        page.wait_for_function("() => document.getElementById('thumbs').children.length === 1")
        no_violations(page, "the thumbnails (ar)")
        tap(page, "#to-review")
        page.wait_for_selector("#step-review:not([hidden])")
        no_violations(page, "what will be sent (ar)")
    finally:
        context.close()


def test_quick_exit_leaves_for_a_neutral_page(page, hub):
    open_page(page, hub)
    page.click("#quick-exit")
    page.wait_for_url("**/exit")
    assert page.title() == "New Tab"


# ---- the centre-window opt-in ----------------------------------------------------------------------
HASH_WINDOWS = """async (names) => {
  const out = [];
  for (const name of names) {
    const blob = await (await fetch(name)).blob();
    const r = await (await fetch("/api/hash?window=true", {method: "POST", body: blob})).json();
    out.push([r.pdq || null, r.quality === undefined ? null : r.quality, r.window || null, r.error || null]);
  }
  return out;
}"""


def window_files(folder: Path) -> list:
    """The two example photos; a picture whose centre box needs Python's round-half-even
    (TIE_SIZE), in colour and in grey (hashed as one channel); an EXIF-rotated JPEG of that size
    (the box of the upright picture); one whose flat centre is never shared."""
    folder.mkdir(parents=True, exist_ok=True)
    tie = picture(21, TIE_SIZE)
    out = list(EXAMPLES)
    for name, img in (("tie.png", Image.fromarray(tie)), ("tie-grey.png", Image.fromarray(tie[:, :, 1])),
                      ("flat.png", Image.fromarray(flat_centre(22)))):
        img.save(folder / name)
        out.append(folder / name)
    exif = Image.Exif()
    exif[0x0112] = 6
    (folder / "tie-turned.jpg").write_bytes(encode(picture(23, (TIE_SIZE[1], TIE_SIZE[0])), "JPEG", quality=92,
                                                   exif=exif.tobytes()))
    return out + [folder / "tie-turned.jpg"]


def test_window_hashes_in_the_browser_equal_pdq_window_hash(page, site, tmp_path):
    """survivor.js cuts the centre box from the same decoded pixels as the whole hash and hashes
    it with the module: pdq_window_hash's bits, with round-half-even boxes (215 x 155), grey
    pictures, EXIF rotation; a window of quality < 50 is not kept."""
    from ncii_hash.image import pdq_window_hash

    folder, url = site
    files = window_files(tmp_path / "media")
    for k, f in enumerate(files):
        shutil.copy(f, folder / f"w{k}")
    page.goto(url + "index.html")
    got = page.evaluate(HASH_WINDOWS, [f"w{k}" for k in range(len(files))])
    assert Image.open(files[-1]).size == (TIE_SIZE[1], TIE_SIZE[0])  # stored sideways
    for f, (pdq, quality, window, error) in zip(files, got):
        whole, centre = nh.pdq_hash(f), pdq_window_hash(f)
        assert error is None and (pdq, quality) == (whole.hex, whole.quality), f.name
        assert window == (centre.hex if centre.quality >= 50 else None), f.name
    assert [w is None for _, _, w, _ in got] == [f.name == "flat.png" for f in files]
    plain = page.evaluate(HASH_FILES, ["w0"])  # without the opt-in: no window is made
    assert plain == [[got[0][0], got[0][1], None]]


def submitted(page) -> dict:
    page.wait_for_selector("#step-review:not([hidden])")
    return json.loads(page.inner_text("#submission-text"))


def test_centre_window_opt_in_on_the_page(browser, hub, guard, tmp_path):
    """Unticked (the default): version 1, no window, as before. Ticked before choosing: version 3,
    each picture's `windows.centre70` equal to pdq_window_hash's, the whole hashes unchanged, the
    review says so, and the hub takes it."""
    from ncii_hash.image import pdq_window_hash

    files = window_files(tmp_path / "media")
    whole = {nh.pdq_hash(f).hex: f for f in files}
    context, page = new_page(browser, guard, **PHONE)
    try:
        for ticked in (False, True):
            open_page(page, hub)
            answer_check(page)
            assert page.is_visible("#window") and not page.is_checked("#window")
            assert "made inside this browser" in page.inner_text("#window-box")
            if ticked:
                tap(page, "#window")
                no_violations(page, "choosing files, centre hashes ticked")
            page.set_input_files("#pick-files", [str(f) for f in files])
            wait_text(page, "#status", "Done")
            tap(page, "#to-review")
            shown = submitted(page)
            assert sorted(i["pdq"] for i in shown["items"]) == sorted(whole)
            if not ticked:
                assert shown["version"] == 1 and set(shown["counts"]) == {"items", "image", "video", "video_frames",
                                                                           "low_quality"}
                assert not any("windows" in i for i in shown["items"]) and page.is_hidden("#review-windows")
                continue
            assert shown["version"] == 3 and shown["counts"]["window_hashes"] == len(files) - 1
            for item in shown["items"]:
                centre = pdq_window_hash(whole[item["pdq"]])
                expected = {"centre70": {"pdq": centre.hex, "quality": centre.quality}} if centre.quality >= 50 else None
                assert item.get("windows") == expected, whole[item["pdq"]].name
            assert page.inner_text("#review-windows").startswith(
                f"Also included, because you chose it: a fingerprint of the centre of {len(files) - 1} of your "
                f"{len(files)} photos.")
            no_violations(page, "what will be sent, with centre hashes")
            tap(page, "#send")
            page.wait_for_selector("#step-done:not([hidden])")
            assert page.inner_text("#done-case").startswith("NC-")
        sent = [json.loads(b) for b in guard.bodies if b.startswith(b"{") and b"ncii-hash-submission" in b]
        assert [s["version"] for s in sent] == [3]
    finally:
        context.close()
    assert guard.foreign == []


def test_pixel_limit_before_decoding(page, site):
    """A PNG whose header says 8000x8000 (64 megapixels) is refused as too large from its first
    bytes: the file is only a header, so decoding it would have said "unreadable" instead."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 8000, 8000, 8, 2, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    folder, url = site
    (folder / "huge.png").write_bytes(head)
    (folder / "broken.png").write_bytes(head.replace(struct.pack(">II", 8000, 8000), struct.pack(">II", 80, 80)))
    page.goto(url + "index.html")
    got = page.evaluate(HASH_FILES, ["huge.png", "broken.png"])
    assert got == [[None, None, "too_large"], [None, None, "unreadable"]]


# ---- over HTTP, without a browser ----------------------------------------------------------------
def test_page_headers_and_subresource_integrity(hub):
    """Every script and the style sheet name the SHA-384 of the bytes the hub serves; the
    modules' SHA-256 are those published in docs/wasm.md; the strict headers are on every answer."""
    import base64
    import hashlib
    import re

    import httpx
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        page = client.get("/survivor", headers={"Accept-Language": "ar"})
        assert page.status_code == 200 and 'lang="ar" dir="rtl"' in page.text
        tags = re.findall(r'<(?:script src|link rel="stylesheet" href)="([^"]+)" integrity="([^"]+)"', page.text)
        assert {t[0].rsplit("/", 1)[1] for t in tags} == {"app.css", "pdq.js", "md5.js", "survivor.js", "app.js"}
        assert "<script>" not in page.text and "http" not in re.sub(r'href="https://takeitdown[^"]+"', "", page.text)
        for src, integrity in tags:
            body = client.get(src)
            assert body.status_code == 200
            assert integrity == "sha384-" + base64.b64encode(hashlib.sha384(body.content).digest()).decode()
            assert body.headers["content-security-policy"] == page.headers["content-security-policy"]
        modules = json.loads(re.search(r'data-integrity="([^"]+)"', page.text).group(1).replace("&quot;", '"'))
        for name, integrity in modules.items():
            body = client.get("/survivor/static/" + name)
            assert body.headers["content-type"] == "application/wasm"
            assert hashlib.sha256(body.content).hexdigest() == published_digests()[name]
            assert integrity == "sha256-" + base64.b64encode(hashlib.sha256(body.content).digest()).decode()
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self' 'wasm-unsafe-eval';" in csp
        assert "connect-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
        assert client.get("/survivor/static/../app.py").status_code == 404
        assert client.get("/survivor/static/nothing.js").status_code == 404
        assert client.get("/exit").headers["content-security-policy"] == csp


def test_avif_decoded_by_the_browser_heic_refused(page, site, tmp_path, record_property):
    """AVIF: Chromium decodes it (its own AV1 decoder and YUV conversion, so the hash is
    measured against `ncii-hash hash`'s, not required equal); HEIC: Chromium has no decoder, so
    the page says the format is not readable here (the app reads it)."""
    from app_server import encode

    folder, url = site
    (folder / "photo.avif").write_bytes(encode(picture(8, (400, 300)), "AVIF", quality=90))
    (folder / "photo.heic").write_bytes(encode(picture(9, (400, 300)), "HEIF", quality=90))
    page.goto(url + "index.html")
    (avif, heic) = page.evaluate(HASH_FILES, ["photo.avif", "photo.heic"])
    assert heic == [None, None, "unsupported"]
    native = nh.pdq_hash(folder / "photo.avif")
    bits = nh.hamming(avif[0], native.hex)
    record_property("avif_bits_from_native", bits)
    print("AVIF: page vs native", bits, "bits; quality", avif[1], native.quality)
    assert bits <= 31


def test_transparent_pictures_keep_the_colour_under_the_alpha(page, site, record_property):
    """The native path drops the alpha channel and keeps the colour under it; a 2D canvas would
    premultiply (fully transparent -> black: 74 bits on the checkerboard below). The page reads
    such pictures back through WebGL instead: the same bits."""
    folder, url = site
    rgb = picture(11, (400, 300))
    h, w = rgb.shape[:2]
    board = (((np.arange(w)[None, :] // 20 + np.arange(h)[:, None] // 20) % 2) * 255).astype(np.uint8)
    ramp = np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))
    files = {
        "board.png": (Image.fromarray(np.dstack([rgb, board])), {}),
        "ramp.png": (Image.fromarray(np.dstack([rgb, ramp])), {}),
        "grey-alpha.png": (Image.fromarray(np.dstack([rgb[:, :, 1], board]), "LA"), {}),
        "palette.png": (Image.fromarray(rgb).quantize(64), {"transparency": 0}),
        "board.webp": (Image.fromarray(np.dstack([rgb, board])), {"lossless": True}),
        "board.gif": (Image.fromarray(rgb).quantize(64), {"transparency": 0}),
    }
    for name, (img, options) in files.items():
        img.save(folder / name, **options)
    page.goto(url + "index.html")
    got = page.evaluate(HASH_FILES, list(files))
    bits = {name: nh.hamming(g[0], nh.pdq_hash(folder / name).hex) for name, g in zip(files, got)}
    record_property("alpha_bits_from_native", json.dumps(bits))
    print("transparent pictures, bits from native:", json.dumps(bits))
    # A GIF's transparent pixels come out of the browser's decoder as (0, 0, 0, 0): the colour
    # of the transparent palette entry, which Pillow keeps, is gone before any read-back.
    assert {k: v for k, v in bits.items() if k != "board.gif"} == dict.fromkeys(set(files) - {"board.gif"}, 0)
    assert bits["board.gif"] <= 64
