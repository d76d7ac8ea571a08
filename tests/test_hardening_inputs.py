"""Hardening (issue 9), bad inputs: regression tests for fuzzing findings (submissions, index
metadata, vPDQ text), the fuzz targets themselves, the bad-input corpus in one real batch, and the
bank's CSV import. See docs/hardening.md."""

from __future__ import annotations

import errno
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ncii_hash as nh
from ncii_hash import cli
from ncii_hash.cli import inputs as cli_inputs
from ncii_hash.bank import BankError, HashBank
from ncii_hash.submission import SubmissionError, make_submission, read_submission, write_submission
from ncii_hash.index import HashIndex
from index_helpers import write_index_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))
import mutate  # noqa: E402
import targets  # noqa: E402

from hardening_helpers import RNG_SEED, codes as _codes, photo as _photo, run_cli as _run_cli  # noqa: F401


# ============================================================ fuzzing findings (fixed)
def test_submission_nested_thousands_deep_is_a_submission_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SubmissionError, match="nested too deeply") as info:
        read_submission(path)
    assert str(path) in str(info.value)


def test_submission_with_a_huge_integer_is_a_submission_error(tmp_path):
    path = tmp_path / "bigint.json"
    path.write_text('{"format": "ncii-hash-submission", "version": ' + "9" * 5000 + "}")
    with pytest.raises(SubmissionError) as info:
        read_submission(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("version, count", [(True, 1), (1.0, 1), (1, True), (1, 1.0)])
def test_submission_version_and_count_must_be_integers_not_lookalikes(version, count):
    from ncii_hash.submission import parse_submission

    doc = {"format": "ncii-hash-submission", "version": version, "algorithm": "pdq",
           "items": [{"kind": "image", "pdq": "ab" * 32, "quality": 90}], "counts": {"items": count}}
    with pytest.raises(SubmissionError):
        parse_submission(doc)


def _index_file(path: Path, *, meta: bytes, next_id: int, n: int = 0) -> Path:
    write_index_file(path, _codes(n), np.arange(n, dtype="<i8"), next_id, meta)
    return path


_GOOD_META = b'{"backend": "flat", "compact_fraction": 0.25, "options": {}}'


def test_index_metadata_nested_thousands_deep_is_refused(tmp_path):
    # The checksum is a SHA-256 anyone can recompute: it detects damage, not an attacker.
    path = _index_file(tmp_path / "deep.idx", meta=b"[" * 500_000 + b"]" * 500_000, next_id=0)
    with pytest.raises(ValueError, match="metadata is not valid JSON"):
        HashIndex.load(path)


@pytest.mark.parametrize("meta", [
    b'{"backend": "flat", "compact_fraction": "x", "options": {}}',
    b'{"backend": "flat", "compact_fraction": 1e999, "options": {}}',
    b'{"backend": "flat", "compact_fraction": 0.5, "options": {"ivf_nprobe": -3}}',
    b'{"backend": "flat", "compact_fraction": 0.5, "options": [1, 2]}',
])
def test_index_metadata_with_bad_values_names_the_file(tmp_path, meta):
    path = _index_file(tmp_path / "bad.idx", meta=meta, next_id=0)
    with pytest.raises(ValueError, match="metadata is invalid") as info:
        HashIndex.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("next_id", [2**63 + 1, 2**64 - 1])
def test_index_next_id_beyond_int64_is_refused_at_load(tmp_path, next_id):
    path = _index_file(tmp_path / "big.idx", meta=_GOOD_META, next_id=next_id, n=2)
    with pytest.raises(ValueError, match="does not fit in int64"):
        HashIndex.load(path)


def test_largest_int64_id_round_trips_and_fresh_ids_run_out_cleanly(tmp_path):
    index = HashIndex()
    top = np.iinfo(np.int64).max
    index.add(_codes(1), [top])
    index.save(tmp_path / "top.idx")
    again = HashIndex.load(tmp_path / "top.idx")
    assert again.ids.tolist() == [top]
    with pytest.raises(ValueError, match="no fresh ids left"):
        again.add(_codes(1))  # formerly an OverflowError from numpy
    assert again.ids.tolist() == [top]


def test_submission_writer_closes_its_file_when_chmod_fails(tmp_path, monkeypatch):
    def open_fds() -> int:
        import gc

        gc.collect()  # files other tests left to the garbage collector must not count here
        return len(os.listdir("/proc/self/fd"))

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    sub = make_submission(_codes(2), [90, 90])

    def refuse(fd, mode):
        raise OSError(errno.EPERM, "fchmod refused")

    before = open_fds()
    monkeypatch.setattr(os, "fchmod", refuse)
    for _ in range(5):
        with pytest.raises(OSError):
            write_submission(tmp_path / "s.json", sub)
    monkeypatch.undo()
    assert open_fds() <= before  # a leak would add 5; unrelated objects may close meanwhile
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("line", [
    f"{10**30},50,{'ab' * 32},1.000",  # frame number beyond int64: was OverflowError
    f"1,50,{'ab' * 32},nan",
    f"1,50,{'ab' * 32},1e400",
    f"1,50,{'ab' * 32},-5",
    f"1,50,{'ab ' * 32},1.0",  # bytes.fromhex skips spaces; a PDQ hex has none
])
def test_vpdq_text_with_out_of_range_fields_is_a_video_error(line):
    from ncii_hash.video import VideoError, VideoHash

    with pytest.raises(VideoError, match="line 1"):
        VideoHash.from_vpdq_lines([line])


# ============================================================ the fuzz targets themselves
@pytest.mark.parametrize("name", ["hex", "submission", "bank_csv", "index_load", "vpdq_text", "image"])
def test_fuzz_smoke_seeded_mutations_find_nothing(tmp_path, name, monkeypatch):
    """A short deterministic run of every target (CI's fuzz smoke test; the long runs are
    ``python fuzz/run.py``). Any exception other than the documented one fails."""
    monkeypatch.setitem(targets._state, "scratch", tmp_path / "scratch")
    (tmp_path / "scratch").mkdir()
    monkeypatch.delitem(targets._state, "bank", raising=False)
    targets.write_seeds(name, tmp_path / "corpus")
    iterations = {"image": 150}.get(name, 600)
    stats = mutate.fuzz(targets.TARGETS[name], tmp_path / "corpus", iterations=iterations, seed=RNG_SEED,
                        crashes=tmp_path / "crashes", name=name)
    assert stats["findings"] == 0, sorted(os.listdir(tmp_path / "crashes"))
    bank = targets._state.pop("bank", None)
    if bank is not None:
        bank.close(save_snapshot=False)


def test_fuzz_runner_smoke_mode_reports_every_target(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "fuzz" / "run.py"), "--smoke", "--targets", "hex,vpdq_text",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["target"] for r in results] == ["hex", "vpdq_text"]
    assert all(r["executions"] and r["executions"] > 0 and not r["finding"] for r in results)


# ============================================================ bad-input corpus in one batch
def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + iend)


def _bad_corpus(folder: Path) -> dict:
    """Every kind of bad input the issue lists, next to two good photos. Returns
    {file name: expected reason fragment}."""
    folder.mkdir()
    _photo(folder / "good-1.png", 1)
    _photo(folder / "good-2.png", 2)
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(buf, "JPEG")
    jpeg = buf.getvalue()
    expect = {}

    def put(name: str, data: bytes, reason: str) -> None:
        (folder / name).write_bytes(data)
        expect[name] = reason

    put("zero.jpg", b"", "empty")
    put("truncated.jpg", jpeg[: len(jpeg) // 3], "runcated")
    put("pdf-named.png", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "PDF")
    put("vector.png", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG")
    put("random.webp", np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "not a supported")
    put("bomb.png", _png_header(100_000, 100_000), "above the limit")
    os.symlink("loop-b.jpg", folder / "loop-a.jpg")
    os.symlink("loop-a.jpg", folder / "loop-b.jpg")
    os.symlink(".", folder / "folder-loop")
    return expect


def test_bad_inputs_in_a_folder_each_get_a_named_error_and_the_batch_goes_on(tmp_path):
    folder = tmp_path / "photos"
    expect = _bad_corpus(folder)
    out = tmp_path / "submission.json"
    done = _run_cli("hash", folder, "-r", "--format", "json", "-o", out)
    assert done.returncode == 1, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    rows = json.loads(done.stdout)
    by_name = {Path(r["file"]).name: r for r in rows}
    for name, reason in expect.items():
        assert by_name[name]["status"] == "error", name
        assert reason in by_name[name]["reason"], (name, by_name[name]["reason"])
    for good in ("good-1.png", "good-2.png"):
        assert by_name[good]["status"] in ("ok", "low quality")
    assert len(read_submission(out)) == 2  # the good ones are submitted
    # The folder symlink loop is walked once: each real file appears once.
    assert sorted(by_name) == sorted(Path(r["file"]).name for r in rows)
    assert len(rows) == len(by_name)


def test_animated_gif_with_thousands_of_frames_hashes_only_the_first(tmp_path, monkeypatch):
    frames = [Image.fromarray(np.full((8, 8), i % 256, np.uint8)) for i in range(3000)]
    first = np.zeros((8, 8), np.uint8)
    first[:4] = 255
    frames[0] = Image.fromarray(first)
    path = tmp_path / "many.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=10, loop=0)
    seeks = []
    original = Image.Image.seek
    monkeypatch.setattr(Image.Image, "seek", lambda self, n: (seeks.append(n), original(self, n))[1])
    assert nh.pdq_hash(path).hash.tobytes() == nh.pdq_hash(first).hash.tobytes()
    assert max(seeks, default=0) == 0  # never walked past frame 0


def test_unreadable_file_and_folder_in_a_walk_are_reported_and_the_batch_goes_on(tmp_path, monkeypatch, capsys):
    # chmod 000 does not stop root, so the refusals are injected at the system-call layer.
    folder = tmp_path / "photos"
    (folder / "locked-folder").mkdir(parents=True)
    _photo(folder / "good.png")
    _photo(folder / "locked.png", 2)
    _photo(folder / "locked-folder" / "hidden.png", 3)
    real_open, real_scandir = os.open, os.scandir

    def guarded_open(path, *args, **kwargs):
        if os.fspath(path).endswith("locked.png"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    def guarded_scandir(path="."):
        if os.fspath(path).endswith("locked-folder"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "scandir", guarded_scandir)
    rc = cli.main(["hash", str(folder), "-r", "--format", "json", "--threads", "1", "-q"])
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert rc == 1
    assert {Path(r["file"]).name: r["status"] for r in rows} == {"good.png": "ok", "locked.png": "error"}
    assert "permission denied" in next(r["reason"] for r in rows if r["status"] == "error")
    assert "locked-folder" in captured.err and "cannot list folder" in captured.err


def _non_utf8_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "plain.png")
    raw = os.fsencode(folder) + b"/caf\xe9-\xff.png"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (folder / "plain.png").read_bytes())
    os.close(fd)
    return folder


def test_non_utf8_file_names_in_json_output(tmp_path):
    folder = _non_utf8_folder(tmp_path)
    env = dict(os.environ, PYTHONIOENCODING="utf-8")  # strict, as under a en_US.UTF-8 locale
    done = _run_cli("hash", folder, "--format", "json", "-o", tmp_path / "s.json", env=env)
    assert done.returncode == 0, done.stderr.decode()
    rows = json.loads(done.stdout)
    assert len(rows) == 2 and len({r["pdq"] for r in rows}) == 1
    assert len(read_submission(tmp_path / "s.json")) == 2


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_non_utf8_file_names_in_table_and_csv_output(tmp_path, fmt):
    folder = _non_utf8_folder(tmp_path)
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    done = _run_cli("hash", folder, "--format", fmt, "-o", tmp_path / "s.json", env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert b"\\xff" in done.stdout  # the name, escaped the way error messages escape it
    assert len(read_submission(tmp_path / "s.json")) == 2


def test_submission_into_a_missing_folder_is_a_clear_error(tmp_path):
    _photo(tmp_path / "a.png")
    done = _run_cli("hash", tmp_path / "a.png", "-o", tmp_path / "no-such-folder" / "s.json")
    assert b"Traceback" not in done.stderr
    assert done.returncode == 2 and b"no-such-folder" in done.stderr


def test_broken_symlinks_in_a_folder_are_named(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "good.png")
    os.symlink("nowhere.jpg", folder / "dangling.jpg")
    os.symlink("self.jpg", folder / "self.jpg")
    names = sorted(p.name for p in cli_inputs.iter_inputs([str(folder)], True))
    assert names == ["dangling.jpg", "good.png", "self.jpg"]


# ============================================================ bank CSV import (open findings)
def test_csv_field_over_the_csv_module_limit_is_a_bank_error(tmp_path):
    bank = HashBank(tmp_path / "b.db", snapshot=False)
    path = tmp_path / "big.csv"
    path.write_text("a" * 64 + ',100,"' + "x" * 200_000 + '"\n')
    try:
        with pytest.raises(BankError, match="line 1"):
            bank.import_(path)
        assert len(bank) == 0
    finally:
        bank.close()


@pytest.mark.parametrize("row", ["a" * 64 + ',"', "a" * 64 + ",\u0665\u0660"])
def test_csv_quality_must_be_plain_ascii_digits(tmp_path, row):
    bank = HashBank(tmp_path / "b.db", snapshot=False)
    (tmp_path / "odd.csv").write_text(row + "\n")
    try:
        with pytest.raises(BankError):
            bank.import_(tmp_path / "odd.csv")
    finally:
        bank.close()
