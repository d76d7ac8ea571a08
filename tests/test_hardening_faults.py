"""Hardening (issue 9), fault injection: a disk that fills up mid-write and a process killed
mid-save leave the previous file loadable and resurrect nothing. See docs/hardening.md."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ncii_hash.bank import HashBank
from ncii_hash.submission import make_submission, read_submission, write_submission
from ncii_hash.index import HashIndex

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))

from hardening_helpers import RNG_SEED, codes as _codes, photo as _photo, run_cli as _run_cli  # noqa: F401


# ============================================================ fault injection: full disk
class _FullDisk:
    """Wraps the file objects ``os.fdopen`` returns: writes fail with ENOSPC once
    ``budget`` bytes have gone through, as on a disk that fills up mid-write."""

    def __init__(self, monkeypatch, budget: int):
        self.budget = budget
        real = os.fdopen
        outer = self

        class Limited:
            def __init__(self, f):
                self._f = f

            def write(self, data):
                size = len(data) if not isinstance(data, memoryview) else data.nbytes
                if outer.budget < size:
                    raise OSError(errno.ENOSPC, "No space left on device")
                outer.budget -= size
                return self._f.write(data)

            def __getattr__(self, name):
                return getattr(self._f, name)

            def __enter__(self):
                self._f.__enter__()
                return self

            def __exit__(self, *exc):
                return self._f.__exit__(*exc)

            def __iter__(self):
                return iter(self._f)

        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Limited(real(fd, *a, **k)))


def _no_temp_files(folder: Path, keep: set) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.parametrize("fault", ["write-early", "write-late", "fsync", "replace"])
def test_index_save_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch, fault):
    old = HashIndex()
    old.add(_codes(100, 1))
    old.save(tmp_path / "bank.idx")
    new = HashIndex()
    new.add(_codes(3000, 2))
    if fault.startswith("write"):
        _FullDisk(monkeypatch, 100 if fault == "write-early" else 90_000)
    elif fault == "fsync":
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    else:
        monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(OSError):
        new.save(tmp_path / "bank.idx")
    monkeypatch.undo()
    again = HashIndex.load(tmp_path / "bank.idx")
    assert np.array_equal(again.range_search(_codes(100, 1), 0).ids, np.arange(100))
    assert _no_temp_files(tmp_path, {"bank.idx"}) == []


@pytest.mark.parametrize("fault", ["write", "fsync", "replace"])
def test_submission_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch, fault):
    path = tmp_path / "submission.json"
    write_submission(path, make_submission(_codes(2, 1), [90, 80]))
    before = path.read_bytes()
    if fault == "write":
        _FullDisk(monkeypatch, 10)
    elif fault == "fsync":
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    else:
        monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(OSError):
        write_submission(path, make_submission(_codes(50, 2), [90] * 50))
    monkeypatch.undo()
    assert path.read_bytes() == before and len(read_submission(path)) == 2
    assert _no_temp_files(tmp_path, {"submission.json"}) == []


@pytest.mark.parametrize("fault", ["write", "fsync", "replace"])
def test_bank_export_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch, fault):
    bank = HashBank(tmp_path / "b.db", snapshot=False)
    try:
        bank.add_case(_codes(3, 1))
        bank.export(tmp_path / "out.csv")
        before = (tmp_path / "out.csv").read_bytes()
        bank.add_case(_codes(400, 2))
        if fault == "write":
            _FullDisk(monkeypatch, 0)
            # csv writes through a buffer: make the flush at the end hit the full disk too
        elif fault == "fsync":
            monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        else:
            monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
        with pytest.raises(OSError):
            bank.export(tmp_path / "out.csv")
        monkeypatch.undo()
        assert (tmp_path / "out.csv").read_bytes() == before
        assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
        assert len(bank) == 403  # the bank itself is untouched and usable
        assert bank.export(tmp_path / "out.csv") == 403
    finally:
        bank.close(save_snapshot=False)


_FSIZE_CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    import numpy as np
    from ncii_hash.bank import HashBank
    path, limit = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
    bank = HashBank(path, snapshot=False)
    rng = np.random.default_rng(5)
    cases, withdrawn, failures = [], [], 0
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # the disk is now nearly full
    for i in range(400):
        try:
            if i % 7 == 6 and cases:
                victim = cases[len(withdrawn) % len(cases)]
                if victim not in withdrawn:
                    bank.withdraw(victim)
                    withdrawn.append(victim)
            else:
                cases.append(bank.add_case(rng.integers(0, 256, (20, 32), dtype=np.uint8)))
        except Exception as exc:  # the call failed: nothing of it may be in the bank
            failures += 1
            print("FAIL", type(exc).__name__, exc, file=sys.stderr)
    print(json.dumps({"cases": cases, "withdrawn": withdrawn, "failures": failures}))
    """
)


def test_bank_on_a_filling_disk_loses_and_resurrects_nothing(tmp_path):
    """A real "disk full" for SQLite too: the child's file-size limit (RLIMIT_FSIZE) makes
    every write past it fail. Cases whose add returned must be in the reopened bank, every
    other add must have left nothing, and no withdrawn case may come back."""
    path = tmp_path / "bank.db"
    HashBank(path, snapshot=False).close(save_snapshot=False)
    limit = path.stat().st_size + 120_000
    done = subprocess.run([sys.executable, "-c", _FSIZE_CHILD, str(path), str(limit)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["failures"] > 0, "the limit was never reached: the test proves nothing"
    assert report["cases"], "no write succeeded before the disk filled"
    bank = HashBank(path, snapshot=False)
    try:
        bank.verify()
        live = {c.case_id for c in map(bank.case, report["cases"]) if c.status == "active"}
        assert live == set(report["cases"]) - set(report["withdrawn"])
        for cid in report["withdrawn"]:
            assert bank.case(cid).status == "withdrawn" and bank.case(cid).hashes == 0
        total = bank._db.execute("SELECT COUNT(*) FROM cases").fetchone()[0]
        assert total == len(report["cases"])  # no half-written case from a failed add
        assert len(bank) == 20 * len(live)
    finally:
        bank.close(save_snapshot=False)


# ============================================================ fault injection: process death
_KILL_DURING_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from ncii_hash.index import HashIndex
    path, where = sys.argv[1], sys.argv[2]
    index = HashIndex()
    index.add(np.random.default_rng(2).integers(0, 256, (5000, 32), dtype=np.uint8))
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    if where == "fsync":
        os.fsync = die  # data written, not yet durable or renamed
    elif where == "replace":
        os.replace = die
    else:  # half-way through writing the codes
        real = os.fdopen
        class Dying:
            def __init__(self, f): self.f, self.n = f, 0
            def write(self, b):
                self.n += 1
                if self.n == 4: die()
                return self.f.write(b)
            def __getattr__(self, k): return getattr(self.f, k)
            def __enter__(self): return self
            def __exit__(self, *e): return self.f.__exit__(*e)
        os.fdopen = lambda fd, *a, **k: Dying(real(fd, *a, **k))
    index.save(path)
    print("saved without dying", flush=True)
    """
)


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_sigkill_during_index_save_leaves_the_old_file_loadable(tmp_path, where):
    old = HashIndex()
    old.add(_codes(64, 1))
    target = tmp_path / "bank.idx"
    old.save(target)
    done = subprocess.run([sys.executable, "-c", _KILL_DURING_SAVE, str(target), where], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    again = HashIndex.load(target)
    assert again.ids.tolist() == list(range(64))
    assert np.array_equal(again.range_search(_codes(64, 1), 0).ids, np.arange(64))
    # What a crash leaves behind: at most one private temp file, never the target half-written.
    leftovers = [p for p in tmp_path.iterdir() if p != target]
    assert len(leftovers) <= 1 and all(p.name.startswith(".bank.idx.") for p in leftovers)
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in leftovers)


def test_withdraw_removes_snapshot_temp_files_left_by_a_crash(tmp_path):
    path = tmp_path / "bank.db"
    bank = HashBank(path)
    code = _codes(1, 11)
    cid = bank.add_case(code)
    # What a SIGKILL between write and rename in HashIndex.save leaves next to the bank:
    stale = tmp_path / f".{path.name}.idx.1.abcd1234.tmp"
    bank._index.save(stale)
    bank.withdraw(cid)
    bank.close(save_snapshot=False)
    assert not any(code.tobytes() in p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
