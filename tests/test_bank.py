"""HashBank: durable cases, immediate withdrawal, exchange, crash safety, concurrency."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ncii_hash.bank import BankError, HashBank


def random_hashes(rng, n):
    return rng.integers(0, 256, size=(n, 32), dtype=np.uint8)


def flip_bits(h, nbits, rng):
    out = h.copy()
    for b in rng.choice(256, size=nbits, replace=False):
        out[b // 8] ^= np.uint8(1 << (b % 8))
    return out


def all_bank_bytes(path: Path) -> bytes:
    data = b""
    for p in path.parent.iterdir():
        if p.name.startswith(path.name):
            data += p.read_bytes()
    return data


def test_add_match_withdraw(store):
    rng = np.random.default_rng(1)
    bank = HashBank(store)
    a, b = random_hashes(rng, 3), random_hashes(rng, 2)
    ca, cb = bank.add_case(a), bank.add_case(b, [90, 80])
    assert ca != cb and ca.startswith("case-") and len(ca) >= 32
    q = np.stack([flip_bits(a[1], 10, rng), flip_bits(b[0], 31, rng), flip_bits(b[1], 32, rng)])
    ms = bank.match(q)
    assert [(m.query, m.case_id, m.distance) for m in ms] == [(0, ca, 10), (1, cb, 31)]
    assert bank.case(ca).status == "active" and bank.case(ca).hashes == 3
    assert bank.withdraw(ca) == 3
    assert bank.withdraw(ca) == 0
    assert bank.case(ca).status == "withdrawn" and bank.case(ca).hashes == 0
    assert [m.case_id for m in bank.match(q)] == [cb]
    with pytest.raises(KeyError):
        bank.withdraw("case-doesnotexist")
    bank.verify()
    bank.close()


def test_withdrawal_survives_reopen_and_rebuild_and_leaves_no_bytes(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "bank.db"
    bank = HashBank(path)
    secret = random_hashes(rng, 4)
    keep = random_hashes(rng, 4)
    cs = bank.add_case(secret)
    bank.add_case(keep)
    bank.save_snapshot()
    assert any(secret[0].tobytes() in p.read_bytes() for p in tmp_path.iterdir())
    bank.withdraw(cs)
    assert bank.match(secret) == []
    bank.close()
    raw = all_bank_bytes(path)
    for h in secret:
        assert h.tobytes() not in raw, "withdrawn hash bytes still on disk"
    assert keep[0].tobytes() in raw
    # reopen from snapshot, then with snapshots removed (rebuild)
    bank = HashBank(path)
    assert bank.index_source == "snapshot"
    assert bank.match(secret) == [] and len(bank.match(keep)) == 4
    bank.verify()
    bank.close(save_snapshot=False)
    for p in tmp_path.glob("bank.db.idx.*"):
        p.unlink()
    bank = HashBank(path)
    assert bank.index_source == "rebuilt"
    assert bank.match(secret) == [] and len(bank.match(keep)) == 4
    bank.close()


def test_files_are_owner_only(tmp_path):
    path = tmp_path / "bank.db"
    bank = HashBank(path)
    bank.add_case(random_hashes(np.random.default_rng(3), 2))
    bank.save_snapshot()
    out = tmp_path / "export.csv"
    bank.export(out)
    for p in tmp_path.iterdir():
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, f"{p.name} is {oct(mode)}"
    bank.close()


def test_low_quality_refused_with_reason(store):
    bank = HashBank(store)
    h = random_hashes(np.random.default_rng(4), 2)
    with pytest.raises(BankError, match="quality below 50"):
        bank.add_case(h, [80, 10])
    assert len(bank) == 0
    bank.add_case(h, [80, 10], allow_low_quality=True)
    assert len(bank) == 2


def test_dihedral_match_reports_variant(store):
    bank = HashBank(store)
    rng = np.random.default_rng(5)
    banked = random_hashes(rng, 1)
    cid = bank.add_case(banked)
    sets = random_hashes(rng, 8).reshape(1, 8, 32)
    sets[0, 5] = flip_bits(banked[0], 7, rng)
    ms = bank.match(sets)
    assert [(m.case_id, m.distance, m.variant) for m in ms] == [(cid, 7, 5)]
    assert bank.match(sets, dihedral=False) == []


def test_changes_feed(store):
    bank = HashBank(store)
    rng = np.random.default_rng(6)
    c1 = bank.add_case(random_hashes(rng, 2))
    first = bank.changes()
    assert [a["case_id"] for a in first.added] == [c1] and first.withdrawn == []
    c2 = bank.add_case(random_hashes(rng, 1))
    c3 = bank.add_case(random_hashes(rng, 1))
    bank.withdraw(c1)
    bank.withdraw(c3)
    delta = bank.changes(first.next_token)
    assert [a["case_id"] for a in delta.added] == [c2]
    assert delta.withdrawn == [c1, c3]
    assert bank.changes(delta.next_token).added == []
    with pytest.raises(BankError):
        bank.changes("not-a-token")


def test_changes_feed_lists_an_extended_case_once(tmp_path):
    """A case that a synced feed page extends has several 'add' entries in the change log; the
    delta still lists it once, with all its current hashes."""
    from ncii_hash.bank import cases

    bank = HashBank(tmp_path / "b.db")
    rng = np.random.default_rng(8)
    cid = bank.add_case(random_hashes(rng, 2))
    extra = random_hashes(rng, 3)
    with bank._db.write() as w:  # what FeedSync does when a later page brings more of the case
        cases.add_hashes(bank._db, cid, extra, np.full(3, 100, np.int32), ["image"] * 3, 0.0, w.next_seq())
    delta = bank.changes()
    assert [a["case_id"] for a in delta.added] == [cid]
    assert delta.added[0]["hashes"].shape == (5, 32)
    bank.close(save_snapshot=False)


def test_closing_an_unchanged_bank_does_not_rewrite_its_snapshot(tmp_path):
    path = tmp_path / "b.db"
    with HashBank(path) as bank:
        bank.add_case(random_hashes(np.random.default_rng(9), 4))
    snap = next(tmp_path.glob("b.db.idx.*"))
    first = snap.stat().st_mtime_ns, snap.stat().st_ino
    with HashBank(path) as bank:
        assert bank.index_source == "snapshot"
        bank.match(random_hashes(np.random.default_rng(10), 2))
    assert snap.exists() and (snap.stat().st_mtime_ns, snap.stat().st_ino) == first


def another_store(store, tmp_path, request) -> str:
    """A second fresh bank location of the same kind as ``store``."""
    if store.startswith("postgresql://"):
        return request.getfixturevalue("pg_server").create_database()[1]
    return str(tmp_path / "another.db")


def test_export_import_round_trip(store, tmp_path, request):
    rng = np.random.default_rng(7)
    src = HashBank(store)
    cases = [src.add_case(random_hashes(rng, 3), [60, 70, 80]) for _ in range(3)]
    src.withdraw(cases[1])
    n = src.export(tmp_path / "x.csv")
    assert n == 6
    dst = HashBank(another_store(store, tmp_path, request))
    imported = dst.import_(tmp_path / "x.csv")
    assert sorted(imported) == sorted([cases[0], cases[2]])
    queries = np.concatenate([src.case_hashes(c) for c in cases if c != cases[1]] + [random_hashes(rng, 5)])
    key = lambda ms: [(m.query, m.case_id, m.distance) for m in ms]  # noqa: E731
    assert key(src.match(queries)) == key(dst.match(queries))
    dst.verify()
    src.close()
    dst.close()


@pytest.mark.parametrize(
    "content,message",
    [
        ("pdq,quality\n" + "a" * 63 + ",90\n", "line 2"),
        ("a" * 64 + ",90\n" + "g" * 64 + ",90\n", "line 2"),
        ("a" * 64 + ",90\n" + "b" * 64 + ",abc\n", "line 2"),
        ("a" * 64 + ",101\n", "line 1"),
        ("a" * 64 + ",90,bad case id!\n", "line 1"),
        ("a" * 64 + ",90,c1,movie\n", "line 1"),
        ("", "no hashes"),
    ],
)
def test_bad_csv_imports_nothing(store, tmp_path, content, message):
    bank = HashBank(store)
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(BankError, match=message):
        bank.import_(tmp_path / "bad.csv")
    assert len(bank) == 0 and bank.stats().cases == 0
    bank.close()


def test_submission_round_trip_and_bad_versions(store, tmp_path):
    from ncii_hash.submission import make_submission, write_submission

    rng = np.random.default_rng(8)
    h = random_hashes(rng, 3)
    sub = make_submission(h, [90, 91, 92])
    write_submission(tmp_path / "s.json", sub)
    bank = HashBank(store)
    cid = bank.add_submission(tmp_path / "s.json")
    assert sorted(map(bytes, bank.case_hashes(cid))) == sorted(map(bytes, h))
    obj = json.loads((tmp_path / "s.json").read_text())
    obj["version"] = 99
    with pytest.raises(ValueError, match="version"):
        bank.add_submission(obj)
    (tmp_path / "t.json").write_text((tmp_path / "s.json").read_text()[:40])
    with pytest.raises(ValueError, match="JSON"):
        bank.add_submission(tmp_path / "t.json")
    assert bank.stats().cases == 1
    bank.close()


def test_not_a_bank(tmp_path):
    p = tmp_path / "x.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BankError):
        HashBank(p)
    with pytest.raises(FileNotFoundError):
        HashBank(tmp_path / "nope" / "b.db")
    with pytest.raises(BankError, match="folder"):
        HashBank(tmp_path)


def test_second_instance_sees_writes_immediately(store):
    rng = np.random.default_rng(9)
    w, r = HashBank(store), HashBank(store)
    h = random_hashes(rng, 2)
    assert r.match(h) == []
    cid = w.add_case(h)
    assert {m.case_id for m in r.match(h)} == {cid}
    w.withdraw(cid)
    assert r.match(h) == []
    r.verify()
    w.close()
    r.close()


WRITER = textwrap.dedent(
    """
    import os, sys, numpy as np
    from ncii_hash.bank import HashBank
    path, log, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = np.random.default_rng(seed)
    bank = HashBank(path)
    logf = open(log, "a")
    def note(line):
        logf.write(line + "\\n"); logf.flush(); os.fsync(logf.fileno())
    lines = open(log).read().split("\\n")
    gone = {l.split()[1] for l in lines if l.startswith("withdraw") or l.startswith("intent-withdraw")}
    active = [l.split()[1] for l in lines if l.startswith("add ") and l.split()[1] not in gone]
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        if active and rng.random() < 0.3:
            c = active.pop(int(rng.integers(len(active))))
            note(f"intent-withdraw {c}")
            bank.withdraw(c)
            note(f"withdraw {c}")
        else:
            c = f"case-s{seed}-{n}"
            h = rng.integers(0, 256, size=(int(rng.integers(1, 40)), 32), dtype=np.uint8)
            np.save(os.path.join(os.path.dirname(log), c + ".npy"), h)
            note(f"intent-add {c}")
            bank.add_case(h, case_id=c)
            note(f"add {c}")
            active.append(c)
        if rng.random() < 0.05:
            bank.save_snapshot()
    """
)


def test_crash_safety_sigkill_writer(tmp_path):
    """SIGKILL a writer at random moments 50 times. After each restart: every committed add
    is present in full, every committed withdrawal is absent, an operation cut short is all
    or nothing, and the index agrees exactly with the table."""
    path, log = tmp_path / "b.db", tmp_path / "ops.log"
    log.touch()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = np.random.default_rng(10)
    for round_ in range(50):
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(log), str(round_)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.0, 0.15)))  # let it write for a random moment
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        lines = log.read_text().split("\n")
        ops = {}
        for line in lines:
            if line:
                op, c = line.split()
                ops.setdefault(c, []).append(op)
        bank = HashBank(path)
        bank.verify()
        for c, seen in ops.items():
            h = np.load(tmp_path / (c + ".npy"))
            try:
                info = bank.case(c)
            except KeyError:
                assert seen == ["intent-add"], (c, seen)  # killed before its commit
                continue
            if "withdraw" in seen:
                assert info.status == "withdrawn" and info.hashes == 0
                assert not bank.match(h, 0)
            elif info.status == "withdrawn":
                assert seen[-1] == "intent-withdraw", (c, seen)
                assert info.hashes == 0 and not bank.match(h, 0)
            else:
                assert seen[-1] in ("add", "intent-add", "intent-withdraw"), (c, seen)
                assert sorted(map(bytes, bank.case_hashes(c))) == sorted(map(bytes, h))  # all, never part
                assert len({m.query for m in bank.match(h, 0) if m.case_id == c}) == len(h)
        bank.close(save_snapshot=bool(round_ % 2))
    counts = [op for line in log.read_text().split() if line in ("add", "withdraw") for op in [line]]
    assert counts.count("add") > 50 and counts.count("withdraw") > 10


READER = textwrap.dedent(
    """
    import os, sys, time, numpy as np
    from ncii_hash.bank import HashBank
    path, probe, done = sys.argv[1], sys.argv[2], sys.argv[3]
    bank = HashBank(path, snapshot=False)
    h = np.load(probe)
    seen = 0
    deadline = time.time() + 100
    while time.time() < deadline:
        finished = os.path.exists(done)  # checked BEFORE matching: the writer has committed all
        ms = bank.match(h, 0)
        n = len({m.query for m in ms})
        if n < seen:
            print("went backwards", n, seen); sys.exit(1)
        seen = n
        if finished:
            if seen != len(h):
                print("stale after the writer finished", seen); sys.exit(1)
            print("ok", seen); sys.exit(0)
    print("timeout"); sys.exit(1)
    """
)


def test_concurrent_reader_processes_with_one_writer(store, tmp_path):
    path = store
    rng = np.random.default_rng(11)
    batches = [random_hashes(rng, 20) for _ in range(10)]
    np.save(tmp_path / "probe.npy", np.concatenate(batches))
    HashBank(path).close()
    (tmp_path / "reader.py").write_text(READER)
    done = tmp_path / "writer-done"
    readers = [subprocess.Popen([sys.executable, str(tmp_path / "reader.py"), path, str(tmp_path / "probe.npy"), str(done)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    writer = HashBank(path)
    for b in batches:
        writer.add_case(b)
    done.touch()
    # After the writer's last commit, a fresh match in any process sees everything.
    out = [r.communicate(timeout=120) for r in readers]
    for (stdout, stderr), r in zip(out, readers):
        assert r.returncode == 0, stdout + stderr
    fresh = HashBank(path, snapshot=False)
    assert len({m.query for m in fresh.match(np.concatenate(batches), 0)}) == 200
    writer.close()
    fresh.close()


def test_wrong_types_raise_type_error_and_nothing_is_banked(store):
    bank = HashBank(store)
    h = random_hashes(np.random.default_rng(12), 2)
    with pytest.raises(TypeError, match="qualities must be integers"):
        bank.add_case(h, np.array([80.0, 90.0]))
    with pytest.raises(TypeError, match="uint8"):
        bank.add_case(h.astype(np.int16), [80, 90])
    with pytest.raises(TypeError, match="case id"):
        bank.add_case(h, [80, 90], case_id=42)
    with pytest.raises(BankError, match="one per hash"):
        bank.add_case(h, [80])
    with pytest.raises(TypeError, match="uint8"):
        bank.match(h.astype(np.int64))
    assert len(bank) == 0 and bank.stats().cases == 0
    bank.close()


def test_verify_raises_bank_error_when_index_and_table_disagree(store):
    bank = HashBank(store, snapshot=False)
    bank.add_case(random_hashes(np.random.default_rng(13), 3))
    bank.verify()
    bank._index.remove(bank._index.ids[:1])  # damage the derived index behind the bank's back
    with pytest.raises(BankError, match="index holds 2 hashes, the table 3"):
        bank.verify()
    bank.close(save_snapshot=False)
    with HashBank(store, snapshot=False) as again:  # rebuilt from the table: whole again
        again.verify()
