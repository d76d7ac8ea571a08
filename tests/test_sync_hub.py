"""HashBank.sync and ``ncii-hash bank sync`` against the real hub (tests/hub_server.py): several
pages, resuming from the stored checkpoint (the second sync fetches only the delta), a withdrawal
reaching the bank and never re-added (not even by a full re-read), vPDQ videos on request, the
key line's URL as the default."""

from __future__ import annotations

import json
import subprocess
import sys


from hub_server import hub, hub_store, open_case, submission_body  # noqa: F401  (fixtures)
from ncii_hash import HashBank
from ncii_hash.submission import parse_submission


def withdraw_case(url: str, case: str, pin: str) -> None:
    import httpx

    r = httpx.post(f"{url}/cases/{case}/withdraw", json={"pin": pin}, timeout=30)
    assert r.status_code == 200, r.text


def test_sync_pages_resumes_with_the_delta_and_never_re_adds_a_withdrawal(hub, tmp_path):  # noqa: F811
    keys = ",".join(hub.add_partner("platform"))
    opened = []
    for seed in range(3):
        r, _ = open_case(hub.url, submission_body(seed, images=2))
        opened.append(r.json())
    with HashBank(tmp_path / "bank.db") as bank:
        first = bank.sync(None, keys, page_size=2)
        assert first.pages >= 3 and first.records == 6 and first.cases_added == 3 and first.complete
        for o in opened:
            assert bank.case(o["case_number"]).hashes == 2
        again = bank.sync(None, keys)
        assert (again.records, again.hashes_added, again.checkpoint) == (0, 0, first.checkpoint)

        r, _ = open_case(hub.url, submission_body(10, images=2))
        withdraw_case(hub.url, opened[0]["case_number"], opened[0]["pin"])
        delta = bank.sync(None, keys, page_size=2)
        assert delta.records == 4  # only the new case's 2 hashes and the withdrawn case's 2
        assert (delta.cases_added, delta.cases_withdrawn) == (1, 1)
        assert bank.case(opened[0]["case_number"]).status == "withdrawn"
        gone = parse_submission(submission_body(0, images=2)).hashes
        assert bank.match(gone) == []

        full = bank.sync(None, keys, restart=True)  # everything again: the withdrawn case stays withdrawn
        assert full.cases_added == 0 and full.hashes_added == 0
        assert bank.case(opened[0]["case_number"]).hashes == 0 and bank.match(gone) == []
        bank.verify()


def test_videos_arrive_as_items_when_asked_for(hub, tmp_path):  # noqa: F811
    keys = ",".join(hub.add_partner("platform"))
    body = submission_body(5, images=1, videos=1)
    r, _ = open_case(hub.url, body)
    case = r.json()["case_number"]
    sub = parse_submission(body)
    with HashBank(tmp_path / "stock.db") as bank:
        report = bank.sync(None, keys)  # stock signal types: the image, and the video's MD5 kept with the case
        assert report.hashes_added == 1 and report.skipped == 0
    with HashBank(tmp_path / "video.db") as bank:
        report = bank.sync(None, keys, signal_types=("ImagePDQ", "VideoMD5", "NciiVideoPDQ"))
        assert report.hashes_added == 1 + sub.videos[0].frames.shape[0]
        v = sub.videos[0]
        found = bank.match_video((v.frames, v.qualities, v.md5))
        assert [(m.case_id, m.md5_equal) for m in found] == [(case, True)]


def test_bank_sync_command_takes_the_url_from_the_key_line(hub, tmp_path):  # noqa: F811
    keyfile = tmp_path / "hub.key"
    keyfile.write_text(",".join(hub.add_partner("platform")) + "\n")
    open_case(hub.url, submission_body(3, images=2))
    bank = tmp_path / "bank.db"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ncii_hash", *args], capture_output=True, text=True, timeout=120)

    assert run("bank", "init", str(bank)).returncode == 0
    done = run("bank", "sync", str(bank), "--keys", str(keyfile))
    assert done.returncode == 0, done.stderr
    assert "1 case(s) added, 2 hash(es) added, 0 case(s) withdrawn" in done.stdout
    assert hub.api_url in done.stdout
    done = run("bank", "sync", str(bank), "--keys", str(keyfile), "--json")
    assert json.loads(done.stdout)["records"] == 0
    bad = tmp_path / "bad.key"
    bad.write_text("wrong,keys\n")
    done = run("bank", "sync", str(bank), "--keys", str(bad), "--from", hub.api_url)
    assert done.returncode != 0 and "refused the keys" in done.stderr and "wrong" not in done.stderr.split(":")[0]
    done = run("bank", "sync", str(bank), "--keys", str(bad))
    assert done.returncode == 2 and "no feed URL" in done.stderr
