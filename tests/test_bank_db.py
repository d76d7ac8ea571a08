"""The bank's store on its own (ncii_hash.bank.db.Database): pragmas, private file, schema
creation and migrations from older banks, the change sequence, write transactions that
commit or roll back as a whole, read snapshots, chunked id look-ups, and bad files."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from ncii_hash.bank import BankError, HashBank
from ncii_hash.bank.cases import case_exists, insert_case
from ncii_hash.bank.db import SCHEMA_VERSION, Database
from ncii_hash.bank.store import open_database

try:  # a constraint failure raises the driver's IntegrityError on either store
    from psycopg import IntegrityError as PgIntegrityError
except ImportError:  # pragma: no cover - without the postgresql extra only SQLite runs
    PgIntegrityError = sqlite3.IntegrityError


def _codes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


def _add(db: Database, case_id: str, codes: np.ndarray) -> list[int]:
    with db.write() as w:
        return insert_case(db, case_id, codes, np.full(len(codes), 90), ["image"] * len(codes), 1.0, w.next_seq())


def test_new_store_is_private_durable_and_versioned(tmp_path):
    db = Database(tmp_path / "b.db")
    assert (tmp_path / "b.db").stat().st_mode & 0o777 == 0o600
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.schema_version() == SCHEMA_VERSION and db.meta("kind") == "ncii-hash-bank"
    assert db.seq() == 0 and db.meta("no such key") is None
    bank_id = db.meta("bank_id")
    db.close()
    assert db.closed
    with pytest.raises(BankError, match="closed"):
        db.seq()
    again = Database(tmp_path / "b.db", create=False)
    assert again.meta("bank_id") == bank_id  # opening never re-creates
    again.close()


def test_write_commits_its_sequence_and_another_connection_sees_it(store):
    a, b = open_database(store), open_database(store)
    ids = _add(a, "c1", _codes(3, 1))
    assert a.seq() == b.seq() == 1 and case_exists(b, "c1")
    assert [r[0] for r in b.execute("SELECT hash_id FROM hashes ORDER BY hash_id")] == ids
    with a.write() as w:  # a write that changes nothing keeps the sequence
        assert w.base == w.seq == 1
    assert b.seq() == 1
    with a.write() as w:
        assert (w.next_seq(), w.next_seq()) == (2, 3)
    assert b.seq() == 3
    a.close()
    b.close()


def test_write_rolls_everything_back_on_error(store):
    db = open_database(store)
    _add(db, "c1", _codes(2, 1))
    with pytest.raises(RuntimeError, match="midway"):
        with db.write() as w:
            insert_case(db, "c2", _codes(4, 2), np.full(4, 90), ["image"] * 4, 1.0, w.next_seq())
            assert case_exists(db, "c2")
            raise RuntimeError("midway")
    assert not db.in_transaction
    assert db.seq() == 1 and not case_exists(db, "c2")
    assert db.execute("SELECT COUNT(*) FROM hashes").fetchone()[0] == 2
    assert db.execute("SELECT COUNT(*) FROM changes").fetchone()[0] == 1
    with pytest.raises((sqlite3.IntegrityError, PgIntegrityError)):  # a constraint failure rolls back the same way
        with db.write() as w:
            insert_case(db, "c1", _codes(1, 3), np.full(1, 90), ["image"], 1.0, w.next_seq())
    assert db.seq() == 1 and db.execute("SELECT COUNT(*) FROM hashes").fetchone()[0] == 2
    _add(db, "c3", _codes(1, 4))  # still usable
    assert db.seq() == 2
    db.close()


def test_read_is_a_snapshot_that_other_writers_do_not_change(store):
    reader, writer = open_database(store), open_database(store)
    _add(writer, "c1", _codes(2, 1))
    with reader.read() as seq:
        assert seq == 1 and reader.execute("SELECT COUNT(*) FROM hashes").fetchone()[0] == 2
        _add(writer, "c2", _codes(5, 2))  # WAL: the writer is not blocked by the reader
        assert reader.seq() == 1 and reader.execute("SELECT COUNT(*) FROM hashes").fetchone()[0] == 2
    assert reader.seq() == 2 and reader.execute("SELECT COUNT(*) FROM hashes").fetchone()[0] == 7
    with writer.write() as w:  # a read inside a write sees the write's own view
        w.next_seq()
        with writer.read() as seq:
            assert seq == 2
    reader.close()
    writer.close()


def test_rows_for_ids_chunks_below_the_parameter_limit(store):
    db = open_database(store)
    ids = _add(db, "c1", _codes(2 * Database.MAX_PARAMETERS + 17, 5))
    rng = np.random.default_rng(6)
    wanted = rng.choice(ids, 1500)  # with repeats
    asked = np.concatenate([wanted, [10**9, -5]])  # and ids that do not exist
    rows = db.rows_for_ids("SELECT hash_id, case_id FROM hashes WHERE hash_id IN ({})", asked)
    assert sorted(r[0] for r in rows) == sorted(set(wanted.tolist()))
    assert {r[1] for r in rows} == {"c1"}
    assert db.rows_for_ids("SELECT hash_id FROM hashes WHERE hash_id IN ({})", np.zeros(0, np.int64)) == []
    db.close()


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cases (case_id TEXT PRIMARY KEY, created_at REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'withdrawn')), withdrawn_at REAL);
CREATE TABLE hashes (hash_id INTEGER PRIMARY KEY AUTOINCREMENT, case_id TEXT NOT NULL REFERENCES cases(case_id),
    algorithm TEXT NOT NULL DEFAULT 'pdq' CHECK (algorithm = 'pdq'), hash BLOB NOT NULL CHECK (length(hash) = 32),
    quality INTEGER NOT NULL CHECK (quality BETWEEN 0 AND 100),
    kind TEXT NOT NULL CHECK (kind IN ('image', 'video_frame')), added_at REAL NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE changes (seq INTEGER PRIMARY KEY, case_id TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('add', 'withdraw')), hash_ids BLOB NOT NULL, at REAL NOT NULL);
"""
V2_EXTRA = """
ALTER TABLE hashes ADD COLUMN item INTEGER NOT NULL DEFAULT 0;
CREATE TABLE videos (case_id TEXT NOT NULL REFERENCES cases(case_id), item INTEGER NOT NULL, md5 TEXT NOT NULL,
    PRIMARY KEY (case_id, item));
"""


def _old_bank(path, version: int, code: bytes) -> None:
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA + (V2_EXTRA if version == 2 else ""))
    con.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", str(version)), ("change_seq", "1"),
                                                        ("bank_id", "x"), ("kind", "ncii-hash-bank")])
    con.execute("INSERT INTO cases VALUES ('old', 1.0, 'active', NULL)")
    con.execute("INSERT INTO hashes (case_id, hash, quality, kind, added_at, seq) VALUES ('old', ?, 90, 'image', 1, 1)",
                (code,))
    con.execute("INSERT INTO changes VALUES (1, 'old', 'add', ?, 1.0)", (np.asarray([1], "<i8").tobytes(),))
    con.commit()
    con.close()


@pytest.mark.parametrize("version", [1, 2])
def test_old_schemas_are_migrated_and_keep_their_rows(tmp_path, version):
    path = tmp_path / "old.db"
    code = _codes(1, 7)
    _old_bank(path, version, code[0].tobytes())
    db = Database(path, create=False)
    assert db.schema_version() == SCHEMA_VERSION and db.seq() == 1
    assert db.execute("SELECT case_id, item FROM hashes").fetchall() == [("old", 0)]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"videos", "features"} <= tables
    db.close()
    with HashBank(path) as bank:  # the migrated bank works as a bank
        assert [m.case_id for m in bank.match(code)] == ["old"]
        cid = bank.add_case(_codes(1, 8), [90], features=())
        assert bank.feature_count() == 0 and bank.case(cid).hashes == 1
        bank.verify()


def test_files_that_are_not_banks_are_refused(tmp_path):
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BankError, match="not a readable ncii-hash bank"):
        Database(tmp_path / "junk.db")
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('kind', 'x');")
    con.close()
    with pytest.raises(BankError, match="not an ncii-hash bank"):
        Database(other)
    newer = tmp_path / "newer.db"
    Database(newer).close()
    con = sqlite3.connect(newer)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(BankError, match="newer than this ncii-hash"):
        Database(newer)
    with pytest.raises(BankError, match="folder"):
        Database(tmp_path)
    with pytest.raises(FileNotFoundError, match="folder does not exist"):
        Database(tmp_path / "nope" / "b.db")
    with pytest.raises(FileNotFoundError, match="no such bank"):
        Database(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_checkpoint_truncates_the_wal(tmp_path):
    db = Database(tmp_path / "b.db")
    _add(db, "c1", _codes(50, 9))
    wal = tmp_path / "b.db-wal"
    assert wal.stat().st_size > 0
    db.checkpoint()
    assert wal.stat().st_size == 0
    assert db.file_bytes() == (tmp_path / "b.db").stat().st_size
