"""The ncii-hash entry point: exit codes returned (never SystemExit), repeated runs in one
process independent of each other, progress on a terminal only, and a closed pipe that ends
quietly (real pipes, subprocesses, bounded by timeouts)."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ncii_hash.cli import main
from ncii_hash.cli.inputs import InputWalk

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / "tests" / "data" / "vpdq" / "test-padded-dimensions.mp4"
TIMEOUT = 120


def _photos(folder: Path, n: int, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((64, 64), Image.BILINEAR).save(folder / f"{i:02d}.png")
    return folder


def _refusing_scandir(suffix: str):
    """os.scandir that refuses folders ending in ``suffix`` (chmod 000 does not stop root)."""
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith(suffix):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    return scandir


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# ------------------------------------------------------------------ exit codes
def test_main_returns_exit_codes_instead_of_raising(tmp_path, capsys):
    assert main(["--version"]) == 0
    assert "ncii-hash" in capsys.readouterr().out
    assert main(["hash", "--help"]) == 0
    assert main(["nonsense"]) == 2  # argparse's usage error
    assert "invalid choice" in capsys.readouterr().err
    assert main(["hash", str(tmp_path)]) == 2  # no images
    assert "no image or video files found" in capsys.readouterr().err
    assert main(["show", str(tmp_path / "missing.json")]) == 2
    assert main(["match", str(tmp_path / "no.db"), str(tmp_path)]) == 2
    assert "no such bank (create one with 'ncii-hash bank init" in capsys.readouterr().err


# ------------------------------------------------------------------ no state between runs
def test_an_unreadable_folder_does_not_leak_into_the_next_run(tmp_path, monkeypatch, capsys):
    folder = _photos(tmp_path / "photos", 2)
    _photos(folder / "locked", 1, seed=8)
    refusing_scandir = _refusing_scandir("locked")
    args = ["hash", str(folder), "-r", "--format", "json", "-q", "--threads", "1"]
    with monkeypatch.context() as m:
        m.setattr(os, "scandir", refusing_scandir)
        assert main(args) == 1
    first = capsys.readouterr()
    assert "locked: cannot list folder (Permission denied)" in first.err
    assert "1 of 2 files could not be hashed" in first.err
    assert main(args) == 0  # the same folder, now readable: a clean run
    second = capsys.readouterr()
    assert second.err == ""
    assert len(json.loads(second.out)) == 3
    assert main(["hash", str(folder), "--format", "json", "-q"]) == 0  # and again, without -r
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_input_walk_collects_its_own_unlisted_folders(tmp_path, monkeypatch, capsys):
    folder = _photos(tmp_path / "photos", 1)
    (folder / "locked").mkdir()
    monkeypatch.setattr(os, "scandir", _refusing_scandir("locked"))
    one, two = InputWalk(recursive=True), InputWalk(recursive=False)
    assert [p.name for p in one.files([str(folder)])] == ["00.png"]
    assert [p.name for p in two.files([str(folder)])] == ["00.png"]
    assert one.unlisted == [str(folder / "locked")] and two.unlisted == []
    assert "cannot list folder" in capsys.readouterr().err


# ------------------------------------------------------------------ progress
def test_progress_bar_on_a_terminal_shows_count_rate_and_eta(tmp_path, monkeypatch, capsys):
    folder = _photos(tmp_path / "photos", 3)
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["hash", str(folder), "--threads", "1"]) == 0
    bar = term.getvalue()
    assert re.search(r"3/3 \[\d\d:\d\d<\d\d:\d\d, *[\d.?]+(image/s|s/image)\]", bar), bar
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 3 and "3/3" not in out  # results only on stdout


@pytest.mark.parametrize("args, n", [(["-q"], 3), ([], 1)])
def test_no_progress_when_quiet_or_a_single_item(tmp_path, monkeypatch, args, n):
    folder = _photos(tmp_path / "photos", n)
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["hash", str(folder), "--threads", "1", *args]) == 0
    assert term.getvalue() == ""


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path, capsys):
    folder = _photos(tmp_path / "photos", 3)
    assert main(["hash", str(folder), "--threads", "1"]) == 0
    assert capsys.readouterr().err == ""


def test_video_progress_on_a_terminal(tmp_path, monkeypatch, capsys):
    pytest.importorskip("cv2", reason="video hashing needs the 'video' extra")
    d = tmp_path / "clips"
    d.mkdir()
    shutil.copy(VIDEO, d / "a.mp4")
    shutil.copy(VIDEO, d / "b.mp4")
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["hash", str(d), "--format", "json"]) == 0
    assert re.search(r"videos: .*2/2 \[\d\d:\d\d<\d\d:\d\d", term.getvalue()), term.getvalue()
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["ok", "ok"]


# ------------------------------------------------------------------ closed pipes
def _run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    """Run with stdout a pipe whose reader has already gone: every write fails with EPIPE."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([sys.executable, "-m", "ncii_hash", *args], stdout=w, stderr=subprocess.PIPE,
                              text=True, timeout=TIMEOUT)
    finally:
        os.close(w)


def _assert_quiet_end(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    for noise in ("Broken pipe", "BrokenPipeError", "Traceback", "Exception ignored"):
        assert noise not in done.stderr, done.stderr


def test_hash_into_a_closed_pipe_ends_quietly(tmp_path):
    folder = _photos(tmp_path / "photos", 3)
    _assert_quiet_end(_run_into_closed_pipe("hash", str(folder), "-q"))
    _assert_quiet_end(_run_into_closed_pipe("hash", str(folder), "-q", "--format", "csv"))


def test_match_json_piped_to_head_ends_quietly(tmp_path):
    bank = tmp_path / "bank.db"
    assert main(["bank", "init", str(bank)]) == 0
    hashes = np.random.default_rng(3).integers(0, 256, (5000, 32), dtype=np.uint8)
    hash_list = tmp_path / "many.txt"
    hash_list.write_text("".join(h.tobytes().hex() + "\n" for h in hashes))  # ~1 MB of JSON out
    # `| head -1`: read one line, then close while the command is still writing.
    proc = subprocess.Popen([sys.executable, "-m", "ncii_hash", "match", str(bank), str(hash_list), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "[\n"
        proc.stdout.close()
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    _assert_quiet_end(subprocess.CompletedProcess(proc.args, proc.returncode, None, err))
    _assert_quiet_end(_run_into_closed_pipe("match", str(bank), str(hash_list)))
    _assert_quiet_end(_run_into_closed_pipe("bank", "stats", str(bank)))
