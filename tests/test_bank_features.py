"""HashBank with local feature sets (issue #8): banking, matching, withdrawal, submissions."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2")

from ncii_hash.features import orb as F  # noqa: E402
from ncii_hash import pdq_hash  # noqa: E402
from ncii_hash.bank import BankError, HashBank  # noqa: E402
from ncii_hash.submission import (SubmissionError, make_submission, parse_submission, read_submission,  # noqa: E402
                               write_submission)

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "examples" / "survivor" / "IMG_0001.jpg"
OTHER = ROOT / "tests" / "data" / "pdq" / "data" / "reg-test-input" / "labelme-subset" / "q0122.jpg"


@pytest.fixture(scope="module")
def photo():
    return Image.open(PHOTO).convert("RGB")


def _edited(im: Image.Image) -> np.ndarray:
    w, h = im.size
    out = im.crop((int(w * 0.12), 0, w, int(h * 0.9))).rotate(-4, resample=Image.BILINEAR)
    return np.asarray(out)


def test_bank_matches_a_cropped_rotated_copy_then_forgets_it_on_withdrawal(tmp_path, photo):
    bank = HashBank(tmp_path / "b.db")
    r = pdq_hash(np.asarray(photo))
    cid = bank.add_case([r.hash], [r.quality], features=[F.extract_features(np.asarray(photo))])
    other = bank.add_case([pdq_hash(OTHER).hash], [90], features=[F.image_features(OTHER)])
    assert bank.feature_count() == 2
    q = F.extract_features(_edited(photo), max_features=F.QUERY_FEATURES)
    # PDQ alone misses this edit ...
    assert bank.match(pdq_hash(_edited(photo), dihedral=True).dihedral[None]) == []
    # ... the features find it, and only it
    hits = bank.match_features([q])
    assert [(m.query, m.case_id) for m in hits] == [(0, cid)]
    assert hits[0].inliers >= F.MIN_INLIERS and abs(hits[0].rotation_degrees) > 2
    # another process sees the same
    with HashBank(tmp_path / "b.db") as reader:
        assert [m.case_id for m in reader.match_features([q])] == [cid]
        assert len(reader.case_features(cid)) == 1
        assert bank.withdraw(cid) > 0
        assert reader.match_features([q]) == []  # table re-check, then catch-up
    assert bank.match_features([q]) == []
    assert bank.feature_count() == 1 and bank.case_features(cid) == []
    bank.close()
    blob = F.extract_features(np.asarray(photo)).to_bytes()
    for p in tmp_path.iterdir():
        assert blob[20:80] not in p.read_bytes(), p  # no copy of the withdrawn set on disk
    with HashBank(tmp_path / "b.db") as again:
        assert again.match_features([q]) == []
        assert [m.case_id for m in again.match_features([F.image_features(OTHER, query=True)])] == [other]


def test_add_case_rejects_bad_feature_sets(tmp_path, photo):
    bank = HashBank(tmp_path / "b.db")
    with pytest.raises(BankError, match="not an ncii_hash feature set"):
        bank.add_case(np.zeros((1, 32), np.uint8), [90], features=[b"nonsense bytes here"])
    with pytest.raises(TypeError, match="expected a FeatureSet"):
        bank.add_case(np.zeros((1, 32), np.uint8), [90], features=[42])
    big = F.extract_features(np.asarray(photo), max_features=F.QUERY_FEATURES)
    if len(big) > F.MAX_FEATURES:
        with pytest.raises(BankError, match="at most 256"):
            bank.add_case(np.zeros((1, 32), np.uint8), [90], features=[big])
    assert bank.stats().cases == 0 and bank.feature_count() == 0  # nothing written


def test_submission_with_features_round_trip_and_notice(tmp_path, photo):
    fs = F.extract_features(np.asarray(photo))
    r = pdq_hash(np.asarray(photo))
    sub = make_submission([r.hash], [r.quality], features=[fs])
    d = sub.to_dict()
    assert d["version"] == 2 and d["counts"]["feature_sets"] == 1
    assert "recognisable approximation" in d["local_features"]["notice"]
    write_submission(tmp_path / "s.json", sub)
    back = read_submission(tmp_path / "s.json")
    assert back.features == (fs.to_bytes(),)
    bank = HashBank(tmp_path / "b.db")
    cid = bank.add_submission(back)
    q = F.extract_features(_edited(photo), max_features=F.QUERY_FEATURES)
    assert [m.case_id for m in bank.match_features([q])] == [cid]
    # without features: version 1, no feature field at all
    plain = make_submission([r.hash], [r.quality]).to_dict()
    assert plain["version"] == 1 and "local_features" not in plain and "feature_sets" not in plain["counts"]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(version=1), "unexpected fields"),
    (lambda d: d["local_features"].update(sets="x"), "must be text and 'sets' a list"),
    (lambda d: d["local_features"]["sets"].__setitem__(0, "!!!"), "not valid base64"),
    (lambda d: d["local_features"]["sets"].__setitem__(0, base64.b64encode(b"NCIILF" + bytes(10)).decode()), "local feature set 0"),
    (lambda d: d["local_features"].pop("notice"), "'notice' and 'sets'"),
    (lambda d: d["local_features"]["sets"].__setitem__(0, "A" * 100_000), "at most"),
])
def test_bad_feature_submissions_are_rejected(photo, mutate, message):
    fs = F.extract_features(np.asarray(photo))
    d = make_submission(np.zeros((1, 32), np.uint8), [90], features=[fs]).to_dict()
    mutate(d)
    with pytest.raises(SubmissionError, match=message):
        parse_submission(d)


def test_cli_survivor_opt_in_and_two_stage_match(tmp_path, photo):
    import json
    import subprocess
    import sys

    def run(*a):
        return subprocess.run([sys.executable, "-m", "ncii_hash", *a], capture_output=True, text=True, cwd=tmp_path)

    Image.fromarray(_edited(photo)).save(tmp_path / "upload.jpg", quality=85)
    r = run("hash", str(PHOTO), "--features")
    assert r.returncode == 2 and "use it with -o" in r.stderr
    r = run("hash", str(PHOTO), "-o", "plain.json")
    assert "local_features" not in json.loads((tmp_path / "plain.json").read_text())
    r = run("hash", str(PHOTO), "-o", "sub.json", "--features")
    assert r.returncode == 0 and "recognisable approximation" in r.stderr
    assert "ALSO contains local features of 1 image" in run("show", "sub.json").stdout
    assert run("bank", "init", "b.db").returncode == 0
    cid = run("bank", "add", "b.db", "sub.json").stdout.strip()
    r = run("match", "b.db", "upload.jpg", "--json")
    rec = json.loads(r.stdout)[0]
    assert rec["status"] == "match" and rec["matches"][0]["case_id"] == cid
    assert rec["matches"][0]["via"] == "local features"
    r = run("match", "b.db", "upload.jpg", "--json", "--no-features")
    assert json.loads(r.stdout)[0]["status"] == "no match"
    run("bank", "withdraw", "b.db", cid)
    assert json.loads(run("match", "b.db", "upload.jpg", "--json").stdout)[0]["status"] == "no match"


def test_feature_snapshot_saved_reused_and_dropped_on_withdrawal(tmp_path, photo):
    path = tmp_path / "b.db"
    bank = HashBank(path)
    cid = bank.add_case(np.zeros((1, 32), np.uint8), [90], features=[F.extract_features(np.asarray(photo))])
    keep = bank.add_case(np.ones((1, 32), np.uint8), [90], features=[F.image_features(OTHER)])
    q = F.extract_features(_edited(photo), max_features=F.QUERY_FEATURES)
    assert [m.case_id for m in bank.match_features(q)] == [cid]
    bank.close()
    snaps = sorted(p.name for p in tmp_path.iterdir() if ".fidx." in p.name)
    assert snaps == ["b.db.fidx.2"]
    with HashBank(path) as b2:
        assert [m.case_id for m in b2.match_features(q)] == [cid]
        assert b2.feature_index_source == "snapshot"
        # a write by another process after the snapshot is caught up from the table
        with HashBank(path) as writer:
            extra = writer.add_case(np.full((1, 32), 7, np.uint8), [90], features=[F.extract_features(np.asarray(photo))])
        assert {m.case_id for m in b2.match_features(q)} == {cid, extra}
        b2.withdraw(cid)
        assert not any(".fidx." in p.name for p in tmp_path.iterdir())  # holds the withdrawn set
        assert [m.case_id for m in b2.match_features(q)] == [extra]
    # damaged snapshot: refused, rebuilt from the table
    snap = next(p for p in tmp_path.iterdir() if ".fidx." in p.name)
    data = bytearray(snap.read_bytes())
    data[200] ^= 0xFF
    snap.write_bytes(bytes(data))
    with HashBank(path) as b3:
        assert [m.case_id for m in b3.match_features(q)] == [extra]
        assert b3.feature_index_source == "table"
        assert [m.case_id for m in b3.match_features(F.image_features(OTHER, query=True))] == [keep]


def test_match_image_two_stages(tmp_path, photo):
    bank = HashBank(tmp_path / "b.db")
    r = pdq_hash(np.asarray(photo))
    cid = bank.add_case([r.hash], [r.quality], features=[F.extract_features(np.asarray(photo))])
    # a mirrored JPEG copy: PDQ (dihedral) catches it, features are not needed
    mirrored = np.ascontiguousarray(np.asarray(photo)[:, ::-1])
    got = bank.match_image(mirrored)
    assert [(m.case_id, m.via) for m in got] == [(cid, "pdq")] and got[0].distance <= 31
    # a cropped and rotated copy: only the local features find it
    got = bank.match_image(_edited(photo))
    assert [(m.case_id, m.via) for m in got] == [(cid, "local features")] and got[0].inliers >= F.MIN_INLIERS
    assert bank.match_image(_edited(photo), features=False) == []
    assert bank.match_image(OTHER) == []
