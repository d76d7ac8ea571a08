"""The one snapshot lifecycle (ncii_hash.bank.snapshots.SnapshotFiles) used by the hash index
(``<bank>.idx.<seq>``) and the feature index (``<bank>.fidx.<seq>``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ncii_hash.bank.snapshots import SnapshotFiles

LEGACY = Path(__file__).resolve().parent / "data" / "legacy"


def _touch(folder: Path, *names: str) -> None:
    for n in names:
        (folder / n).write_bytes(b"x")


def test_names_listing_and_newest_not_ahead(tmp_path):
    bank = tmp_path / "b.db"
    idx, fidx = SnapshotFiles(bank, "idx"), SnapshotFiles(bank, "fidx")
    assert idx.path(7) == tmp_path / "b.db.idx.7" and fidx.path(7) == tmp_path / "b.db.fidx.7"
    _touch(tmp_path, "b.db.idx.3", "b.db.idx.12", "b.db.idx.5", "b.db.fidx.4",
           "b.db.idx.5x", "b.db.idx.", "b.db2.idx.9", "c.db.idx.1", ".b.db.idx.13.abc.tmp")
    assert idx.listed() == [(12, tmp_path / "b.db.idx.12"), (5, tmp_path / "b.db.idx.5"), (3, tmp_path / "b.db.idx.3")]
    assert fidx.listed() == [(4, tmp_path / "b.db.fidx.4")]
    assert [s for s, _ in idx.not_ahead_of(11)] == [5, 3]
    assert [s for s, _ in idx.not_ahead_of(12)] == [12, 5, 3]
    assert idx.not_ahead_of(2) == []
    assert SnapshotFiles(tmp_path / "absent" / "b.db", "idx").listed() == []


def test_drop_others_keeps_one_and_drop_all_takes_temp_files_of_its_kind_only(tmp_path):
    bank = tmp_path / "b.db"
    idx, fidx = SnapshotFiles(bank, "idx"), SnapshotFiles(bank, "fidx")
    _touch(tmp_path, "b.db", "b.db.idx.1", "b.db.idx.2", "b.db.fidx.2", ".b.db.idx.3.k2j4.tmp",
           ".b.db.fidx.2.zz.tmp", "c.db.idx.1", ".c.db.idx.1.q.tmp")
    idx.drop_others(idx.path(2))
    assert idx.listed() == [(2, tmp_path / "b.db.idx.2")]
    idx.drop_all()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([".b.db.fidx.2.zz.tmp", ".c.db.idx.1.q.tmp", "b.db", "b.db.fidx.2", "c.db.idx.1"])
    fidx.drop_all()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.db.idx.1.q.tmp", "b.db", "c.db.idx.1"]
    idx.drop_all()  # nothing left to drop: no error


def test_a_bank_name_with_glob_characters(tmp_path):
    bank = tmp_path / "[x]*.db"
    snaps = SnapshotFiles(bank, "idx")
    _touch(tmp_path, "[x]*.db.idx.4", ".[x]*.db.idx.4.a.tmp", "x.db.idx.4", ".x.db.idx.4.a.tmp")
    assert [s for s, _ in snaps.listed()] == [4]
    snaps.drop_all()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".x.db.idx.4.a.tmp", "x.db.idx.4"]


def test_the_previous_versions_snapshot_names_are_found():
    bank = LEGACY / "bank-v3.db"
    assert [s for s, _ in SnapshotFiles(bank, "idx").listed()] == [5]
    assert [s for s, _ in SnapshotFiles(bank, "fidx").listed()] == [5]


@pytest.mark.parametrize("kind", ["index", "", "IDX"])
def test_bad_kind(tmp_path, kind):
    with pytest.raises(ValueError, match="kind"):
        SnapshotFiles(tmp_path / "b.db", kind)


@pytest.mark.parametrize("seq", [-1, 1.5, "3", True])
def test_bad_sequence(tmp_path, seq):
    with pytest.raises(ValueError, match="sequence"):
        SnapshotFiles(tmp_path / "b.db", "idx").path(seq)
