"""The PDQ core in WebAssembly (docs/wasm.md): the committed modules are the ones published,
a rebuild reproduces them (when emscripten is here), and in Node they give the reference
hashes and qualities, all 8 dihedral hashes included, for the conformance images -- the
same bits as the native core on the same pixels. The Chromium run is in test_survivor_page.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from wasm_helpers import (
    ASSETS,
    ROOT,
    RUNNER,
    check_against_reference,
    prepared,
    published_digests,
    with_alpha,
    write_pixels,
)

import ncii_hash as nh

BUILT = ("pdq-simd.wasm", "pdq.wasm")


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


def run_node(images: list, tmp_path: Path, repeat: int = 0) -> dict:
    """Hash each pixel array with both modules in Node; arrays are (h, w) or (h, w, c)."""
    write_pixels(images, tmp_path)
    done = subprocess.run([node(), str(RUNNER), str(ASSETS), str(tmp_path / "manifest.json"), str(repeat)],
                          check=True, capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout)


def check_conformance(root: Path, tmp_path: Path) -> int:
    cases = prepared(root)
    got = run_node([px for _, px, _ in cases] + [with_alpha(px) for _, px, _ in cases], tmp_path)
    assert "pdq.wasm" in got
    for module, answer in got.items():
        check_against_reference(module, answer["results"], cases)
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


MD5_CHECK = """
const {Md5, md5Blob} = require(process.argv[1]);
const fs = require("fs");
const data = fs.readFileSync(process.argv[2]);
const out = [];
for (const n of JSON.parse(process.argv[3])) {
  const m = new Md5();
  for (let i = 0, k = 1; i < n; i += k, k = (k * 7) % 101 + 1) m.update(data.subarray(i, Math.min(n, i + k)));
  out.push(m.hex());
}
md5Blob(new Blob([data]), 1000003).then((whole) => { out.push(whole); process.stdout.write(JSON.stringify(out)); });
"""


def test_md5_js_equals_hashlib(tmp_path):
    """The page's streamed MD5 (a video's StopNCII signal): every padding case, odd chunks."""
    import hashlib as hl

    data = np.random.default_rng(5).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    (tmp_path / "data").write_bytes(data)
    sizes = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 1000, 65_537]
    done = subprocess.run([node(), "-e", MD5_CHECK, str(ASSETS / "md5.js"), str(tmp_path / "data"), json.dumps(sizes)],
                          check=True, capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout) == [hl.md5(data[:n]).hexdigest() for n in sizes] + [hl.md5(data).hexdigest()]


DCT_IMPULSES = """
const pdq = require(process.argv[1]);
const fs = require("fs"), path = require("path");
(async () => {
  for (const name of ["pdq.wasm", "pdq-simd.wasm"]) {
    const h = await pdq.instantiate(fs.readFileSync(path.join(path.dirname(process.argv[1]), name)));
    const out = new Float32Array(4096 * 256), a = new Float32Array(4096);
    for (let k = 0; k < 4096; k++) { a.fill(0); a[k] = 1; out.set(h.dct16(a), 256 * k); }
    fs.writeFileSync(path.join(process.argv[2], name + ".dct"), Buffer.from(out.buffer));
  }
})();
"""


def test_dct_matrix_equals_native(tmp_path):
    """The one float input that does not come from + - * / alone: the DCT matrix, made with the
    C library's cos in double and rounded to float (musl in WebAssembly, glibc natively). The DCT
    of the impulse at (k, j) is the float product D[i][k] * D[l][j] for every (i, l), so equal
    outputs for all 4,096 impulses mean equal matrices, in both modules."""
    from ncii_hash import _core

    subprocess.run([node(), "-e", DCT_IMPULSES, str(ASSETS / "pdq.js"), str(tmp_path)], check=True,
                   capture_output=True, timeout=120)
    native = np.empty((4096, 256), np.float32)
    a = np.zeros(4096, np.float32)
    for k in range(4096):
        a[:] = 0
        a[k] = 1
        native[k] = _core.pdq_dct16(a.reshape(64, 64)).ravel()
    for name in BUILT:
        got = np.fromfile(tmp_path / f"{name}.dct", np.float32).reshape(4096, 256)
        assert got.tobytes() == native.tobytes(), f"{name}: the DCT differs from the native core's"


WINDOWS = """
const pdq = require(process.argv[1]);
const fs = require("fs"), path = require("path");
const [w, h] = [Number(process.argv[2]), Number(process.argv[3])];
(async () => {
  const out = {boxes: [], rounds: [], hashes: {}};
  for (let a = 1; a <= 400; a++) for (const b of [1, 2, 15, 35, 155, 215]) {
    const box = pdq.windowBox(a, b, 0.7);
    out.boxes.push([box.top, box.top + box.height, box.left, box.left + box.width]);
  }
  for (const x of JSON.parse(process.argv[4])) out.rounds.push(pdq.roundHalfEven(x));
  const pixels = fs.readFileSync(process.argv[5]);
  for (const name of ["pdq.wasm", "pdq-simd.wasm"]) {
    const hasher = await pdq.instantiate(fs.readFileSync(path.join(path.dirname(process.argv[1]), name)));
    out.hashes[name] = [hasher.hashWindow(pixels, w, h, 3, "centre70"),
      hasher.hashWindow(pixels.subarray(w * h * 3), w, h, 1, "centre70")];
  }
  process.stdout.write(JSON.stringify(out));
})();
"""


def test_window_box_and_rounding_equal_python(tmp_path):
    """The page's centre window (pdq.js windowBox, hashWindow): the box of
    ncii_hash.image.variants.window_box for every width 1..400 against several heights (ties of
    round-half-even among them: 15 * 0.7 = 10.5 -> 10, Math.round would give 11), Python's round
    on halves, and the window hash equal to pdq_window_hash's on the same pixels."""
    from ncii_hash.image import pdq_window_hash
    from ncii_hash.image.variants import window_box

    values = [0.5, 1.5, 2.5, 10.5, 11.5, 150.5, 32.5, -0.5, -1.5, 0.49999999999999994, 2.0000000001, 7.0, 1e15 + 0.5]
    rgb = np.random.default_rng(8).integers(0, 256, (155, 215, 3), dtype=np.uint8)
    raw = tmp_path / "pixels.raw"
    raw.write_bytes(rgb.tobytes() + np.ascontiguousarray(rgb[:, :, 0]).tobytes())
    done = subprocess.run([node(), "-e", WINDOWS, str(ASSETS / "pdq.js"), "215", "155", json.dumps(values), str(raw)],
                          check=True, capture_output=True, text=True, timeout=120)
    got = json.loads(done.stdout)
    assert got["boxes"] == [list(window_box(a, b, 0.7)) for a in range(1, 401) for b in (1, 2, 15, 35, 155, 215)]
    assert got["rounds"] == [round(x) for x in values]
    expected = [pdq_window_hash(rgb), pdq_window_hash(np.ascontiguousarray(rgb[:, :, 0]))]
    for name in BUILT:
        assert got["hashes"][name] == [{"hash": e.hex, "quality": e.quality} for e in expected], name
