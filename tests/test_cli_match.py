"""``ncii-hash match`` and ``bank``: the bank's one two-stage image match behind the command,
the note when OpenCV is missing, renderings, and the bank closed on every path."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from ncii_hash.bank import HashBank
from ncii_hash.cli import main
from ncii_hash.image import DIHEDRAL_NAMES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A bank with one case (two photos, their local features) and uploads: copies, a
    letterboxed copy, a cropped and rotated copy (local features only), an unrelated picture
    and a corrupt file."""
    pytest.importorskip("cv2", reason="local features need the 'features' extra (OpenCV)")
    tmp = tmp_path_factory.mktemp("match")
    sub, bank = tmp / "s.json", tmp / "bank.db"
    assert main(["hash", str(EXAMPLES / "survivor"), "-o", str(sub), "--features", "-q"]) == 0
    assert main(["bank", "init", str(bank)]) == 0
    assert main(["bank", "add", str(bank), str(sub)]) == 0
    up = tmp / "up"
    shutil.copytree(EXAMPLES / "uploads", up)
    img = Image.open(EXAMPLES / "survivor" / "IMG_0001.jpg").convert("RGB")
    w, h = img.size
    img.crop((int(w * 0.12), int(h * 0.1), w, h)).rotate(7).save(up / "cropped.jpg", quality=90)
    boxed = Image.new("RGB", (w, int(h * 1.6)), (0, 0, 0))
    boxed.paste(img, (0, int(h * 0.3)))
    boxed.save(up / "letterboxed.jpg", quality=90)
    (up / "zz-corrupt.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    return bank, up


def _match(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["match", *args, "-q"])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_match_json_is_the_banks_two_stage_match(scene, capsys):
    bank, up = scene
    rc, out, err = _match(capsys, str(bank), str(up), "--json")
    assert rc == 1  # the corrupt upload
    records = json.loads(out)
    images = sorted(p for p in up.iterdir())
    with HashBank(bank, create=False) as b:
        reports = b.match_images([str(p) for p in images])
    want = {}
    for p, r in zip(images, reports):
        if r.error is not None:
            want[str(p)] = ("error", [])
        elif r.pdq:
            want[str(p)] = ("match", [(m.case_id, m.hash_id, m.distance, DIHEDRAL_NAMES[m.variant]) for m in r.pdq])
        else:
            want[str(p)] = ("match" if r.features else "no match",
                            [(m.case_id, m.feature_id, m.inliers) for m in r.features])
    got = {}
    for rec in records:
        ms = rec["matches"]
        if ms and "feature_id" in ms[0]:
            got[rec["path"]] = (rec["status"], [(m["case_id"], m["feature_id"], m["inliers"]) for m in ms])
        else:
            got[rec["path"]] = (rec["status"], [(m["case_id"], m["hash_id"], m["distance"], m["variant"]) for m in ms])
    assert got == want
    # hashed images in order, then the ones that could not be hashed
    assert [r["status"] for r in records][-1] == "error" and records[-1]["path"].endswith("zz-corrupt.jpg")
    assert "kind" not in records[-1] and records[-1]["reason"]
    by_name = {Path(r["path"]).name: r for r in records}
    assert by_name["cropped.jpg"]["matches"][0]["via"] == "local features"
    assert by_name["letterboxed.jpg"]["matches"][0]["distance"] <= 31
    assert by_name["upload-d.png"]["status"] == "no match"
    assert err.endswith("5 of 7 inputs match the bank (PDQ distance <= 31, or local features verified)\n")


def test_match_text_lines(scene, capsys):
    bank, up = scene
    rc, out, err = _match(capsys, str(bank), str(up))
    assert rc == 1
    lines = {Path(re.match(r"(?:MATCH|no match|ERROR) +(.+?)(?::|$)", line).group(1)).name: line
             for line in out.splitlines()}
    assert len(lines) == 7
    assert lines["cropped.jpg"].startswith("MATCH     ")
    assert " by local features (" in lines["cropped.jpg"] and "points agree, rotated +" in lines["cropped.jpg"]
    assert " at distance " in lines["upload-b.jpg"] and lines["upload-b.jpg"].endswith("(flipy)")
    assert lines["upload-d.png"] == f"no match  {up / 'upload-d.png'}"
    assert lines["zz-corrupt.jpg"].startswith(f"ERROR     {up / 'zz-corrupt.jpg'}: ")


def test_no_features_and_no_opencv(scene, capsys, monkeypatch):
    bank, up = scene
    cropped = str(up / "cropped.jpg")
    rc, out, err = _match(capsys, str(bank), cropped, "--json", "--no-features")
    assert rc == 0 and json.loads(out)[0]["status"] == "no match"
    assert err == "ncii-hash: 0 of 1 inputs match the bank (PDQ distance <= 31)\n"
    monkeypatch.setitem(sys.modules, "cv2", None)  # OpenCV not installed
    rc, out, err = _match(capsys, str(bank), cropped, "--json")
    assert rc == 0 and json.loads(out)[0]["status"] == "no match"
    assert err == ("ncii-hash: the bank holds local features but OpenCV is not installed "
                   "(pip install 'ncii-hash[features]'); PDQ only\n"
                   "ncii-hash: 0 of 1 inputs match the bank (PDQ distance <= 31)\n")
    rc, out, err = _match(capsys, str(bank), str(up / "upload-a.jpg"), "--json")  # PDQ found it: no note
    assert rc == 0 and "OpenCV" not in err


# ------------------------------------------------------------------ the bank is always closed
@pytest.fixture()
def bank_spy(monkeypatch):
    """Every HashBank opened, and every one closed, during the test."""
    opened: list = []
    closed: list = []
    real_init, real_close = HashBank.__init__, HashBank.close

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        opened.append(self)

    def close(self, **kwargs):
        closed.append(self)
        real_close(self, **kwargs)

    monkeypatch.setattr(HashBank, "__init__", init)
    monkeypatch.setattr(HashBank, "close", close)
    return opened, closed


def test_the_bank_is_closed_on_every_path(tmp_path, bank_spy, monkeypatch, capsys):
    opened, closed = bank_spy
    bank = str(tmp_path / "bank.db")
    bad_list = tmp_path / "bad.txt"
    bad_list.write_text("not a hash\n")
    photo = EXAMPLES / "uploads" / "upload-a.jpg"
    runs = [
        (["bank", "init", bank], 0),
        (["bank", "stats", bank, "--json"], 0),
        (["bank", "withdraw", bank, "case-unknown"], 2),  # usage error mid-command
        (["match", bank, str(bad_list)], 2),  # unreadable hash list, after the bank was opened
        (["match", bank, str(tmp_path / "empty-folder-missing")], 1),
        (["match", bank, str(photo), "-q"], 0),
    ]
    for args, code in runs:
        assert main(args) == code, (args, capsys.readouterr().err)
    assert len(opened) == len(runs)
    assert all(any(c is o for c in closed) for o in opened)

    def boom(self, *args, **kwargs):
        raise RuntimeError("matching failed")

    monkeypatch.setattr(HashBank, "match_images", boom)
    with pytest.raises(RuntimeError, match="matching failed"):
        main(["match", bank, str(photo), "-q"])
    assert len(opened) == len(runs) + 1 and closed[-1] is opened[-1]


def test_bank_stats_text_and_json(tmp_path, capsys):
    bank = str(tmp_path / "bank.db")
    assert main(["bank", "init", bank]) == 0
    assert capsys.readouterr().out == f"created empty bank {bank} (owner-only file; hash banks are sensitive data)\n"
    assert main(["bank", "stats", bank, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["hashes"] == 0 and stats["cases"] == 0
    assert main(["bank", "stats", bank]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(stats)
    assert lines[0] == f"{'cases':16} 0"
