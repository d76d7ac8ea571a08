"""Renderers: the commands build records (plain dicts, in the key order the JSON output has
always had), and these functions print them. Nothing here hashes, reads a bank or decides an
exit status.

``hash`` rows: file, kind ("image" | "video"), status ("ok" | "low quality" | "error"), and
pdq + quality (+ dihedral), or md5 + frames + good_frames, or reason.
``match`` records: path, kind, status ("match" | "no match" | "error"), then quality, pdq or
md5 where known, reason for errors, and matches (PDQ, local-feature or video matches).
"""

from __future__ import annotations

import csv
import json
from typing import Any, Mapping, Sequence, TextIO

from ..hashes import PDQ_MIN_QUALITY
from .usage import shown

HASH_FORMATS = ("table", "json", "csv")
HASH_CSV_COLUMNS = ["file", "kind", "pdq", "quality", "md5", "frames", "status", "reason"]


def write_json(obj: Any, out: TextIO) -> None:
    json.dump(obj, out, indent=2)
    out.write("\n")


def render_hash_rows(rows: Sequence[Mapping[str, Any]], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        write_json(list(rows), out)
    elif fmt == "csv":
        w = csv.writer(out)
        w.writerow(HASH_CSV_COLUMNS)
        for r in rows:
            w.writerow([shown(r["file"]), r["kind"], r.get("pdq", ""), r.get("quality", ""), r.get("md5", ""),
                        r.get("frames", ""), r["status"], r.get("reason", "")])
    else:
        for r in rows:
            out.write(_hash_table_line(r))


def _hash_table_line(r: Mapping[str, Any]) -> str:
    if r["status"] == "error":
        return f"{'-' * 64}  ---  ERROR  {shown(r['file'])}: {shown(r['reason'])}\n"
    flag = "OK" if r["status"] == "ok" else "LOW QUALITY"
    if r["kind"] == "video":
        label = f"video md5 {r['md5']} {r['frames']} frames"
        return f"{label:<64}  ---  {flag:<5}  {shown(r['file'])}\n"
    return f"{r['pdq']}  {r['quality']:3d}  {flag:<5}  {shown(r['file'])}\n"


def render_match_records(records: Sequence[Mapping[str, Any]], *, as_json: bool, out: TextIO) -> None:
    if as_json:
        write_json(list(records), out)
        return
    for r in records:
        out.write(_match_text_line(r))


def _match_text_line(r: Mapping[str, Any]) -> str:
    path = shown(r["path"])
    matches = r["matches"]
    if r["status"] == "error":
        return f"ERROR     {path}: {shown(r['reason'])}\n"
    if not matches:
        return f"no match  {path}\n"
    best = matches[0]
    more = f" (+{len(matches) - 1} more)" if len(matches) > 1 else ""
    if r.get("kind") == "video":
        return (f"MATCH     {path}: case {best['case_id']} video {best['item']},"
                f" {best['query_pct']:.0f}% of its frames found\n")
    if best.get("via") == "local features":
        return (f"MATCH     {path}: case {best['case_id']} by local features"
                f" ({best['inliers']} points agree, rotated {best['rotation_degrees']:+.0f} deg,"
                f" scale {best['scale']:.2f}){more}\n")
    return f"MATCH     {path}: case {best['case_id']} at distance {best['distance']} ({best['variant']}){more}\n"


def match_summary(records: Sequence[Mapping[str, Any]], *, radius: int, features_used: bool) -> str:
    n_match = sum(1 for r in records if r["status"] == "match")
    rule = f"PDQ distance <= {radius}"
    if features_used:
        rule += ", or local features verified"
    return f"ncii-hash: {n_match} of {len(records)} inputs match the bank ({rule})"


def render_stats(stats: Mapping[str, Any], *, as_json: bool, out: TextIO) -> None:
    if as_json:
        write_json(dict(stats), out)
        return
    for k, v in stats.items():
        out.write(f"{k:16} {v}\n")


def render_submission(name: str, sub: Any, out: TextIO) -> None:
    """``show``: what a submission file holds and, as plainly, what it does not."""
    n = int(sub.hashes.shape[0])
    nv = len(sub.videos)
    low = int((sub.qualities < PDQ_MIN_QUALITY).sum())
    lines = [
        f"{name} is an ncii-hash submission with {n} PDQ hash{'es' if n != 1 else ''} of images"
        f" and {nv} video{'s' if nv != 1 else ''}.",
        "It contains, for each image: the 256-bit PDQ hash and its quality (0-100);",
        "for each video: the MD5 of the file and the PDQ hashes of sampled frames (duplicates removed,",
        "shuffled: no frame numbers, times or duration).",
    ]
    if sub.features:
        lines += [
            f"It ALSO contains local features of {len(sub.features)} image(s): corner positions and patch",
            "descriptors. Unlike hashes, these can be turned back into a recognisable approximation of",
            "each picture; they are there because the person who made this file chose to include them.",
        ]
    if sub.windows:
        lines += [
            f"It also contains {len(sub.windows)} centre hash(es): for those images, one more PDQ hash of the",
            "centre of the picture (70% of each side), so that slightly rotated copies and copies with a",
            "caption banner are caught. A centre hash is a hash like the others, no more revealing.",
        ]
    lines.append("It does NOT contain: images, video frames, thumbnails, file names, folder paths, file sizes,")
    lines.append("dates, camera or GPS (EXIF) data, or the order the files were in (items are shuffled).")
    if low:
        lines.append(f"{low} hash{'es are' if low != 1 else ' is'} low quality (< {PDQ_MIN_QUALITY}):"
                     " flat or featureless images match less reliably.")
    lines.append("")
    windows = {w.image: w for w in sub.windows}
    for i, (kind, h, q) in enumerate(zip(sub.kinds, sub.hashes, sub.qualities)):
        lines.append(f"  {kind:<6} {h.tobytes().hex()}  quality {int(q)}")
        if i in windows:
            lines.append(f"  centre {windows[i].pdq.hex()}  quality {windows[i].quality}")
    for v in sub.videos:
        lines.append(f"  video  md5 {v.md5 or '(none)'}  {v.frames.shape[0]} frame hashes")
    out.write("".join(line + "\n" for line in lines))
