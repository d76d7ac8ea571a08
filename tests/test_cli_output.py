"""The renderers of ncii-hash, on literal records: the exact lines users and scripts read."""

from __future__ import annotations

import io
import json

from ncii_hash.cli.output import match_summary, render_hash_rows, render_match_records, render_stats

H = "ab" * 32
IMAGE = {"file": "a.jpg", "kind": "image", "pdq": H, "quality": 7, "status": "low quality"}
VIDEO = {"file": "v.mp4", "kind": "video", "md5": "f" * 32, "frames": 5, "good_frames": 5, "status": "ok"}
BAD = {"file": "caf\udce9.jpg", "kind": "image", "status": "error", "reason": "cannot read image header"}


def _render(fn, *args, **kwargs) -> str:
    out = io.StringIO()
    fn(*args, out=out, **kwargs)
    return out.getvalue()


def test_hash_table_csv_json():
    rows = [IMAGE, VIDEO, BAD]
    assert _render(render_hash_rows, rows, "table") == (
        f"{H}    7  LOW QUALITY  a.jpg\n"
        f"{'video md5 ' + 'f' * 32 + ' 5 frames':<64}  ---  OK     v.mp4\n"
        f"{'-' * 64}  ---  ERROR  caf\\xe9.jpg: cannot read image header\n")  # odd bytes shown escaped
    assert _render(render_hash_rows, rows, "csv").splitlines() == [
        "file,kind,pdq,quality,md5,frames,status,reason",
        f"a.jpg,image,{H},7,,,low quality,",
        f"v.mp4,video,,,{'f' * 32},5,ok,",
        "caf\\xe9.jpg,image,,,,,error,cannot read image header",
    ]
    assert json.loads(_render(render_hash_rows, rows[:2], "json")) == rows[:2]


def test_match_text_lines_and_summary():
    pdq = {"case_id": "case-1", "hash_id": 3, "distance": 8, "variant": "flipy"}
    feat = {"case_id": "case-2", "feature_id": 4, "via": "local features", "inliers": 103, "spread": 0.5,
            "scale": 0.891, "rotation_degrees": 6.6}
    vid = {"case_id": "case-3", "item": 1, "query_pct": 99.6, "compared_pct": 100.0, "md5_equal": True}
    records = [
        {"path": "a.jpg", "kind": "image", "status": "match", "quality": 90, "matches": [pdq, dict(pdq, hash_id=5)]},
        {"path": "b.jpg", "kind": "image", "status": "match", "quality": 90, "matches": [feat]},
        {"path": "c.mp4", "kind": "video", "status": "match", "md5": "0" * 32, "matches": [vid]},
        {"path": "l.txt:2", "kind": "image", "status": "no match", "pdq": H, "matches": []},
        {"path": "d.jpg", "status": "error", "reason": "truncated", "matches": []},
    ]
    assert _render(render_match_records, records, as_json=False).splitlines() == [
        "MATCH     a.jpg: case case-1 at distance 8 (flipy) (+1 more)",
        "MATCH     b.jpg: case case-2 by local features (103 points agree, rotated +7 deg, scale 0.89)",
        "MATCH     c.mp4: case case-3 video 1, 100% of its frames found",
        "no match  l.txt:2",
        "ERROR     d.jpg: truncated",
    ]
    assert _render(render_match_records, records, as_json=True) == json.dumps(records, indent=2) + "\n"
    assert match_summary(records, radius=31, features_used=False) == (
        "ncii-hash: 3 of 5 inputs match the bank (PDQ distance <= 31)")
    assert match_summary(records, radius=20, features_used=True).endswith(
        "(PDQ distance <= 20, or local features verified)")


def test_stats():
    stats = {"cases": 2, "index_source": "snapshot"}
    assert _render(render_stats, stats, as_json=False) == "cases            2\nindex_source     snapshot\n"
    assert _render(render_stats, stats, as_json=True) == json.dumps(stats, indent=2) + "\n"
