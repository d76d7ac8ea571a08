"""Shared window hashes in the bank (issue 20, submission version 3), on both stores: banked
with their images, searched like for like, followed by other processes through the change
log, kept in snapshots, gone with a withdrawal (rows, index, snapshots); matching real edited
photos through them; the hub feeding them and a platform's sync banking them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hub_server import hub, hub_store, open_case  # noqa: F401  (fixtures)
from ncii_hash import HashBank
from ncii_hash.bank.feed import SIGNAL_PDQ, SIGNAL_PDQ_WINDOW, STOCK_SIGNAL_TYPES
from ncii_hash.errors import BankError
from ncii_hash.image import pdq_hash, pdq_window_hash
from ncii_hash.submission import ImageWindow, image_windows, make_submission

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "survivor"


def _codes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


def _flip(codes: np.ndarray, bits: int) -> np.ndarray:
    out = codes.copy()
    out[:, :bits // 8] ^= 0xFF
    return out


def _case_with_windows(bank: HashBank, seed: int, n: int = 3, with_window=None) -> tuple[str, np.ndarray, np.ndarray]:
    whole, win = _codes(n, seed), _codes(n, seed + 1000)
    keep = range(n) if with_window is None else with_window
    windows = [ImageWindow(i, "centre70", win[i].tobytes(), 90) for i in keep]
    return bank.add_case(whole, [90] * n, windows=windows), whole, win


def test_windows_match_like_for_like_and_name_their_image(store):
    with HashBank(store) as bank:
        cid, whole, win = _case_with_windows(bank, 1, with_window=[0, 2])
        assert bank.stats().window_hashes == 2 and bank.stats().window_hashes == 2 and len(bank) == 3
        ids = {m.hash_id: i for i, m in enumerate(bank.match(whole, 0, dihedral=False))}
        found = bank.match(_flip(win, 16), 31, dihedral=False, window="centre70")
        assert [(m.query, m.case_id, m.distance) for m in found] == [(0, cid, 16), (2, cid, 16)]
        assert [ids[m.hash_id] for m in found] == [0, 2]  # a window match names its image's row
        # like for like: windows are not among the whole pictures, and the reverse
        assert bank.match(win, 31, dihedral=False) == []
        assert bank.match(whole, 31, dihedral=False, window="centre70") == []
        with pytest.raises(ValueError, match="unknown window"):
            bank.match(win, window="centre50")
        bank.verify()


def test_bad_windows_are_refused_and_nothing_is_banked(store):
    with HashBank(store) as bank:
        whole = _codes(2, 3)
        for windows, message in [([ImageWindow(2, "centre70", bytes(32), 90)], "refers to image 2"),
                                 ([ImageWindow(0, "centre70", bytes(32), 20)], "quality"),
                                 ([ImageWindow(0, "grid9", bytes(32), 90)], "unknown window")]:
            with pytest.raises(BankError, match=message):
                bank.add_case(whole, [90, 90], windows=windows)
        assert len(bank) == 0 and bank.stats().window_hashes == 0


def test_withdrawal_takes_the_windows_out_of_rows_index_and_snapshots(store, tmp_path):
    with HashBank(store, snapshot_dir=tmp_path / "snaps") as bank:
        cid, _, win = _case_with_windows(bank, 5)
        other, _, win2 = _case_with_windows(bank, 7)
        bank.save_snapshot()
        bank.close()
    with HashBank(store, snapshot_dir=tmp_path / "snaps") as bank:
        assert bank.stats().window_hashes == 6
        assert len(bank.match(win, 0, dihedral=False, window="centre70")) == 3
        assert bank.withdraw(cid) == 3
        assert bank.match(win, 31, dihedral=False, window="centre70") == []
        assert len(bank.match(win2, 0, dihedral=False, window="centre70")) == 3
        assert bank.stats().window_hashes == 3
        bank.verify()
    if not store.startswith("postgresql"):
        rows = sqlite3.connect(store).execute("SELECT COUNT(*) FROM windows").fetchone()[0]
        assert rows == 3
        raw = Path(store).read_bytes()
        assert all(w.tobytes() not in raw for w in win)  # secure_delete: no old copy in the file
        files = [p.read_bytes() for p in Path(store).parent.glob("bank.db*") if p.is_file()]
        assert all(w.tobytes() not in data for w in win for data in files)  # snapshots, WAL included


def test_a_second_process_sees_windows_added_and_withdrawn(store):
    with HashBank(store) as a, HashBank(store) as b:
        assert b.stats().window_hashes == 0
        cid, _, win = _case_with_windows(a, 11)
        assert len(b.match(win, 0, dihedral=False, window="centre70")) == 3  # caught up from the log
        a.withdraw(cid)
        assert b.match(win, 0, dihedral=False, window="centre70") == []
        b.verify()


def test_window_snapshot_is_saved_and_loaded(tmp_path):
    path = tmp_path / "bank.db"
    with HashBank(path) as bank:
        _, _, win = _case_with_windows(bank, 13)
    assert (tmp_path / "bank.db.centre70.idx.1").exists()
    with HashBank(path) as bank:
        assert bank._windows.syncs["centre70"].source == "snapshot"
        assert len(bank.match(win, 0, dihedral=False, window="centre70")) == 3
    empty = tmp_path / "empty.db"
    with HashBank(empty) as bank:
        bank.add_case(_codes(1, 1), [90])
    assert not list(tmp_path.glob("empty.db.centre70.*"))  # no window: no snapshot file


def test_a_bank_of_schema_4_is_migrated_and_keeps_its_hashes(tmp_path):
    path = tmp_path / "bank.db"
    with HashBank(path) as bank:
        bank.add_case(_codes(2, 21), [90, 90])
    con = sqlite3.connect(path)
    con.execute("DROP TABLE windows")
    con.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    con.commit()
    con.close()
    with HashBank(path) as bank:
        assert len(bank) == 2 and bank.stats().window_hashes == 0
        _case_with_windows(bank, 23)
        assert bank.stats().window_hashes == 3


# ---- real pictures ------------------------------------------------------------------------------

def _rotated(src: Path, out: Path, degrees: float) -> Path:
    Image.open(src).convert("RGB").rotate(degrees, resample=Image.BICUBIC).save(out, quality=90)
    return out


def _bannered(src: Path, out: Path, share: float = 0.15) -> Path:
    im = Image.open(src).convert("RGB")
    w, h = im.size
    canvas = Image.new("RGB", (w, h + int(h * share)), "white")
    canvas.paste(im, (0, 0))
    ImageDraw.Draw(canvas).text((w // 10, h + 4), "you will never guess who this is", fill="black")
    canvas.save(out, quality=90)
    return out


def _submission(paths: list[Path], *, windows: bool):
    rs = [pdq_hash(str(p)) for p in paths]
    ws = [pdq_window_hash(str(p)) for p in paths]
    win = image_windows("centre70", np.stack([w.hash for w in ws]), [w.quality for w in ws]) if windows else []
    return make_submission(np.stack([r.hash for r in rs]), [r.quality for r in rs], windows=win)


@pytest.mark.parametrize("edit", ["rotate_5", "rotate_-4", "banner"])
def test_edited_copies_are_caught_only_through_the_shared_windows(store, tmp_path, edit):
    photos = sorted(EXAMPLES.glob("*.jpg"))
    src = photos[0]
    upload = (_bannered(src, tmp_path / "u.jpg") if edit == "banner"
              else _rotated(src, tmp_path / "u.jpg", float(edit.split("_")[1])))
    with HashBank(store) as bank:
        plain = bank.add_submission(_submission(photos, windows=False))
        assert bank.match_images([str(upload)])[0].pdq == ()  # plain PDQ misses the edit
        bank.withdraw(plain)
        cid = bank.add_submission(_submission(photos, windows=True))
        report = bank.match_images([str(upload)])[0]
        assert [m.case_id for m in report.pdq] == [cid]
        image_row = bank.match(pdq_hash(str(src)).hash.reshape(1, -1), 0, dihedral=False)[0].hash_id
        assert report.pdq[0].hash_id == image_row  # the right picture, not just the right case
        assert bank.match_images([str(upload)], windows=False)[0].pdq == ()
        # the other banked picture, rotated, matches itself and nothing else
        other = bank.match_images([str(_rotated(photos[1], tmp_path / "o.jpg", 3.0))])[0]
        assert {m.hash_id for m in other.pdq} <= {m.hash_id for m in bank.match(
            pdq_hash(str(photos[1])).hash.reshape(1, -1), 0, dihedral=False)}


def test_cli_match_uses_the_windows_and_no_windows_turns_them_off(tmp_path):
    photos = sorted(EXAMPLES.glob("*.jpg"))
    sub = tmp_path / "s.json"
    run = subprocess.run([sys.executable, "-m", "ncii_hash", "hash", str(EXAMPLES), "-o", str(sub), "--share-window",
                          "-q"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    bank = tmp_path / "bank.db"
    for args in (["bank", "init", str(bank)], ["bank", "add", str(bank), str(sub)]):
        r = subprocess.run([sys.executable, "-m", "ncii_hash", *args], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    upload = _bannered(photos[0], tmp_path / "upload.jpg")
    out = {}
    for flag in ([], ["--no-windows"]):
        r = subprocess.run([sys.executable, "-m", "ncii_hash", "match", str(bank), str(upload), "--json", "-q", *flag],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        out[bool(flag)] = json.loads(r.stdout)[0]
    assert out[False]["matches"] and not out[True]["matches"]


# ---- the hub feeds them, a platform's sync banks them -----------------------------------------

def test_hub_feeds_windows_on_request_and_sync_banks_them_then_withdraws(hub, tmp_path):  # noqa: F811
    import httpx

    photos = sorted(EXAMPLES.glob("*.jpg"))
    sub = _submission(photos, windows=True)
    r, _ = open_case(hub.url, sub.to_dict())
    assert r.status_code == 201, r.text
    case, pin = r.json()["case_number"], r.json()["pin"]
    keys = ",".join(hub.add_partner("platform"))
    upload = _rotated(photos[0], tmp_path / "u.jpg", -5.0)
    with HashBank(tmp_path / "stock.db") as stock:  # a stock partner: image hashes only
        report = stock.sync(None, keys)
        assert report.records == 2 and stock.stats().window_hashes == 0
    with HashBank(tmp_path / "bank.db") as bank:
        report = bank.sync(None, keys, signal_types=(*STOCK_SIGNAL_TYPES, SIGNAL_PDQ_WINDOW))
        assert report.records == 4 and report.skipped == 0 and bank.stats().window_hashes == 2
        assert bank.case(case).hashes == 2  # the window records name images the case already holds
        assert [m.case_id for m in bank.match_images([str(upload)])[0].pdq] == [case]
        again = bank.sync(None, keys, signal_types=(*STOCK_SIGNAL_TYPES, SIGNAL_PDQ_WINDOW), restart=True)
        assert again.hashes_added == 0 and bank.stats().window_hashes == 2  # a replayed page adds nothing twice
        w = httpx.post(f"{hub.url}/cases/{case}/withdraw", json={"pin": pin}, timeout=30)
        assert w.status_code == 200, w.text
        bank.sync(None, keys, signal_types=(*STOCK_SIGNAL_TYPES, SIGNAL_PDQ_WINDOW))
        assert bank.stats().window_hashes == 0 and bank.match_images([str(upload)])[0].pdq == ()
        bank.verify()
    with HashBank(tmp_path / "windows-only.db") as only:  # windows alone bring their images
        r2, _ = open_case(hub.url, _submission(photos[:1], windows=True).to_dict())
        report = only.sync(None, keys, signal_types=(SIGNAL_PDQ_WINDOW,))
        cid = r2.json()["case_number"]
        assert only.case(cid).hashes == 1 and only.stats().window_hashes == 1
        assert only.match(pdq_hash(str(photos[0])).hash.reshape(1, -1), 0, dihedral=False)[0].case_id == cid
    assert SIGNAL_PDQ not in (SIGNAL_PDQ_WINDOW,)
