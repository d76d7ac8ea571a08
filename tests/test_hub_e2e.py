"""End to end over a real hub (uvicorn on 127.0.0.1, tests/hub_server.py) with real
``ncii-hash`` processes: the survivor hashes and submits, the platform syncs and matches an
edited copy, the survivor withdraws (wrong PINs first: nothing withdrawn, slowed down, the right
PIN still works), the platform syncs again and the copy no longer matches."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from PIL import Image, ImageOps

from hub_server import hub, hub_store  # noqa: F401  (fixtures)
from test_survivor_cli import slowed_down

DATA = Path(__file__).parent / "data" / "pdq" / "data"
IMAGES = [DATA / "bridge-mods" / "square-128x128.jpg", DATA / "misc-images" / "wee.jpg"]


def cli(*args: str, stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ncii_hash", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def edited_copy(src: Path, dst: Path) -> Path:
    """What an uploader does to a picture: resized, mirrored, re-encoded."""
    with Image.open(src) as im:
        im = ImageOps.mirror(im.convert("RGB").resize((211, 211), Image.Resampling.BICUBIC))
        im.save(dst, "JPEG", quality=60)
    return dst


def matched_cases(bank: Path, image: Path) -> set:
    done = cli("match", str(bank), str(image), "--json", "-q")
    assert done.returncode == 0, done.stderr
    return {m["case_id"] for record in json.loads(done.stdout) for m in record.get("matches", [])}


def sync(bank: Path, keyfile: Path) -> dict:
    done = cli("bank", "sync", str(bank), "--keys", str(keyfile), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def withdraw(hub_url: str, case: str, pin: str) -> subprocess.CompletedProcess:
    return cli("case", "withdraw", case, "--hub", hub_url, stdin=pin + "\n")


def test_submit_sync_match_withdraw_sync_no_match(hub, tmp_path, monkeypatch, capsys):  # noqa: F811
    # Survivor: hash on her device, then submit to the hub she names.
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in IMAGES:
        shutil.copy(p, photos / p.name)
    sub = tmp_path / "submission.json"
    done = cli("hash", str(photos), "-o", str(sub), "-q")
    assert done.returncode == 0, done.stderr
    done = cli("submit", str(sub), "--hub", hub.url, "--json")
    assert done.returncode == 0, done.stderr
    opened = json.loads(done.stdout)
    case, pin = opened["case_number"], opened["pin"]
    assert set(opened) == {"case_number", "pin"} and case.startswith("NC-")
    assert "is an ncii-hash submission with 2 PDQ hashes" in done.stderr  # what was sent, shown first

    # Platform: its keys from the hub, a bank, a sync.
    keyfile = tmp_path / "hub.key"
    keyfile.write_text(",".join(hub.add_partner("platform")) + "\n")
    bank = tmp_path / "bank.db"
    assert cli("bank", "init", str(bank)).returncode == 0
    report = sync(bank, keyfile)
    assert (report["cases_added"], report["hashes_added"], report["cases_withdrawn"]) == (1, 2, 0)
    copy = edited_copy(IMAGES[0], tmp_path / "upload.jpg")
    assert matched_cases(bank, copy) == {case}

    # Wrong PINs withdraw nothing and are slowed down (the last ones in this process, milliseconds
    # apart, so the hub's backoff is still running when they arrive).
    for _ in range(2):
        done = withdraw(hub.url, case, "WRONGPIN00")
        assert done.returncode == 1 and "wrong case number or PIN" in done.stderr, done.stderr
    slowed = slowed_down(hub.url, case, monkeypatch, capsys)
    assert sync(bank, keyfile)["cases_withdrawn"] == 0
    assert matched_cases(bank, copy) == {case}

    # The right PIN works once the wait is over (the hub's Retry-After, never a lock).
    wait = threading.Event()
    for _ in range(5):
        wait.wait(int(re.search(r"try again in (\d+) second", slowed).group(1)))  # the hub's backoff passing
        done = withdraw(hub.url, case, pin)
        if "too many wrong PINs" not in done.stderr:
            break
        slowed = done.stderr
    assert done.returncode == 0, done.stderr
    assert f"case {case} is withdrawn" in done.stdout

    # Platform: the next sync withdraws it; the copy no longer matches.
    report = sync(bank, keyfile)
    assert report["cases_withdrawn"] == 1 and report["cases_added"] == 0
    assert matched_cases(bank, copy) == set()
    done = cli("bank", "stats", str(bank), "--json")
    stats = json.loads(done.stdout)
    assert (stats["hashes"], stats["withdrawn_cases"]) == (0, 1)
    status = cli("case", "status", case, "--hub", hub.url, stdin=pin)
    assert status.returncode == 0 and f"case {case}: withdrawn" in status.stdout
