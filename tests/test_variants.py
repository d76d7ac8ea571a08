"""Extra PDQ hashes of one picture (ncii_hash.image.variants): window geometry, the content-box
detector, query variants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ncii_hash.image import variants as v


@settings(max_examples=200, deadline=None)
@given(w=st.integers(1, 4000), h=st.integers(1, 4000), name=st.sampled_from(sorted(v.CANDIDATE_WINDOW_SETS)))
def test_window_boxes_stay_inside_the_picture(w, h, name):
    for top, bottom, left, right in v.survivor_windows(w, h, name):
        assert 0 <= top < bottom <= h and 0 <= left < right <= w


def test_centre_window_known_answer():
    assert v.window_box(100, 50, 0.7) == (8, 43, 15, 85)
    assert v.window_box(100, 50, 0.9, (0.0, 0.0)) == (0, 45, 0, 90)
    assert v.window_box(100, 50, 0.9, (1.0, 1.0)) == (5, 50, 10, 100)
    assert v.survivor_windows(640, 480, "none") == []


@pytest.mark.parametrize("args, error", [((0, 10), ValueError), ((10, -1), ValueError), ((10.5, 10), TypeError)])
def test_bad_sizes_refused(args, error):
    with pytest.raises(error, match="width and height"):
        v.survivor_windows(*args)


def test_unknown_window_set_named():
    with pytest.raises(ValueError, match="unknown window set 'nine'"):
        v.survivor_windows(10, 10, "nine")
