"""The benchmark harness logic: statistics, ratios, interleaving, the JSON schema, skipped
peers, crash reporting and the README splice. Nothing here asserts a timing: the timed
callables are instant and only the bookkeeping around them is checked."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level package of the checkout, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402

TOP_KEYS = {"schema", "benchmark", "mode", "command", "started", "duration_s", "status", "error",
            "machine", "config", "measurements", "ratios", "checks", "skipped", "notes", "plots"}
RATIO_KEYS = {"name", "measurement", "subject", "baseline", "speedup", "spread", "target", "met",
              "status", "reason"}
STATS_KEYS = {"median", "q1", "q3", "iqr", "min", "max", "mean", "n"}


def test_quantiles_match_numpy_linear_method():
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 7, 10):
        values = sorted(rng.random(n).tolist())
        for q in (0.0, 0.25, 0.5, 0.75, 1.0):
            assert harness.quantile(values, q) == pytest.approx(float(np.quantile(values, q)))


def test_summarize_known_values():
    st = harness.summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (st.median, st.min, st.max, st.n) == (3.0, 1.0, 5.0, 5)
    assert (st.q1, st.q3, st.iqr) == (2.0, 4.0, 2.0)
    assert st.mean == 3.0
    assert set(st.as_dict()) == STATS_KEYS


def test_speedup_is_baseline_over_subject_with_paired_spread():
    value, spread = harness.speedup(baseline=[10.0, 20.0, 30.0], subject=[1.0, 2.0, 2.0])
    assert value == pytest.approx(20.0 / 2.0)
    # per-round ratios 10, 10, 15 -> quartiles 10 and 12.5
    assert spread == pytest.approx([10.0, 12.5])
    with pytest.raises(ValueError):
        harness.speedup([], [1.0])


def test_interleaved_rotates_the_order_and_warms_up():
    calls = []
    cases = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    samples = harness.interleaved(cases, repeats=3, warmup=1)
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")
    assert {k: len(v) for k, v in samples.items()} == {"a": 3, "b": 3, "c": 3}
    with pytest.raises(ValueError):
        harness.interleaved(cases, repeats=0)


def _fake_run(ctx: harness.Context) -> None:
    ours = lambda: None  # noqa: E731
    peer = ctx.peer("ncii_hash_no_such_peer_module", dist="no-such-peer")
    stats = ctx.compare("noop", {"ours": ours, "peer": peer, "other": lambda: None}, items=4, repeats=3)
    assert set(stats) == {"ours", "other"}
    ctx.ratio("noop", "ours", "peer", target=10)
    ctx.ratio("noop", "ours", "other", target=1e-9, label="ours vs other")
    ctx.check("same answer", True, differing=0)
    ctx.config["sizes"] = [1, 2]


def test_execute_writes_one_schema_and_skips_a_missing_peer(tmp_path):
    ctx = harness.Context(name="fake", quick=True, out=tmp_path, command="pytest")
    result = harness.execute(_fake_run, ctx)
    on_disk = json.loads((tmp_path / "fake.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert set(on_disk) == TOP_KEYS
    assert on_disk["schema"] == harness.SCHEMA and on_disk["status"] == "ok" and on_disk["error"] is None
    assert on_disk["mode"] == "quick" and on_disk["config"] == {"sizes": [1, 2]}
    for key in ("cpu", "cores_usable", "ram_gb", "python", "versions", "simd"):
        assert key in on_disk["machine"]
    assert "numpy" in on_disk["machine"]["versions"]

    assert [m["subject"] for m in on_disk["measurements"]] == ["ours", "other"]
    m = on_disk["measurements"][0]
    assert set(m["stats"]) == STATS_KEYS and m["stats"]["n"] == 3 and len(m["samples"]) == 3
    assert m["items"] == 4 and m["per_item_s"] == pytest.approx(m["stats"]["median"] / 4)

    skipped, ok = on_disk["ratios"]
    assert set(skipped) == RATIO_KEYS and set(ok) == RATIO_KEYS
    assert skipped["status"] == "skipped" and skipped["speedup"] is None and skipped["met"] is None
    assert "not installed" in skipped["reason"] and "no-such-peer" in skipped["reason"]
    assert ok["status"] == "ok" and ok["name"] == "ours vs other" and ok["met"] is True
    assert ok["spread"][0] <= ok["spread"][1]
    assert [s["peer"] for s in on_disk["skipped"]] == ["ncii_hash_no_such_peer_module"]
    assert on_disk["skipped"][0]["reason"] in skipped["reason"]
    assert on_disk["checks"] == [{"name": "same answer", "ok": True, "detail": {"differing": 0}}]

    rows = harness.ratio_rows(on_disk)
    assert rows[0][5] == "skipped" and rows[1][5].endswith("]")
    assert "met" in rows[1][6]


def test_execute_records_a_crash(tmp_path):
    def crashing(ctx):
        raise RuntimeError("boom in the kernel")

    result = harness.execute(crashing, harness.Context(name="bad", out=tmp_path))
    assert result["status"] == "error"
    assert result["error"]["type"] == "RuntimeError" and "boom" in result["error"]["message"]
    assert "Traceback" in result["error"]["traceback"]
    assert json.loads((tmp_path / "bad.json").read_text())["status"] == "error"


@pytest.fixture
def fake_benchmarks(monkeypatch):
    """Two bench modules visible to the runner: one fine, one that crashes."""
    from benchmarks import __main__ as runner

    ok = types.ModuleType("benchmarks.bench_zzfakeok")
    ok.run = _fake_run
    bad = types.ModuleType("benchmarks.bench_zzfakebad")

    def run_bad(ctx):
        raise ZeroDivisionError("a bug")

    bad.run = run_bad
    monkeypatch.setitem(sys.modules, ok.__name__, ok)
    monkeypatch.setitem(sys.modules, bad.__name__, bad)
    monkeypatch.setattr(runner, "discover", lambda: ["zzfakebad", "zzfakeok"])
    return runner


def test_runner_only_selects_and_writes_summary(fake_benchmarks, tmp_path, capsys):
    assert fake_benchmarks.main(["--quick", "--only", "zzfakeok", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "ours vs other" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["schema"] == harness.SCHEMA and summary["mode"] == "quick"
    assert summary["benchmarks"] == [{"name": "zzfakeok", "file": "zzfakeok.json", "status": "ok",
                                      "duration_s": summary["benchmarks"][0]["duration_s"]}]
    assert not (tmp_path / "zzfakebad.json").exists()


def test_runner_exits_nonzero_on_a_crash_and_runs_the_rest(fake_benchmarks, tmp_path, capsys):
    assert fake_benchmarks.main(["--quick", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "CRASHED" in out and "ZeroDivisionError" in out
    assert json.loads((tmp_path / "zzfakeok.json").read_text())["status"] == "ok"
    assert json.loads((tmp_path / "zzfakebad.json").read_text())["status"] == "error"


def test_runner_rejects_an_unknown_name(fake_benchmarks, tmp_path):
    with pytest.raises(SystemExit) as exc:
        fake_benchmarks.main(["--only", "nope", "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_bench_hash_inputs_are_cached_4_3_jpegs_and_pdqhash_bits_pack_msb_first(tmp_path):
    pytest.importorskip("skimage", reason="bench_hash makes its inputs from scikit-image photos")
    np = pytest.importorskip("numpy")
    from PIL import Image

    from benchmarks import bench_hash

    path = bench_hash.make_jpeg(tmp_path, "coffee", (64, 48), seed=1)
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.size == (64, 48)
    mtime = path.stat().st_mtime_ns
    assert bench_hash.make_jpeg(tmp_path, "coffee", (64, 48), seed=1) == path
    assert path.stat().st_mtime_ns == mtime  # reused, not regenerated

    bits = np.zeros(256, dtype=np.int64)
    bits[0] = bits[15] = 1
    assert bench_hash.pdqhash_bytes(bits)[:2].tolist() == [0x80, 0x01]


def test_splice_replaces_only_between_the_markers():
    from benchmarks.render_readme import END, START, splice

    text = f"intro\n{START}\nold table\n{END}\noutro\n"
    assert splice(text, "new table\n") == f"intro\n{START}\nnew table\n{END}\noutro\n"
    assert splice("no markers here\n", "x") is None
    assert splice(f"{END}\n{START}\n", "x") is None  # out of order


def test_render_and_write_readme_from_a_run(fake_benchmarks, tmp_path, capsys):
    from benchmarks import render_readme
    from benchmarks.render_readme import END, START

    out = tmp_path / "run"
    assert fake_benchmarks.main(["--only", "zzfakeok", "--out", str(out)]) == 0
    section = render_readme.render(*render_readme.load_run(out))
    assert "#### `zzfakeok`" in section and "| ours vs other | ours | other |" in section
    assert "skipped" in section and "ok: same answer" in section and "Quick run" not in section

    readme = tmp_path / "README.md"
    readme.write_text("# Title\nno markers\n")
    assert render_readme.main([str(out), "--write-readme", str(readme)]) == 1
    assert readme.read_text() == "# Title\nno markers\n"
    readme.write_text(f"# Title\n{START}\nstale\n{END}\nafter\n")
    assert render_readme.main([str(out), "--write-readme", str(readme)]) == 0
    text = readme.read_text()
    assert "stale" not in text and "#### `zzfakeok`" in text and text.endswith(f"{END}\nafter\n")


def test_bench_windows_uploads_name_their_picture_and_split_window_rows(tmp_path):
    np = pytest.importorskip("numpy")
    from ncii_hash import hamming
    from ncii_hash.image import pdq_hash

    from benchmarks import bench_windows

    ctx = harness.Context(name="windows", quick=True, out=tmp_path, cache=tmp_path / "no-cache")
    banked, copies, source = bench_windows.pictures(ctx)
    assert source == "examples/" and len(banked) == 3 and len(copies) == 3
    for path, picture in copies:  # each example upload is a copy of the picture it names
        d = hamming(pdq_hash(path, dihedral=True).dihedral, pdq_hash(banked[picture]).hash)
        assert int(np.min(d)) <= 31
    uploads = bench_windows.make_uploads(ctx, banked[:1], [], tmp_path)
    assert [u.edit for u in uploads] == list(bench_windows.EDIT_NAMES) and all(u.path.is_file() for u in uploads)
    q = bench_windows.upload_queries(uploads[0].path)
    assert q.dihedral.shape == (1, 8, 32) and q.whole.shape[1:] == (32,)
    assert len(q.windows) >= 5  # centre70 of the whole upload and of the 4 counter-rotations
