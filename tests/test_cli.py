"""The ncii-hash command, driven as a user would (subprocess)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ncii_hash as nh

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def cli(*args, cwd=None, env=None, check=None):
    done = subprocess.run([sys.executable, "-m", "ncii_hash", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)
    if check is not None:
        assert done.returncode == check, done.stdout + done.stderr
    return done


@pytest.fixture()
def photos(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    shutil.copy(EXAMPLES / "survivor" / "IMG_0001.jpg", d / "anna_private.jpg")
    shutil.copy(EXAMPLES / "survivor" / "IMG_0002.jpg", d / "b.jpg")
    (d / "sub").mkdir()
    shutil.copy(EXAMPLES / "uploads" / "upload-d.png", d / "sub" / "c.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (d / "notes.txt").write_text("not an image")
    return d


def test_hash_folder_table_and_exit_codes(photos):
    done = cli("hash", photos, check=1)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3  # a folder's own image files; broken.jpg reported, notes.txt ignored
    assert any("ERROR" in l and "broken.jpg" in l for l in lines)
    expected = nh.pdq_hash(photos / "b.jpg").hex
    assert any(l.startswith(expected) and l.endswith("b.jpg") for l in lines)
    assert "could not be hashed" in done.stderr
    (photos / "broken.jpg").unlink()
    done = cli("hash", photos, "-r", "--format", "json", check=0)
    rows = json.loads(done.stdout)
    assert {Path(r["file"]).name for r in rows} == {"anna_private.jpg", "b.jpg", "c.png"}
    assert all(len(r["pdq"]) == 64 and r["status"] in ("ok", "low quality") for r in rows)


def test_usage_errors_exit_2(tmp_path):
    assert cli("hash", tmp_path).returncode == 2  # a folder without images
    assert cli("nonsense").returncode == 2
    assert cli("show", tmp_path / "missing.json").returncode == 2
    assert cli("match", tmp_path / "nobank.db", EXAMPLES / "uploads").returncode == 2


def test_submission_holds_no_names_and_show_explains(photos, tmp_path):
    (photos / "broken.jpg").unlink()
    out = tmp_path / "submission.json"
    cli("hash", photos, "-r", "-o", out, check=0)
    text = out.read_text()
    for leak in ("anna", "private", "photos", ".jpg", ".png", str(tmp_path)):
        assert leak not in text
    obj = json.loads(text)
    assert set(obj) == {"format", "version", "algorithm", "items", "counts"}
    assert all(set(i) == {"kind", "pdq", "quality"} for i in obj["items"])
    assert obj["counts"]["items"] == 3
    assert stat.S_IMODE(out.stat().st_mode) & 0o077 == 0
    shown = cli("show", out, check=0).stdout
    assert "3 PDQ hashes" in shown and "does NOT contain" in shown
    for item in obj["items"]:
        assert item["pdq"] in shown


def test_submission_order_is_shuffled(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "many"
    d.mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(d / f"{i:02d}.png")
    orders = set()
    for k in range(4):
        out = tmp_path / f"s{k}.json"
        cli("hash", d, "-o", out, "-q", check=0)
        orders.add(tuple(i["pdq"] for i in json.loads(out.read_text())["items"]))
    assert len(orders) > 1


NO_NETWORK = textwrap.dedent(
    """
    import socket, sys
    def refuse(*args, **kwargs):
        raise RuntimeError("ncii-hash tried to use the network")
    socket.socket = refuse
    socket.create_connection = refuse
    socket.socketpair = refuse
    socket.getaddrinfo = refuse
    from ncii_hash.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_survivor_commands_never_create_a_socket(photos, tmp_path):
    (photos / "broken.jpg").unlink()
    runner = tmp_path / "nonet.py"
    runner.write_text(NO_NETWORK)
    out = tmp_path / "s.json"
    for args in (["hash", str(photos), "-r", "-o", str(out)], ["hash", str(photos), "--dihedral", "--format", "csv"],
                 ["show", str(out)]):
        done = subprocess.run([sys.executable, str(runner), *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "network" not in done.stderr


def test_survivor_commands_in_a_network_namespace(photos, tmp_path):
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    (photos / "broken.jpg").unlink()
    out = tmp_path / "s.json"
    done = subprocess.run([unshare, "-rn", sys.executable, "-m", "ncii_hash", "hash", str(photos), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(out.read_text())["items"]) == 2


def test_python_m_and_help_and_version():
    assert "ncii-hash" in cli("--version", check=0).stdout
    for cmd in (["hash"], ["show"], ["match"], ["bank"], ["bank", "init"], ["bank", "add"], ["bank", "withdraw"]):
        done = cli(*cmd, "--help", check=0)
        assert "usage:" in done.stdout
    assert "example:" in cli("hash", "--help", check=0).stdout


def test_bank_flow_match_withdraw(tmp_path):
    sub = tmp_path / "s.json"
    bank = tmp_path / "bank.db"
    cli("hash", EXAMPLES / "survivor", "-o", sub, check=0)
    cli("bank", "init", bank, check=0)
    assert cli("bank", "init", bank).returncode == 2  # already exists
    case_id = cli("bank", "add", bank, sub, check=0).stdout.strip()
    assert case_id.startswith("case-")
    done = cli("match", bank, EXAMPLES / "uploads", "--json", check=0)
    records = {Path(r["path"]).name: r for r in json.loads(done.stdout)}
    assert {n for n, r in records.items() if r["status"] == "match"} == {"upload-a.jpg", "upload-b.jpg", "upload-c.webp"}
    assert records["upload-b.jpg"]["matches"][0]["variant"] == "flipy"  # a mirrored copy
    assert records["upload-d.png"]["matches"] == []
    plain = json.loads(cli("match", bank, EXAMPLES / "uploads", "--json", "--no-dihedral", check=0).stdout)
    assert {Path(r["path"]).name for r in plain if r["status"] == "match"} == {"upload-a.jpg", "upload-c.webp"}
    # hash lists as inputs
    hexes = tmp_path / "list.txt"
    hexes.write_text(nh.pdq_hash(EXAMPLES / "uploads" / "upload-a.jpg").hex + "\n" + "0" * 64 + "\n")
    lst = json.loads(cli("match", bank, hexes, "--json", check=0).stdout)
    assert [r["status"] for r in lst] == ["match", "no match"]
    stats = json.loads(cli("bank", "stats", bank, "--json", check=0).stdout)
    assert stats["hashes"] == 2 and stats["active_cases"] == 1
    cli("bank", "export", bank, tmp_path / "x.csv", check=0)
    assert len((tmp_path / "x.csv").read_text().splitlines()) == 3
    assert "withdrew" in cli("bank", "withdraw", bank, case_id, check=0).stdout
    assert cli("bank", "withdraw", bank, "case-unknown").returncode == 2
    after = json.loads(cli("match", bank, EXAMPLES / "uploads", "--json", check=0).stdout)
    assert all(r["status"] == "no match" for r in after)


def test_match_reports_corrupt_image_and_goes_on(tmp_path):
    bank = tmp_path / "bank.db"
    cli("bank", "init", bank, check=0)
    d = tmp_path / "up"
    shutil.copytree(EXAMPLES / "uploads", d)
    (d / "zz-corrupt.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    done = cli("match", bank, d, "--json", check=1)
    records = json.loads(done.stdout)
    assert len(records) == 5
    bad = [r for r in records if r["status"] == "error"]
    assert len(bad) == 1 and "zz-corrupt.jpg" in bad[0]["path"] and bad[0]["reason"]


def test_bank_import_bad_csv_is_a_usage_error(tmp_path):
    bank = tmp_path / "bank.db"
    cli("bank", "init", bank, check=0)
    (tmp_path / "bad.csv").write_text("pdq,quality\n" + "z" * 64 + ",90\n")
    done = cli("bank", "import", bank, tmp_path / "bad.csv", check=2)
    assert "line 2" in done.stderr


def test_walkthrough_example_runs():
    done = subprocess.run([sys.executable, str(EXAMPLES / "walkthrough.py")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gone once withdrawn" in done.stdout


def test_video_hash_bank_match_withdraw(tmp_path):
    pytest.importorskip("cv2", reason="video hashing needs the 'video' extra (opencv-python-headless)")
    video = ROOT / "tests" / "data" / "vpdq" / "test-padded-dimensions.mp4"
    d = tmp_path / "mine"
    d.mkdir()
    shutil.copy(video, d / "private_clip.mp4")
    shutil.copy(EXAMPLES / "survivor" / "IMG_0001.jpg", d / "a.jpg")
    sub = tmp_path / "s.json"
    done = cli("hash", d, "-o", sub, "--seconds-per-hash", "0.5", check=0)
    assert "video md5" in done.stdout
    obj = json.loads(sub.read_text())
    assert obj["counts"]["video"] == 1 and obj["counts"]["image"] == 1
    assert "private_clip" not in sub.read_text()
    assert "1 video" in cli("show", sub, check=0).stdout
    bank = tmp_path / "bank.db"
    cli("bank", "init", bank, check=0)
    case_id = cli("bank", "add", bank, sub, check=0).stdout.strip()
    recs = json.loads(cli("match", bank, d, "--json", "--seconds-per-hash", "0.5", check=0).stdout)
    vids = [r for r in recs if r["kind"] == "video"]
    assert len(vids) == 1 and vids[0]["matches"][0]["case_id"] == case_id and vids[0]["matches"][0]["md5_equal"]
    cli("bank", "withdraw", bank, case_id, check=0)
    recs = json.loads(cli("match", bank, d, "--json", check=0).stdout)
    assert all(r["status"] == "no match" for r in recs)


def test_corrupt_video_reported_and_batch_goes_on(tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    shutil.copy(EXAMPLES / "survivor" / "IMG_0002.jpg", d / "ok.jpg")
    done = cli("hash", d, "--format", "json", check=1)
    rows = {Path(r["file"]).name: r for r in json.loads(done.stdout)}
    assert rows["broken.mp4"]["status"] == "error" and rows["broken.mp4"]["reason"]
    assert rows["ok.jpg"]["status"] == "ok"


def test_match_finds_letterboxed_copy_by_default(tmp_path):
    """A letterboxed copy defeats plain PDQ; matching also searches the content inside the
    border (on by default), and --no-trim-borders shows the difference."""
    sub, bank = tmp_path / "s.json", tmp_path / "bank.db"
    cli("hash", EXAMPLES / "survivor" / "IMG_0001.jpg", "-o", sub, check=0)
    cli("bank", "init", bank, check=0)
    cli("bank", "add", bank, sub, check=0)
    img = Image.open(EXAMPLES / "survivor" / "IMG_0001.jpg").convert("RGB")
    w, h = img.size
    boxed = Image.new("RGB", (w, int(h * 1.6)), (0, 0, 0))
    boxed.paste(img, (0, int(h * 0.3)))
    boxed.save(tmp_path / "letterboxed.jpg", quality=90)
    on = json.loads(cli("match", bank, tmp_path / "letterboxed.jpg", "--json", check=0).stdout)
    off = json.loads(cli("match", bank, tmp_path / "letterboxed.jpg", "--json", "--no-trim-borders", check=0).stdout)
    assert on[0]["status"] == "match" and on[0]["matches"][0]["distance"] <= 31
    assert off[0]["status"] == "no match"
