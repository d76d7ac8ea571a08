"""The HMA-compatible matcher and survivors' shared centre hashes (issue 20): a photo uploaded
(or fetched) for a lookup is also searched through its window variants when the bank holds
windows -- a rotated or bannered copy answers with the banked picture's content id --,
``windows=false`` turns that off, and hash lookups (``signal=``) are unchanged. A live
``ncii-hash matcher serve`` on 127.0.0.1, SQLite and PostgreSQL; the windows arrive from
another process (``ncii-hash bank add`` of a version-3 submission) through the change log."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from hub_server import run_cli
from matcher_helpers import OpenApi, bank_target, served_matcher, until

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "survivor"


def _jpeg(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _bannered(path: Path) -> bytes:
    im = Image.open(path).convert("RGB")
    w, h = im.size
    canvas = Image.new("RGB", (w, h + int(h * 0.15)), "white")
    canvas.paste(im, (0, 0))
    ImageDraw.Draw(canvas).text((w // 10, h + 4), "you will never guess who this is", fill="black")
    return _jpeg(canvas)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory):
    target = bank_target(request, tmp_path_factory)
    for client, _ in served_matcher(target):
        yield client, target, tmp_path_factory.mktemp("sub")


def _lookup(client: httpx.Client, data: bytes, **params) -> dict:
    r = client.post("/m/lookup", params=params, files={"photo": ("u.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    OpenApi().check("POST", "/m/lookup", r)
    return r.json()


def test_uploads_are_searched_through_the_banked_windows(served):
    client, target, tmp = served
    photo = sorted(EXAMPLES.glob("*.jpg"))[0]
    bannered = _bannered(photo)
    rotated = _jpeg(Image.open(photo).convert("RGB").rotate(-5, resample=Image.BICUBIC))
    assert _lookup(client, bannered) == {"pdq": {}}  # an empty bank: nothing, and no windows to search

    plain = tmp / "plain.json"
    done = run_cli("hash", str(photo), "-o", str(plain), "-q")
    assert done.returncode == 0, done.stderr
    assert run_cli("bank", "add", target, str(plain)).returncode == 0
    assert until(lambda: _lookup(client, _jpeg(Image.open(photo).convert("RGB"))) != {"pdq": {}})
    assert _lookup(client, bannered) == {"pdq": {}}  # the picture alone: PDQ misses the banner

    shared = tmp / "shared.json"
    done = run_cli("hash", str(photo), "-o", str(shared), "--share-window", "-q")
    assert done.returncode == 0, done.stderr
    assert run_cli("bank", "add", target, str(shared)).returncode == 0
    assert until(lambda: len(_lookup(client, rotated)["pdq"].get("LOCAL", [])) == 1)
    exact = [e["bank_content_id"] for e in _lookup(client, _jpeg(Image.open(photo).convert("RGB")))["pdq"]["LOCAL"]]
    assert len(exact) == 2  # both cases hold the picture; only the second shared its centre
    # a rotated copy is searched through its centre only (a rotated whole frame loses its
    # corners): it finds the picture banked with its window, and only that one
    assert [h["bank_content_id"] for h in _lookup(client, rotated)["pdq"]["LOCAL"]] == [max(exact)]
    # a bannered copy: its centre finds the window; the photo inside the banner, hashed whole
    # now that the bank holds windows (docs/accuracy.md, WINDOW_VARIANTS), finds both pictures
    assert max(exact) in [h["bank_content_id"] for h in _lookup(client, bannered)["pdq"]["LOCAL"]]
    assert _lookup(client, bannered, windows="false") == {"pdq": {}}
    assert _lookup(client, rotated, windows="false") == {"pdq": {}}
    assert _lookup(client, rotated, dihedral="true") != {"pdq": {}}  # dihedral and windows together
    r = client.post("/m/lookup", params={"windows": "maybe"}, files={"photo": ("u.jpg", bannered, "image/jpeg")})
    assert r.status_code == 400 and "windows" in r.text
