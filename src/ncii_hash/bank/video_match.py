"""Matching a video against the bank's videos under the vPDQ rule.

The query's unique good frames are searched exactly in the hash index; every banked video
with at least one frame hit is then read from the table and compared in full with
:func:`ncii_hash.video.match_video`. Only the first step needs the bank (and its lock);
the comparisons run on what it returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..video import match_video
from .db import Database
from .index_sync import IndexSync
from .records import VideoBankMatch, codes_from_blobs, video_parts


@dataclass(frozen=True)
class VideoQuery:
    """A query video's unique frames of quality >= ``quality``, and its MD5."""

    frames: np.ndarray
    md5: str

    @classmethod
    def of(cls, video: Any, quality: int) -> "VideoQuery":
        frames, fq, md5 = video_parts(video)
        good = frames[fq >= quality]
        return cls(np.unique(good, axis=0) if good.shape[0] else good, md5)


def banked_candidates(db: Database, hashes: IndexSync, query: VideoQuery, distance: int,
                      threads: int = 0) -> dict[tuple[str, int], tuple[list, str]]:
    """{(case id, item): (its (hash, quality) rows, its md5)} of every banked video with a
    frame within ``distance`` of a query frame. Call under the bank's lock."""
    res = hashes.range_search(query.frames, distance, threads=threads)
    candidates = set(db.rows_for_ids(
        "SELECT DISTINCT case_id, item FROM hashes WHERE kind='video_frame' AND hash_id IN ({})", res.ids))
    banked = {}
    with db.read():
        for cid, item in candidates:
            rows = db.execute("SELECT hash, quality FROM hashes WHERE case_id=? AND item=? ORDER BY hash_id",
                              (cid, item)).fetchall()
            md5_row = db.execute("SELECT md5 FROM videos WHERE case_id=? AND item=?", (cid, item)).fetchone()
            banked[(cid, item)] = (rows, md5_row[0] if md5_row else "")
    return banked


def compare(query: VideoQuery, banked: dict, *, distance: int, quality: int, query_pct: float,
            compared_pct: float) -> list[VideoBankMatch]:
    """The candidates that match under the vPDQ rule, best first."""
    out = []
    for (cid, item), (rows, bmd5) in banked.items():
        if not rows:
            continue
        cf = codes_from_blobs(r[0] for r in rows)
        cq = np.asarray([r[1] for r in rows], np.int32)
        m = match_video(query.frames, cf[cq >= quality], distance=distance, quality=0,
                        query_pct=query_pct, compared_pct=compared_pct)
        if m.is_match:
            out.append(VideoBankMatch(case_id=cid, item=int(item), query_pct=m.query_pct,
                                      compared_pct=m.compared_pct, md5_equal=bool(query.md5 and query.md5 == bmd5)))
    out.sort(key=lambda v: (-v.query_pct, -v.compared_pct, v.case_id, v.item))
    return out
