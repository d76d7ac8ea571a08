from __future__ import annotations

import csv

import numpy as np
import pytest
from hypothesis import given, strategies as st

import ncii_hash as nh


def test_hamming_reproduces_needles_haystack_pairs(subset_pdq):
    needles = nh.from_hex((subset_pdq / "data/reg-test-input/needles.txt").read_text().split())
    haystack = nh.from_hex((subset_pdq / "data/reg-test-input/haystack.txt").read_text().split())
    assert needles.shape == (100, 32) and haystack.shape == (1350, 32)
    d = nh.hamming_matrix(needles, haystack)
    got = {(int(i) + 1, int(j) + 1, int(d[i, j])) for i, j in zip(*np.nonzero(d <= 32))}
    with open(subset_pdq / "expected/needles-haystack-pairs-le32.csv") as f:
        rows = list(csv.DictReader(f))
    expected = {(int(r["needle_line"]), int(r["haystack_line"]), int(r["hamming_distance"])) for r in rows}
    assert got == expected and len(expected) == 250


@given(st.binary(min_size=32, max_size=32))
def test_hex_round_trip(raw):
    arr = np.frombuffer(raw, dtype=np.uint8)
    text = nh.to_hex(arr)
    assert text == raw.hex() and len(text) == 64
    np.testing.assert_array_equal(nh.from_hex(text), arr)
    np.testing.assert_array_equal(nh.from_hex(text.upper()), arr)


def test_batch_hex_round_trip():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(17, 32), dtype=np.uint8)
    np.testing.assert_array_equal(nh.from_hex(nh.to_hex(arr)), arr)
    assert nh.from_hex([]).shape == (0, 32)


@pytest.mark.parametrize("bad", ["", "0" * 63, "0" * 65, "g" * 64, "0" * 62 + "zz", " " * 64, "0x" + "0" * 62])
def test_bad_hex_raises_value_error(bad):
    with pytest.raises(ValueError):
        nh.from_hex(bad)
    with pytest.raises(ValueError, match="position 1"):
        nh.from_hex(["0" * 64, bad])


def test_hamming_known_values():
    zero = "0" * 64
    assert nh.hamming(zero, zero) == 0
    assert nh.hamming(zero, "f" * 64) == 256
    assert nh.hamming(zero, "0" * 63 + "7") == 3
    with pytest.raises(ValueError):
        nh.hamming(np.zeros(31, np.uint8), np.zeros(31, np.uint8))


def test_constants():
    assert nh.PDQ_MATCH_THRESHOLD == 31 and nh.PDQ_MIN_QUALITY == 50
