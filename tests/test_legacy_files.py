"""Files written by the previous version (before the package layout) still load and give the
answers that version gave (tests/data/legacy, made by its make_legacy.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import ncii_hash as nh

LEGACY = Path(__file__).parent / "data" / "legacy"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())
PHOTO = Path(__file__).parent / "data" / "pdq" / "data" / "reg-test-input" / "labelme-subset" / "q2821.jpg"


@pytest.fixture
def bank_copy(tmp_path):
    for p in LEGACY.glob("bank-v3.db*"):
        shutil.copy(p, tmp_path / p.name)
    return tmp_path / "bank-v3.db"


def test_old_bank_loads_its_snapshot_and_answers_as_before(bank_copy):
    exp = EXPECTED["bank"]
    with nh.HashBank(bank_copy, create=False) as bank:
        st = bank.stats()
        assert (st.cases, st.hashes, st.change_seq, st.feature_sets) == (exp["cases"], exp["hashes"],
                                                                        exp["change_seq"], exp["feature_sets"])
        assert st.index_source == "snapshot"  # the old .idx snapshot was accepted, not rebuilt
        found = [[m.query, m.case_id, m.hash_id, m.distance] for m in
                 bank.match(nh.from_hex(exp["queries"]), 31, dihedral=False)]
        assert found == exp["matches"]
        assert bank.case("case-withdrawn").status == "withdrawn"
        bank.verify()


def test_old_bank_feature_snapshot_is_used(bank_copy):
    pytest.importorskip("cv2")
    with nh.HashBank(bank_copy, create=False) as bank:
        hits = bank.match_features(nh.query_features(nh.load_pixels(PHOTO)))
        assert {m.case_id for m in hits} == {"case-features"}
        assert bank.feature_index_source == "snapshot"


def test_old_index_file_loads_and_searches_as_before():
    exp = EXPECTED["index"]
    for mmap in (True, False):
        index = nh.HashIndex.load(LEGACY / "index-v1.idx", mmap=mmap)
        assert len(index) == exp["len"] and 105 not in index and 104 in index
        r = index.range_search(nh.from_hex(exp["queries"]), 31)
        assert r.lims.tolist() == exp["lims"] and r.ids.tolist() == exp["ids"]
        assert r.distances.tolist() == exp["distances"]


def test_old_feature_index_file_loads_and_finds_its_photo():
    pytest.importorskip("cv2")
    index = nh.FeatureIndex.load(LEGACY / "feature-index-v1.fidx")
    assert index.live_ids().tolist() == EXPECTED["feature_index"]["ids"]
    hits = index.search(nh.query_features(nh.load_pixels(PHOTO)))
    assert [h.id for h in hits if h.match is not None and h.match.is_match] == [7]


def test_old_submissions_parse():
    s1 = nh.read_submission(LEGACY / "submission-v1.json")
    assert sorted(nh.to_hex(s1.hashes)) == sorted(EXPECTED["submission_v1"]["hashes"])
    assert len(s1.videos) == 1 and s1.videos[0].frames.shape[0] == EXPECTED["submission_v1"]["video_frames"]
    s2 = nh.read_submission(LEGACY / "submission-v2.json")
    assert sorted(nh.to_hex(s2.hashes)) == sorted(EXPECTED["submission_v2"]["hashes"])
    assert len(s2.features) == EXPECTED["submission_v2"]["feature_sets"]
    assert np.all(s2.qualities >= 50)
