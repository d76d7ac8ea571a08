"""The PDQ core in WebAssembly (docs/wasm.md): the committed modules are the ones published,
a rebuild reproduces them (when emscripten is here), and in Node they give the reference
hashes and qualities, all 8 dihedral hashes included, for the conformance images -- the
same bits as the native core on the same pixels. The Chromium run is in test_survivor_page.py."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ncii_hash as nh

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "ncii_hash" / "service" / "survivor" / "assets"
RUNNER = ROOT / "wasm" / "node_runner.js"
BUILT = ("pdq-simd.wasm", "pdq.wasm")


def published_digests() -> dict:
    """``<sha256>  <file>`` lines of docs/wasm.md's digest block."""
    text = (ROOT / "docs" / "wasm.md").read_text()
    block = text.split("<!-- digests -->")[1]
    return {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", block, re.M)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_committed_bundle_matches_published_digests():
    published = published_digests()
    assert set(BUILT) <= set(published)
    for name, digest in published.items():
        assert sha256(ASSETS / name) == digest, f"{name} differs from the digest in docs/wasm.md"


def test_rebuild_reproduces_committed_modules(tmp_path):
    if shutil.which("em++") is None:
        if os.environ.get("NCII_HASH_REQUIRE_EMSCRIPTEN"):
            pytest.fail("NCII_HASH_REQUIRE_EMSCRIPTEN is set and em++ is missing")
        pytest.skip("emscripten is not installed (apt-get install emscripten): the rebuild is not checked")
    subprocess.run([str(ROOT / "wasm" / "build.sh"), str(tmp_path)], check=True, capture_output=True, timeout=300)
    for name in BUILT:
        assert (tmp_path / name).read_bytes() == (ASSETS / name).read_bytes(), f"rebuilt {name} differs"


def node() -> str:
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true and node is missing")
        pytest.skip("node is not installed")
    return found


def prepared(root: Path) -> list:
    """(path under data/, pixels as Pillow decodes them, reference row) for every prepared PNG."""
    out = []
    with open(root / "expected" / "cpp-reference-pdqdih-across.csv", newline="") as f:
        for row in csv.reader(f):
            png = root / "prepared-rgb" / (row[9] + ".png")
            if row and png.is_file():
                out.append((row[9], np.asarray(Image.open(png)), row))
    return out


def run_node(images: list, tmp_path: Path, repeat: int = 0) -> dict:
    """Hash each pixel array with both modules in Node; arrays are (h, w) or (h, w, c)."""
    entries, offset = [], 0
    with open(tmp_path / "pixels.raw", "wb") as f:
        for px in images:
            px = np.ascontiguousarray(px, dtype=np.uint8)
            f.write(px.tobytes())
            entries.append({"offset": offset, "height": px.shape[0], "width": px.shape[1],
                            "channels": 1 if px.ndim == 2 else px.shape[2]})
            offset += px.nbytes
    (tmp_path / "manifest.json").write_text(json.dumps({"pixels": "pixels.raw", "images": entries}))
    done = subprocess.run([node(), str(RUNNER), str(ASSETS), str(tmp_path / "manifest.json"), str(repeat)],
                          check=True, capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout)


def check_conformance(root: Path, tmp_path: Path) -> int:
    cases = prepared(root)
    rgba = [np.dstack([px, np.full(px.shape[:2], 255, np.uint8)]) if px.ndim == 3 else px for _, px, _ in cases]
    got = run_node([px for _, px, _ in cases] + rgba, tmp_path)
    assert set(got) >= {"pdq.wasm"}
    for module, answer in got.items():
        results = answer["results"]
        for k, (name, px, row) in enumerate(cases):
            for r in (results[k], results[k + len(cases)]):  # as decoded, then as RGBA
                assert r["dihedral"] == row[:8], f"{module} {name}: dihedral hashes differ from the reference"
                assert r["quality"] == int(row[8]) and r["hash"] == row[0], f"{module} {name}"
            native = nh.pdq_hash(px)
            assert (results[k]["hash"], results[k]["quality"]) == (native.hex, native.quality), name
    return len(cases)


def test_node_subset_bit_exact(subset_pdq, tmp_path):
    assert check_conformance(subset_pdq, tmp_path) >= 8


def test_node_full_set_bit_exact(full_pdq, tmp_path):
    assert check_conformance(full_pdq, tmp_path) == 49


def test_node_odd_sizes_equal_native(tmp_path):
    """Sizes around the kernel's 4-lane blocks and the 64x64 special case, plus tiny images."""
    rng = np.random.default_rng(21)
    shapes = [(5, 5, 3), (4, 9, 3), (64, 64, 3), (64, 64, 1), (65, 63, 4), (127, 129, 3), (300, 7, 1), (513, 1031, 4)]
    images = [rng.integers(0, 256, s, dtype=np.uint8)[:, :, 0] if s[2] == 1 else rng.integers(0, 256, s, dtype=np.uint8)
              for s in shapes]
    got = run_node(images, tmp_path)
    for module, answer in got.items():
        for px, r in zip(images, answer["results"]):
            native = nh.pdq_hash(px[:, :, :3] if px.ndim == 3 else px, dihedral=True)
            assert r["hash"] == native.hex and r["quality"] == native.quality, (module, px.shape)
            assert r["dihedral"] == [h.tobytes().hex() for h in native.dihedral], (module, px.shape)
