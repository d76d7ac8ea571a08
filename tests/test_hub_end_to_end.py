"""The whole chain through the commands, against a live hub: the survivor hashes a picture and
submits it, a platform's bank syncs and matches an edited copy, a wrong PIN withdraws nothing,
the right PIN withdraws the case, the next sync removes it and nothing matches any more."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub_server import hub, hub_store  # noqa: F401

PHOTO = Path(__file__).parent / "data" / "pdq" / "data" / "reg-test-input" / "labelme-subset" / "q0122.jpg"


def cli(*args: str, stdin: str | None = None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "ncii_hash", *args], input=stdin, capture_output=True, text=True,
                          timeout=120)


def test_hash_submit_sync_match_withdraw_sync(hub, tmp_path):
    if not PHOTO.exists():
        pytest.skip("conformance photo missing")
    from PIL import Image

    edited = tmp_path / "edited.jpg"
    with Image.open(PHOTO) as im:
        im.convert("RGB").save(edited, quality=80)  # a re-compressed copy
    submission = tmp_path / "sub.json"
    assert cli("hash", str(PHOTO), "-o", str(submission), "-q").returncode == 0
    done = cli("submit", str(submission), "--hub", hub.url, "--json")
    assert done.returncode == 0, done.stderr
    case = json.loads(done.stdout)
    keyfile = tmp_path / "platform.key"
    keyfile.write_text(",".join(hub.add_partner("platform")) + "\n")
    bank = str(tmp_path / "bank.db")
    assert cli("bank", "init", bank).returncode == 0
    assert cli("bank", "sync", bank, "--keys", str(keyfile)).returncode == 0
    found = cli("match", bank, str(edited))
    assert "MATCH" in found.stdout and case["case_number"] in found.stdout
    wrong = cli("case", "withdraw", case["case_number"], "--hub", hub.url, stdin="AAAAAAAAAA\n")
    assert wrong.returncode != 0
    assert cli("bank", "sync", bank, "--keys", str(keyfile)).returncode == 0
    assert "MATCH" in cli("match", bank, str(edited)).stdout  # the wrong PIN withdrew nothing
    right = cli("case", "withdraw", case["case_number"], "--hub", hub.url, stdin=case["pin"] + "\n")
    assert right.returncode == 0, right.stderr
    assert cli("bank", "sync", bank, "--keys", str(keyfile)).returncode == 0
    gone = cli("match", bank, str(edited))
    assert "MATCH" not in gone.stdout and "no match" in gone.stdout
