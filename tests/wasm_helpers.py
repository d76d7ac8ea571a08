"""Shared by tests/test_wasm.py (Node) and tests/test_survivor_page.py (Chromium): the
conformance images' pixels as Pillow decodes them, packed into one raw file plus a manifest
(the input of wasm/node_runner.js, and of the in-browser run), and the comparison with the
reference rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "ncii_hash" / "service" / "survivor" / "assets"
RUNNER = ROOT / "wasm" / "node_runner.js"


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


def write_pixels(images: list, folder: Path) -> tuple[Path, dict]:
    """Pack (h, w) or (h, w, c) uint8 arrays: returns the raw file and the manifest."""
    entries, offset = [], 0
    raw = folder / "pixels.raw"
    with open(raw, "wb") as f:
        for px in images:
            px = np.ascontiguousarray(px, dtype=np.uint8)
            f.write(px.tobytes())
            entries.append({"offset": offset, "height": px.shape[0], "width": px.shape[1],
                            "channels": 1 if px.ndim == 2 else px.shape[2]})
            offset += px.nbytes
    manifest = {"pixels": raw.name, "images": entries}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return raw, manifest


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
