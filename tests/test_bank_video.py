"""Videos in submissions and banks: frame hashes grouped per video, vPDQ matching through the
bank, withdrawal, CSV round trip, and the v1 -> v2 schema migration."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from ncii_hash.bank.db import SCHEMA_VERSION
from ncii_hash.bank import BankError, HashBank
from ncii_hash.submission import make_submission, parse_submission, video_item, write_submission, read_submission
from ncii_hash.video import VideoHash

from conftest import FULL_ROOT, needs_full_set


def load_vpdq(path) -> VideoHash:
    return VideoHash.from_vpdq_lines(path.read_text().splitlines(), source=str(path))


def noisy(frames: np.ndarray, bits: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = frames.copy()
    for row in out:
        for b in rng.choice(256, size=bits, replace=False):
            row[b // 8] ^= np.uint8(1 << (b % 8))
    return out


@pytest.fixture()
def sample_video(subset_pdq):
    return load_vpdq(subset_pdq.parent / "vpdq" / "test-padded-dimensions.txt")


def test_video_case_matches_reencoded_copy_and_not_random(tmp_path, sample_video):
    bank = HashBank(tmp_path / "b.db")
    cid = bank.add_case(videos=[sample_video])
    info = bank.case(cid)
    assert info.hashes == np.unique(sample_video.frames, axis=0).shape[0]
    copy = (noisy(sample_video.frames, 12, 1), sample_video.qualities, "")
    ms = bank.match_video(copy)
    assert len(ms) == 1 and ms[0].case_id == cid and ms[0].item == 1 and ms[0].query_pct == 100.0
    assert not ms[0].md5_equal
    rng = np.random.default_rng(2)
    other = (rng.integers(0, 256, size=(40, 32), dtype=np.uint8), np.full(40, 90), "")
    assert bank.match_video(other) == []
    # a copy with only half of its frames inside the banked video fails the 80 % rule
    half = np.concatenate([sample_video.frames[:20], rng.integers(0, 256, size=(60, 32), dtype=np.uint8)])
    assert bank.match_video((half, np.full(80, 90), "")) == []
    bank.withdraw(cid)
    assert bank.match_video(copy) == []
    bank.verify()


def test_low_quality_video_refused(tmp_path, sample_video):
    bank = HashBank(tmp_path / "b.db")
    with pytest.raises(BankError, match="no frame with quality"):
        bank.add_case(videos=[(sample_video.frames, np.zeros(len(sample_video), np.int32), "")])


def test_submission_with_video_round_trip(tmp_path, sample_video):
    md5 = "0123456789abcdef0123456789abcdef"
    v = video_item(sample_video.frames, sample_video.qualities, md5)
    sub = make_submission(np.zeros((0, 32), np.uint8), [], videos=[v])
    write_submission(tmp_path / "s.json", sub)
    text = (tmp_path / "s.json").read_text()
    obj = json.loads(text)
    (item,) = obj["items"]
    assert set(item) == {"kind", "md5", "frames"} and item["md5"] == md5
    assert obj["counts"]["video"] == 1 and obj["counts"]["video_frames"] == len(item["frames"])
    assert "timestamp" not in text and "frame_number" not in text
    back = read_submission(tmp_path / "s.json")
    assert sorted(map(bytes, back.videos[0].frames)) == sorted(map(bytes, v.frames))
    bank = HashBank(tmp_path / "b.db")
    cid = bank.add_submission(tmp_path / "s.json")
    ms = bank.match_video((sample_video.frames, sample_video.qualities, md5))
    assert [m.case_id for m in ms] == [cid] and ms[0].md5_equal
    bad = dict(obj)
    bad["items"] = [dict(item, md5="xyz")]
    with pytest.raises(ValueError, match="md5"):
        parse_submission(bad)
    bad["items"] = [dict(item, frames=[])]
    with pytest.raises(ValueError, match="frames"):
        parse_submission(bad)


def test_video_export_import_keeps_videos_apart(tmp_path, sample_video):
    rng = np.random.default_rng(3)
    a = HashBank(tmp_path / "a.db")
    other = (rng.integers(0, 256, size=(30, 32), dtype=np.uint8), np.full(30, 80), "")
    cid = a.add_case(rng.integers(0, 256, size=(2, 32), dtype=np.uint8), videos=[sample_video, other])
    a.export(tmp_path / "x.csv")
    b = HashBank(tmp_path / "b.db")
    assert b.import_(tmp_path / "x.csv") == [cid]
    for bank in (a, b):
        ms = bank.match_video(other)
        assert [(m.case_id, m.item) for m in ms] == [(cid, 2)]


def test_schema_v1_bank_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE cases (case_id TEXT PRIMARY KEY, created_at REAL NOT NULL, status TEXT NOT NULL, withdrawn_at REAL);
        CREATE TABLE hashes (hash_id INTEGER PRIMARY KEY AUTOINCREMENT, case_id TEXT NOT NULL, algorithm TEXT NOT NULL DEFAULT 'pdq',
            hash BLOB NOT NULL, quality INTEGER NOT NULL, kind TEXT NOT NULL, added_at REAL NOT NULL, seq INTEGER NOT NULL);
        CREATE TABLE changes (seq INTEGER PRIMARY KEY, case_id TEXT NOT NULL, op TEXT NOT NULL, hash_ids BLOB NOT NULL, at REAL NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1'), ('change_seq', '1'), ('bank_id', 'x'), ('kind', 'ncii-hash-bank');
        INSERT INTO cases VALUES ('case-old', 1.0, 'active', NULL);
        """
    )
    h = bytes(range(32))
    db.execute("INSERT INTO hashes (case_id, hash, quality, kind, added_at, seq) VALUES ('case-old', ?, 90, 'image', 1.0, 1)", (h,))
    db.execute("INSERT INTO changes VALUES (1, 'case-old', 'add', ?, 1.0)", (np.asarray([1], '<i8').tobytes(),))
    db.commit()
    db.close()
    bank = HashBank(path)
    assert bank._db.meta("schema_version") == str(SCHEMA_VERSION)
    assert [m.case_id for m in bank.match(np.frombuffer(h, np.uint8))] == ["case-old"]
    assert bank.feature_count() == 0  # v3's features table exists after the migration
    bank.add_case(videos=[(np.frombuffer(bytes(range(1, 33)), np.uint8).reshape(1, 32), [90], "")])
    bank.verify()


@needs_full_set
def test_sample_videos_through_the_bank(tmp_path):
    hashes = FULL_ROOT / "vpdq" / "sample-hashes"
    bank = HashBank(tmp_path / "b.db")
    ids = {name: bank.add_case(videos=[load_vpdq(hashes / f"{name}.txt")], allow_low_quality=True)
           for name in ("chair-orig-22-sd-bar", "pattern-hd-no-bar", "doorknob-hd-no-bar")}
    # the same videos downscaled to 128x128 before hashing (another resolution)
    for name, cid in ids.items():
        ms = bank.match_video(load_vpdq(hashes / f"{name}-128x128.txt"))
        assert [m.case_id for m in ms] == [cid], name
    # an edit of the chair scene matches the chair; other scenes do not
    ms = bank.match_video(load_vpdq(hashes / "chair-22-sd-grey-bar.txt"))
    assert [m.case_id for m in ms] == [ids["chair-orig-22-sd-bar"]]
