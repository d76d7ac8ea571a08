"""The bank's parts that follow the table (IndexSync for hashes, FeatureStore for local
features), on their own: opening from snapshots, catching up with writes another process
committed, applying own writes, and rebuilding when a snapshot cannot be trusted. The oracle
is always the table itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ncii_hash.bank import HashBank
from ncii_hash.bank.cases import insert_case, withdraw_case
from ncii_hash.bank.db import Database
from ncii_hash.bank.index_sync import IndexSync


def _codes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


def _table(db: Database) -> dict[int, bytes]:
    return {r[0]: bytes(r[1]) for r in db.execute("SELECT hash_id, hash FROM hashes")}


def _agrees(sync: IndexSync, db: Database) -> bool:
    table = _table(db)
    if sorted(sync.index.ids.tolist()) != sorted(table):
        return False
    if not table:
        return True
    codes = np.frombuffer(b"".join(table.values()), np.uint8).reshape(-1, 32)
    res = sync.index.range_search(codes, 0)
    return all(hid in res.ids[res.lims[i]:res.lims[i + 1]] for i, hid in enumerate(table))


_OTHER_PROCESS = textwrap.dedent("""
    import sys
    import numpy as np
    from ncii_hash.bank import HashBank
    rng = np.random.default_rng(int(sys.argv[2]))
    with HashBank(sys.argv[1], snapshot=False) as bank:
        ids = [bank.add_case(rng.integers(0, 256, (int(n), 32), dtype=np.uint8)) for n in (3, 5, 2)]
        bank.withdraw(ids[1])
        print(ids[0], ids[2])
""")


def test_catches_up_with_another_processs_writes(tmp_path):
    path = tmp_path / "b.db"
    db = Database(path)
    sync = IndexSync(db, snapshots=False)
    sync.open()
    assert sync.source == "empty" and sync.seq == 0
    done = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(path), "3"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(sync) == 0  # nothing moves until asked
    sync.catch_up()
    assert sync.seq == db.seq() == 4 and len(sync) == 5 and _agrees(sync, db)
    rng = np.random.default_rng(3)  # the child's hashes, as the oracle
    first, _, third = (rng.integers(0, 256, (n, 32), dtype=np.uint8) for n in (3, 5, 2))
    hits = sync.range_search(np.concatenate([first, third]), 0)
    assert hits.ids.size == 5


def test_own_writes_apply_directly_or_catch_up_when_someone_wrote_between(tmp_path):
    path = tmp_path / "b.db"
    db, other = Database(path), Database(path)
    sync = IndexSync(db, snapshots=False)
    sync.open()
    codes = _codes(4, 1)
    with db.write() as w:
        ids = insert_case(db, "mine", codes, np.full(4, 90), ["image"] * 4, 1.0, w.next_seq())
    sync.applied(w, codes=codes, ids=ids)
    assert sync.seq == 1 and sorted(sync.index.ids.tolist()) == ids
    with other.write() as w2:  # another writer: our index is now behind
        insert_case(other, "theirs", _codes(2, 2), np.full(2, 90), ["image"] * 2, 1.0, w2.next_seq())
    with db.write() as w:
        assert w.base == 2
        removed = withdraw_case(db, "mine", 2.0, w.next_seq())
    sync.applied(w, removed=removed)  # base 2 != index seq 1: taken from the log instead
    assert sync.seq == 3 and len(sync) == 2 and _agrees(sync, db)


def test_opens_from_the_newest_good_snapshot_else_rebuilds(tmp_path):
    path = tmp_path / "b.db"
    with HashBank(path) as bank:
        bank.add_case(_codes(6, 1))
        first = bank.save_snapshot()
        cid = bank.add_case(_codes(3, 2))
        bank.add_case(_codes(2, 3))
    db = Database(path)
    sync = IndexSync(db)
    sync.open()
    assert sync.source == "snapshot" and sync.seq == 3 and _agrees(sync, db)
    assert not first.exists()  # close kept only the newest
    newest = sync.snapshots.path(3)
    # a damaged newest snapshot: skipped, and without an older one, a rebuild
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    sync = IndexSync(db)
    sync.open()
    assert sync.source == "rebuilt" and _agrees(sync, db)
    # a snapshot ahead of the bank (the file was replaced) is never loaded
    sync.save_snapshot()
    sync.snapshots.path(3).rename(sync.snapshots.path(9))
    sync = IndexSync(db)
    sync.open()
    assert sync.source == "rebuilt" and _agrees(sync, db)
    # an older snapshot plus the change log (including a withdrawal) is as good as the table
    sync.snapshots.drop_all()
    kept = sync.save_snapshot().read_bytes()
    with HashBank(path, snapshot=False) as bank:
        bank.withdraw(cid)
        bank.add_case(_codes(1, 4))
    assert sync.snapshots.listed() == []  # a withdrawal drops every snapshot ...
    sync.snapshots.path(3).write_bytes(kept)  # ... put one back, as a copy restored from a backup would
    sync = IndexSync(db)
    sync.open()
    assert sync.source == "snapshot" and sync.seq == 5 and _agrees(sync, db)


def test_a_replaced_file_means_a_rebuild(tmp_path):
    path = tmp_path / "b.db"
    db = Database(path)
    with HashBank(path, snapshot=False) as bank:
        for seed in range(3):
            bank.add_case(_codes(2, seed))
    sync = IndexSync(db, snapshots=False)
    sync.open()
    assert sync.seq == 3
    sync.seq = 10  # as if the index had followed a different, longer-lived file
    sync.catch_up()
    assert sync.seq == 3 and sync.source == "rebuilt" and _agrees(sync, db)


cv2 = pytest.importorskip("cv2")


def test_feature_store_loads_lazily_and_follows_other_writers(tmp_path):
    from pathlib import Path

    from ncii_hash.bank.feature_store import FeatureStore
    from ncii_hash.features import image_features, query_features
    from ncii_hash.image import load_pixels

    photo = Path(__file__).resolve().parent.parent / "examples" / "survivor" / "IMG_0001.jpg"
    path = tmp_path / "b.db"
    db = Database(path)
    store = FeatureStore(db)
    assert store.index is None and store.source == "not loaded" and store.count() == 0
    with HashBank(path) as writer:  # another connection banks a feature set
        cid = writer.add_case(_codes(1, 1), features=[image_features(photo)])
    assert store.index is None  # nothing loaded until a search
    q = query_features(load_pixels(photo))
    hits = store.search(q)
    assert store.source == "table" and store.seq == db.seq() == 1
    assert {h.case_id for h in hits} == {cid} and store.index.live_ids().tolist() == [hits[0].feature_id]
    saved = store.save_snapshot()
    assert saved == store.snapshots.path(1) and saved.exists()
    again = FeatureStore(db)
    again.sync()
    assert again.source == "snapshot" and again.index.live_ids().tolist() == store.index.live_ids().tolist()
    with HashBank(path, snapshot=False) as writer:
        writer.withdraw(cid)
    assert not saved.exists()  # withdrawal drops every snapshot
    assert store.search(q) == [] and store.index.live_ids().size == 0 and store.seq == 2
