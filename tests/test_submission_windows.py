"""Submission version 3: a survivor's opt-in window hashes (issue 20), written only when she
chose them, read next to versions 1 and 2, and every malformed window refused by name."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ncii_hash import pdq_hash
from ncii_hash.hashes import hamming
from ncii_hash.errors import SubmissionError
from ncii_hash.image import load_pixels, pdq_window_hash
from ncii_hash.image.variants import window_box
from ncii_hash.submission import (SHARED_WINDOWS, ImageWindow, image_windows, make_submission, parse_submission,
                                  read_submission)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "survivor"


def _rng_hashes(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


def _sub_with_windows(n: int = 3) -> dict:
    h = _rng_hashes(n)
    w = _rng_hashes(n, seed=2)
    windows = image_windows("centre70", w, [90] * n)
    return make_submission(h, [95] * n, windows=windows).to_dict()


def test_without_windows_the_version_stays_1():
    d = make_submission(_rng_hashes(2), [90, 90]).to_dict()
    assert d["version"] == 1 and "window_hashes" not in d["counts"]
    assert all("windows" not in item for item in d["items"])


def test_round_trip_keeps_each_window_with_its_image_through_the_shuffle():
    h, w = _rng_hashes(6), _rng_hashes(6, seed=7)
    sub = make_submission(h, [90] * 6, windows=image_windows("centre70", w, [80, 40, 80, 80, 80, 80]))
    assert len(sub.windows) == 5  # quality 40: left out
    d = sub.to_dict()
    assert d["version"] == 3 and d["counts"]["window_hashes"] == 5
    back = parse_submission(json.loads(json.dumps(d)))
    pairs = {back.hashes[w.image].tobytes(): w.pdq for w in back.windows}
    expected = {h[i].tobytes(): w[i].tobytes() for i in range(6) if i != 1}
    assert pairs == expected


def test_windows_and_local_features_together_are_version_3():
    d = _sub_with_windows()
    d["local_features"] = {"notice": "x", "sets": []}
    d["counts"]["feature_sets"] = 0
    assert len(parse_submission(d).windows) == 3


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.__setitem__("version", 1), "unexpected fields ['windows']"),
    (lambda d: d.__setitem__("version", 2), "unexpected fields ['windows']"),
    (lambda d: d["items"][0].__setitem__("windows", {}), "non-empty object"),
    (lambda d: d["items"][0].__setitem__("windows", ["centre70"]), "non-empty object"),
    (lambda d: d["items"][0]["windows"].__setitem__("centre50", d["items"][0]["windows"]["centre70"]),
     "unknown window 'centre50'"),
    (lambda d: d["items"][0]["windows"]["centre70"].__setitem__("pdq", "ab"), "bad hash"),
    (lambda d: d["items"][0]["windows"]["centre70"].__setitem__("pdq", 5), "64-character hex"),
    (lambda d: d["items"][0]["windows"]["centre70"].__setitem__("quality", 20), "quality must be an integer 50..100"),
    (lambda d: d["items"][0]["windows"]["centre70"].__setitem__("quality", True), "quality must be an integer"),
    (lambda d: d["items"][0]["windows"]["centre70"].__setitem__("file", "IMG_1.jpg"), "'pdq' and 'quality'"),
    (lambda d: d["counts"].__setitem__("window_hashes", 2), "counts.window_hashes"),
    (lambda d: d["counts"].pop("window_hashes"), "counts.window_hashes"),
])
def test_bad_windows_are_refused_by_name(mutate, message):
    d = _sub_with_windows()
    mutate(d)
    with pytest.raises(SubmissionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_submission(d)


def test_version_4_is_refused_and_the_message_names_the_known_ones():
    d = _sub_with_windows()
    d["version"] = 4
    with pytest.raises(SubmissionError, match="knows 1, 2, 3"):
        parse_submission(d)


def test_make_submission_checks_windows():
    h = _rng_hashes(2)
    good = ImageWindow(1, "centre70", bytes(32), 90)
    with pytest.raises(ValueError, match="refers to image 2"):
        make_submission(h, [90, 90], windows=[ImageWindow(2, "centre70", bytes(32), 90)])
    with pytest.raises(ValueError, match="twice"):
        make_submission(h, [90, 90], windows=[good, good])
    with pytest.raises(ValueError, match="unknown window"):
        make_submission(h, [90, 90], windows=[ImageWindow(0, "grid9_90", bytes(32), 90)])
    with pytest.raises(ValueError, match="50..100"):
        make_submission(h, [90, 90], windows=[ImageWindow(0, "centre70", bytes(32), 49)])
    assert SHARED_WINDOWS == ("centre70",)


def test_the_window_hash_is_the_hash_of_the_centre_box_of_the_decoded_picture():
    path = EXAMPLES / "IMG_0001.jpg"
    pixels = load_pixels(str(path))
    h, w = pixels.shape[:2]
    t, b, l, r = window_box(w, h, 0.7)
    assert (b - t, r - l) == (round(h * 0.7), round(w * 0.7)) and abs((t + b) / 2 - h / 2) <= 1
    expected = pdq_hash(np.ascontiguousarray(pixels[t:b, l:r]))
    got = pdq_window_hash(str(path))
    assert got.hash.tobytes() == expected.hash.tobytes() and got.quality == expected.quality
    # a window is another picture: far from the whole picture's hash
    assert hamming(got.hash, pdq_hash(str(path)).hash) > 31


def test_cli_share_window_writes_version_3_and_show_still_reads_it(tmp_path):
    out = tmp_path / "s.json"
    run = subprocess.run([sys.executable, "-m", "ncii_hash", "hash", str(EXAMPLES), "-o", str(out), "--share-window",
                          "-q"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "centre hash" in run.stderr
    sub = read_submission(out)
    assert len(sub.windows) == sub.hashes.shape[0] == 2
    for win in sub.windows:  # each window sits on the item of its own picture
        match = [p for p in sorted(EXAMPLES.iterdir()) if pdq_hash(str(p)).hash.tobytes() == sub.hashes[win.image].tobytes()]
        assert len(match) == 1 and pdq_window_hash(str(match[0])).hash.tobytes() == win.pdq
    text = out.read_text()
    assert "IMG_" not in text and str(EXAMPLES) not in text
    plain = subprocess.run([sys.executable, "-m", "ncii_hash", "hash", str(EXAMPLES), "-o", str(tmp_path / "p.json"),
                            "-q"], capture_output=True, text=True)
    assert plain.returncode == 0 and json.loads((tmp_path / "p.json").read_text())["version"] == 1
    bad = subprocess.run([sys.executable, "-m", "ncii_hash", "hash", str(EXAMPLES), "--share-window"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "use it with -o" in bad.stderr
    shown = subprocess.run([sys.executable, "-m", "ncii_hash", "show", str(out)], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "2 centre hash(es)" in shown.stdout and sub.windows[0].pdq.hex() in shown.stdout


def test_parsing_does_not_mutate_its_input():
    d = _sub_with_windows()
    before = copy.deepcopy(d)
    parse_submission(d)
    assert d == before
