"""The matching-quality benchmark's logic: edits, set distances, metrics, the manifest, and
the whole benchmark in quick mode on generated images. No timing is asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ncii_hash as nh  # noqa: E402
from benchmarks import bench_quality as bq  # noqa: E402
from benchmarks import datasets, edits, harness  # noqa: E402


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(datasets.synthetic_photos(1, seed=11)[0])


def test_identity_edit_gives_distance_zero(photo):
    out = edits.identity(photo, np.random.default_rng(0))
    assert nh.hamming(nh.pdq_hash(out).hash, nh.pdq_hash(photo).hash) == 0


@pytest.mark.parametrize("name", list(edits.EDITS))
def test_every_edit_returns_rgb_and_is_reproducible(photo, name):
    fn = edits.EDITS[name][1]
    a = fn(photo, np.random.default_rng([1, 2]))
    b = fn(photo, np.random.default_rng([1, 2]))
    assert a.mode == "RGB" and min(a.size) >= 32
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_edit_geometry(photo):
    w, h = photo.size
    rng = np.random.default_rng(0)
    assert edits.EDITS["crop_centre_10"][1](photo, rng).size == (w - round(0.1 * w), h - round(0.1 * h))
    lb = edits.EDITS["letterbox_black_20"][1](photo, rng)
    assert lb.size[0] == w and abs((lb.size[1] - h) / lb.size[1] - 0.2) < 0.01
    assert np.asarray(lb)[0].max() == 0
    off = np.asarray(edits.EDITS["crop_offcentre_20"][1](photo, rng))
    assert np.array_equal(off, np.asarray(photo)[: off.shape[0], : off.shape[1]])
    assert edits.EDITS["mirror"][1](photo, rng).transpose(Image.Transpose.FLIP_LEFT_RIGHT).tobytes() == photo.tobytes()
    grey = np.asarray(edits.EDITS["greyscale"][1](photo, rng))
    assert np.array_equal(grey[..., 0], grey[..., 2])


def test_rotations_match_with_dihedral_queries(photo):
    orig = nh.pdq_hash(photo).hash
    for name in ("rot90", "rot180", "rot270", "mirror"):
        q = nh.pdq_hash(edits.EDITS[name][1](photo, np.random.default_rng(0)), dihedral=True)
        # not 0: the 64x64 decimation of a non-square image is not exactly rotation-equivariant
        assert nh.hamming(q.dihedral, orig).min() <= nh.PDQ_MATCH_THRESHOLD


def test_set_distances_match_bruteforce_oracle():
    rng = np.random.default_rng(4)
    for width in (8, 32):
        q = rng.integers(0, 256, size=(7, 3, width), dtype=np.uint8)
        b = rng.integers(0, 256, size=(5, 2, width), dtype=np.uint8)
        d = bq.set_distances(q, b, chunk=3)
        bits = lambda x: np.unpackbits(x).sum()
        oracle = np.array([[min(bits(qi ^ bj) for qi in q[i] for bj in b[j]) for j in range(5)] for i in range(7)])
        assert np.array_equal(d, oracle) and d.dtype == np.int32


def test_stack_sets_pads_without_changing_minimum():
    a = np.zeros((1, 8), np.uint8)
    b = np.full((3, 8), 255, np.uint8)
    s = bq.stack_sets([a, b])
    assert s.shape == (2, 3, 8) and (s[0] == 0).all()


def test_metrics_on_a_toy_set():
    groups = ["a", "a", "b", "c"]
    distinct = bq.distinct_mask(groups)
    assert distinct.sum() == 10 and not distinct[0, 1]
    d_orig = np.array([[0, 5, 40, 90], [5, 0, 30, 80], [40, 30, 0, 100], [90, 80, 100, 0]])
    assert bq.pair_fpr(d_orig, distinct, 31) == pytest.approx(2 / 10)  # (1,2) and (2,1)
    assert bq.zero_fp_threshold(d_orig, distinct) == 29  # the same-group pair at 5 does not count
    d_true = np.array([0, 10, 20, 60])
    assert bq.recall_by_edit(d_true, ["x", "x", "y", "y"], 31) == {"x": 1.0, "y": 0.5}
    false_counts = np.zeros(257, np.int64)
    false_counts[25] = 1
    # t < 25: all 2-3 matches true; at 25..: one false among 3 true -> precision 0.75
    assert bq.precision_threshold(d_true, false_counts, 256, target=0.9999) == 24
    assert bq.precision_threshold(d_true, false_counts, 256, target=0.7) == 256
    lo, hi = bq.bootstrap_fpr(d_orig, distinct, 31, rounds=50, seed=1)
    assert 0.0 <= lo <= 0.2 <= hi <= 1.0


def test_manifest_schema(tmp_path):
    good = {"schema": datasets.MANIFEST_SCHEMA, "photos": [
        {k: "x" for k in datasets.MANIFEST_FIELDS} | {"id": "a", "domain": "photo"},
        {k: "x" for k in datasets.MANIFEST_FIELDS} | {"id": "b", "domain": "astro"}]}
    assert datasets.validate_manifest(good) == []
    bad = {"schema": "other", "photos": [good["photos"][0], good["photos"][0], {"id": "c"}]}
    problems = datasets.validate_manifest(bad)
    assert any("schema" in p for p in problems) and any("duplicate" in p for p in problems)
    assert any("missing fields" in p for p in problems)


def test_scene_stem_groups_series():
    assert datasets.scene_stem("left03.jpg") == datasets.scene_stem("right07.jpg") or datasets.scene_stem("left03.jpg") == "left"
    assert datasets.scene_stem("aloeL.jpg") == datasets.scene_stem("aloeR.jpg") == "aloe"
    assert datasets.scene_stem("Elephants_3840x2160.jpg") == datasets.scene_stem("Elephants.jpg")
    assert datasets.scene_stem("fish12.webp") == datasets.scene_stem("fish3.webp")


def test_rcc_reader_round_trip(tmp_path):
    # a minimal v2 Qt resource file: root dir -> one file "a.png" holding 5 bytes
    import struct
    name = "a.png".encode("utf-16-be")
    names = struct.pack(">HI", 5, 0) + name
    data = struct.pack(">I", 5) + b"hello"
    root = struct.pack(">IHII", 0, 2, 1, 1) + b"\0" * 8
    leaf = struct.pack(">IHHHI", 0, 0, 0, 0, 0) + b"\0" * 8
    tree = root + leaf
    header_len = 20
    blob = struct.pack(">4sIIII", b"qres", 2, header_len, header_len + len(tree), header_len + len(tree) + len(data))
    (tmp_path / "x.rcc").write_bytes(blob + tree + data + names)
    assert list(datasets.rcc_entries(tmp_path / "x.rcc")) == [("/a.png", 0, b"hello")]


def test_quick_run_writes_json_tables_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    ctx = harness.Context(name="quality", quick=True, out=tmp_path, cache=tmp_path / "cache", command="test")
    result = harness.execute(bq.run, ctx)
    assert result["status"] == "ok", result["error"]
    res = result["config"]["results"]["photo"]["hashers"]
    assert res["pdq"]["recall_nominal"]["jpeg_q90"] == 1.0
    assert res["pdq+dihedral"]["recall_nominal"]["rot90"] == 1.0
    assert res["pdq+dihedral+borders"]["recall_nominal"]["letterbox_black_20"] >= res["pdq+dihedral"]["recall_nominal"]["letterbox_black_20"]
    assert (tmp_path / "quality.md").read_text().count("| jpeg_q50 |") == 3
    assert json.loads((tmp_path / "quality.json").read_text())["benchmark"] == "quality"
    for png in ("quality_roc.png", "quality_distinct_hist.png", "quality_recall.png"):
        assert (tmp_path / png).is_file()
    feats = result["config"]["features"]
    if feats is None:  # OpenCV missing: the stage is skipped with a note
        assert any("local-feature stage skipped" in n for n in result["notes"])
        return
    fr = feats["domains"]["photo"]
    assert set(fr["per_edit"]) == set(qf.QUICK_EDITS)
    for e, x in fr["per_edit"].items():  # an OR of two matchers never recalls less than PDQ
        assert x["pdq"] <= x["two_stage"] and x["features"] <= x["two_stage"]
    assert fr["distinct_pairs"] == 30 and sum(fr["distinct"]["histogram"]) == 30
    assert fr["distinct"]["margin"] == feats["decision_rule"]["min_inliers"] - fr["distinct"]["max_inliers"]
    assert feats["bytes_per_image"]["max"] <= 14 + 38 * 256  # header + 256 records
    probe = fr["distinct"]["near_pair_probe"]
    assert probe and all(x["edited_copies"] == len(qf.QUICK_EDITS) for x in probe)
    assert "### Local features (issue 8): photo" in (tmp_path / "quality.md").read_text()
    assert (tmp_path / "quality_features_inliers.png").is_file()


# --------------------------------------------------------------------------------------------
# the local-feature stage (benchmarks/quality_features.py)

from benchmarks import quality_features as qf  # noqa: E402


def test_other_group_sample_never_draws_the_own_group():
    groups = ["a", "a", "b", "c", "c", "d"]
    qgroups = ["a", "c", "d", "b"]
    sample = qf.other_group_sample(groups, qgroups, 3, seed=5)
    for q, s in zip(qgroups, sample):
        assert len(s) == 3 and len(set(s.tolist())) == 3
        assert all(groups[j] != q for j in s)
    # fewer others than asked for: all of them, once each
    assert sorted(qf.other_group_sample(groups, ["c"], 10, seed=5)[0].tolist()) == [0, 1, 2, 5]
    assert [s.tolist() for s in qf.other_group_sample(groups, qgroups, 3, seed=5)] == [s.tolist() for s in sample]


def test_decide_is_verifys_rule():
    from ncii_hash.features import orb as features
    inl = np.array([features.MIN_INLIERS - 1, features.MIN_INLIERS, features.MIN_INLIERS, 200])
    spread = np.array([0.9, features.MIN_SPREAD, features.MIN_SPREAD - 1e-3, 0.5])
    assert qf.decide(inl, spread, features.MIN_INLIERS, features.MIN_SPREAD).tolist() == [False, True, False, True]


def test_target_status_needs_every_edit_and_no_false_match():
    recall = {e: 1.0 for es in qf.TARGETS.values() for e in es}
    rows = qf.target_status(recall, no_false_match=True, clear_margin=True)
    assert all(r["met"] for r in rows)
    recall["rotate_-5"] = 0.94  # one edit of a group below 95% misses the group
    rows = {r["target"]: r["met"] for r in qf.target_status(recall, no_false_match=True, clear_margin=True)}
    assert rows["±5° rotations"] is False and rows["10% crops"] is True
    assert not any(r["met"] for r in qf.target_status(recall, no_false_match=False, clear_margin=True))
    del recall["crop_centre_10"]  # not measured (quick mode) is neither met nor missed
    rows = {r["target"]: r["met"] for r in qf.target_status(recall, no_false_match=True, clear_margin=True)}
    assert rows["10% crops"] is None


def test_threshold_sweep_counts_on_a_toy_set():
    true_inl = np.array([50, 30, 10, 45])
    true_spread = np.array([0.5, 0.5, 0.5, 0.01])
    true_pdq = np.array([False, False, True, False])
    edit_of = ["rotate_+5", "rotate_+5", "rotate_-5", "rotate_-5"]
    rows = {(r["min_inliers"], r["min_spread"]): r for r in qf.threshold_sweep(
        true_inl, true_spread, true_pdq, edit_of, np.array([5, 20, 35]), np.array([0.2, 0.2, 0.01]),
        np.array([12]), np.array([0.5]))}
    r = rows[(40, 0.06)]
    assert r["distinct_false_matches"] == 0 and r["sample_false_matches"] == 0
    assert r["two_stage_min_target_recall"] == 0.5  # +5: 50 yes, 30 no; -5: PDQ yes, spread 0.01 no
    r = rows[(20, 0.0)]
    assert r["distinct_false_matches"] == 2 and r["two_stage_min_target_recall"] == 1.0
    assert rows[(12, 0.0)]["sample_false_matches"] == 1
