"""PDQ output equals Meta's reference, bit for bit (conformance data, see tests/data/README.md)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ncii_hash as nh
from ncii_hash import _core


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return [r for r in csv.reader(f) if r]


def dihedral_rows(root: Path):
    return [r for r in read_rows(root / "expected" / "cpp-reference-pdqdih-across.csv")
            if (root / "prepared-rgb" / (r[9] + ".png")).is_file()]


def check_prepared(root: Path) -> int:
    rows = dihedral_rows(root)
    for r in rows:
        pixels = np.asarray(Image.open(root / "prepared-rgb" / (r[9] + ".png")))
        res = nh.pdq_hash(pixels, dihedral=True)
        got = [h.tobytes().hex() for h in res.dihedral]
        assert got == r[:8], f"{r[9]}: dihedral hashes differ from the reference"
        assert res.quality == int(r[8]), r[9]
        assert res.hex == r[0]
    return len(rows)


def test_prepared_subset_all_dihedral_bit_exact(subset_pdq, simd):
    assert check_prepared(subset_pdq) >= 8


def test_prepared_full_set_all_dihedral_bit_exact(full_pdq, simd):
    assert check_prepared(full_pdq) == 49


def _raw_rule(root: Path, csv_name: str, resize):
    exact, differing = 0, []
    for r in read_rows(root / "expected" / csv_name):
        path = root / "data" / r[-1]
        if not path.is_file():
            continue
        res = nh.pdq_hash(path, exif_transpose=False, resize=resize)
        dist = nh.hamming(res.hex, r[0])
        if dist == 0 and res.quality == int(r[1]):
            exact += 1
        else:
            differing.append((r[-1], dist, res.quality))
            # Meta's rule for decoder differences: quality >= 80 -> within 10 bits.
            if int(r[1]) >= 80:
                assert dist <= 10, f"{r[-1]}: {dist} bits from the reference"
    return exact, differing


@pytest.mark.parametrize("csv_name,resize", [("cpp-core-fullres-pdq.csv", None),
                                             ("cpp-reference-pdq.csv", "reference-512")])
def test_raw_files_subset(subset_pdq, csv_name, resize):
    exact, differing = _raw_rule(subset_pdq, csv_name, resize)
    assert exact >= 6
    # With the Pillow shipped today every subset file decodes to the reference's pixels.
    assert not differing, differing


@pytest.mark.parametrize("csv_name,resize", [("cpp-core-fullres-pdq.csv", None),
                                             ("cpp-reference-pdq.csv", "reference-512")])
def test_raw_files_full_set(full_pdq, csv_name, resize):
    exact, differing = _raw_rule(full_pdq, csv_name, resize)
    assert exact + len(differing) == 49
    # Decoders may differ (these were made with ImageMagick 6.9); report which ones.
    if differing:
        print(f"{csv_name}: {len(differing)} files differ from the reference decoder: {differing}")
    assert exact >= 40


def test_intermediates_match_reference_dump(subset_pdq):
    pixels = np.asarray(Image.open(subset_pdq / "prepared-rgb" / "misc-images" / "wee.jpg.png"))
    luma = _core.pdq_downsample64(pixels)
    expected = np.loadtxt(subset_pdq / "intermediates" / "wee.jpg.luma64x64.txt", dtype=np.float32)
    # The dump is printed with %.9g, which round-trips float32 exactly.
    np.testing.assert_array_equal(luma, expected)
    dct = _core.pdq_dct16(luma)
    lines = (subset_pdq / "intermediates" / "wee.jpg.dct16x16.txt").read_text().splitlines()
    expected_dct = np.array([[float(x) for x in line.split()] for line in lines[:16]], dtype=np.float32)
    np.testing.assert_array_equal(dct, expected_dct)


def test_md5_testdata_rows(subset_pdq):
    """The WASM build's test vectors (reference CLI, 512 squash) for the files we carry."""
    checked = 0
    for r in read_rows(subset_pdq / "expected" / "PDQMD5TestData.csv")[1:]:
        rel = r[0].replace("../../../../data/", "")
        path = subset_pdq / "data" / rel
        if not path.is_file() or len(r[1]) != 64:
            continue
        assert nh.pdq_hash(path, exif_transpose=False, resize="reference-512").hex == r[1], rel
        checked += 1
    assert checked >= 1
