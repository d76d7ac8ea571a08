"""Shared by tests/test_wasm.py (Node) and tests/test_survivor_page.py (Chromium): the
conformance images' pixels as Pillow decodes them, packed into one raw file plus a manifest
(``write_pixels``, the benchmark's: the input of wasm/node_runner.js and of the in-browser
run), and the comparison with the reference rows."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "ncii_hash" / "service" / "survivor" / "assets"
RUNNER = ROOT / "wasm" / "node_runner.js"
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level package of the checkout, not installed
    sys.path.insert(0, str(ROOT))
from benchmarks.bench_wasm import write_pixels  # noqa: F401  (one packer for tests and benchmark)


def published_digests() -> dict:
    """``<sha256>  <file>`` lines of docs/wasm.md's digest block."""
    text = (ROOT / "docs" / "wasm.md").read_text()
    block = text.split("<!-- digests -->")[1]
    return {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", block, re.MULTILINE)}


def prepared(root: Path) -> list:
    """(path under data/, pixels as Pillow decodes them, reference row) for every prepared PNG."""
    out = []
    with open(root / "expected" / "cpp-reference-pdqdih-across.csv", newline="") as f:
        for row in csv.reader(f):
            png = root / "prepared-rgb" / (row[9] + ".png") if row else None
            if png is not None and png.is_file():
                out.append((row[9], np.asarray(Image.open(png)), row))
    return out


def with_alpha(px: np.ndarray) -> np.ndarray:
    """RGB -> RGBA (opaque), as a canvas gives; grey stays grey."""
    return np.dstack([px, np.full(px.shape[:2], 255, np.uint8)]) if px.ndim == 3 else px


def check_against_reference(module: str, results: list, cases: list) -> None:
    """results: the module's answers for the cases as decoded, then again as RGBA."""
    import ncii_hash as nh

    assert len(results) == 2 * len(cases)
    for k, (name, px, row) in enumerate(cases):
        for r in (results[k], results[k + len(cases)]):
            assert r["dihedral"] == row[:8], f"{module} {name}: dihedral hashes differ from the reference"
            assert r["quality"] == int(row[8]) and r["hash"] == row[0], f"{module} {name}"
        native = nh.pdq_hash(px)
        assert (results[k]["hash"], results[k]["quality"]) == (native.hex, native.quality), name
