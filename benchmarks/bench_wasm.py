"""The PDQ core in WebAssembly (issue 21, docs/wasm.md) against the native core, on the same
pixels: hashes per second of the native module (``ncii_hash.pdq_hash`` on a NumPy array), of
the SIMD128 and scalar modules in Node (one long-lived ``node wasm/node_runner.js ... serve``
process, one round of all images per request), and of the SIMD128 module in Chromium (Debian's
``chromium-headless-shell`` through Playwright, as the tests drive it; one ``page.evaluate`` per
round). Every subject hashes the same RGBA pixels; their hashes are checked equal first.

Also the size of what a phone downloads for the hub's ``/survivor`` page (HTML template, the
app's style, script and English words, ``pdq.js``, ``survivor.js`` and one module), raw and
gzip -9, against the 200 KB target.

Images: the 8 prepared conformance pictures of ``tests/data/pdq`` (<= 512 px, as RGBA) and
generated pictures of 1024x768 (quick and full) and 4032x3024 (12 megapixels, full only).
Node or the browser missing: those subjects are skipped (reported), never an error.
"""

from __future__ import annotations

import functools
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

import ncii_hash as nh

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness

NAME = "wasm"
ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "src" / "ncii_hash" / "service" / "survivor" / "assets"
APP_ASSETS = ROOT / "src" / "ncii_hash" / "service" / "app" / "assets"
RUNNER = ROOT / "wasm" / "node_runner.js"
BUNDLE = [APP_ASSETS / "index.html", APP_ASSETS / "app.css", APP_ASSETS / "app.js", APP_ASSETS / "messages" / "en.json",
          ASSETS / "messages" / "en.json", ASSETS / "pdq.js", ASSETS / "md5.js", ASSETS / "survivor.js",
          ASSETS / "pdq-simd.wasm"]
TARGET_BUNDLE_GZ = 200_000


def write_pixels(images: list, folder: Path) -> tuple[Path, dict]:
    """Pack (h, w) or (h, w, c) uint8 arrays into ``folder/pixels.raw`` plus
    ``folder/manifest.json`` (the input of wasm/node_runner.js); returns the file and manifest."""
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


def generated(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """An RGBA picture with structure at several scales (blocks plus noise)."""
    coarse = rng.integers(0, 256, (height // 48 + 1, width // 48 + 1, 3), dtype=np.uint8)
    big = np.kron(coarse, np.ones((48, 48, 1), dtype=np.uint8))[:height, :width].astype(np.int16)
    rgb = np.clip(big + rng.integers(-24, 24, (height, width, 3)), 0, 255).astype(np.uint8)
    return np.dstack([rgb, np.full((height, width), 255, np.uint8)])


def image_sets(ctx: harness.Context) -> dict:
    rng = np.random.default_rng(ctx.seed)
    sets = {}
    subset = sorted((ROOT / "tests" / "data" / "pdq" / "prepared-rgb").rglob("*.png"))
    rgba = []
    for p in subset:
        px = np.asarray(Image.open(p).convert("RGB"))
        rgba.append(np.dstack([px, np.full(px.shape[:2], 255, np.uint8)]))
    if rgba:
        sets[f"{len(rgba)} conformance pictures <= 512 px"] = rgba
    for w, h in ctx.pick([(1024, 768)], [(1024, 768), (4032, 3024)]):
        sets[f"{w}x{h}"] = [generated(rng, w, h) for _ in range(ctx.pick(2, 3))]
    return sets


class NodeHasher:
    """One node process serving rounds over one image set."""

    def __init__(self, folder: Path):
        self.proc = subprocess.Popen([shutil.which("node") or "node", str(RUNNER), str(ASSETS),
                                      str(folder / "manifest.json"), "serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.modules = json.loads(self.proc.stdout.readline())

    def round(self, module: str) -> Callable[[], None]:
        def run() -> None:
            self.proc.stdin.write(module + "\n")
            self.proc.stdin.flush()
            if self.proc.stdout.readline().strip() != "ok":
                raise RuntimeError("node runner failed")
        return run

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class BrowserHasher:
    """Chromium on a bare page of a local server holding pdq.js, the modules and the pixels."""

    ROUND = """async () => { for (const im of window.benchImages) window.benchHasher.hash(
        window.benchRaw.subarray(im.offset, im.offset + im.width * im.height * im.channels), im.width, im.height,
        im.channels); return true; }"""
    LOAD = """async (manifest) => {
      window.benchRaw = new Uint8Array(await (await fetch(manifest.pixels)).arrayBuffer());
      window.benchImages = manifest.images;
      window.benchHasher = await NciiPdq.load("/", {});
      return [window.benchHasher.simd, manifest.images.map((im) => window.benchHasher.hash(
        window.benchRaw.subarray(im.offset, im.offset + im.width * im.height * im.channels), im.width, im.height,
        im.channels).hash)];
    }"""

    def __init__(self, playwright, chromium: str, folder: Path, manifest: dict):
        for name in ("pdq.js", "pdq.wasm", "pdq-simd.wasm"):
            shutil.copy(ASSETS / name, folder / name)
        (folder / "index.html").write_text('<!doctype html><html lang="en"><head><meta charset="utf-8">'
                                           '<title>bench</title><script src="pdq.js"></script></head></html>')
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.browser = playwright.chromium.launch(executable_path=chromium)
        self.page = self.browser.new_page()
        self.page.goto(f"http://127.0.0.1:{self.server.server_address[1]}/index.html")
        self.simd, self.hashes = self.page.evaluate(self.LOAD, manifest)

    def round(self) -> None:
        self.page.evaluate(self.ROUND)

    def close(self) -> None:
        self.browser.close()
        self.server.shutdown()
        self.server.server_close()


def chromium_or_reason() -> tuple[str | None, str]:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None, "playwright is not installed"
    for c in ("/usr/bin/chromium-headless-shell", "/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium"):
        if Path(c).is_file():
            return c, ""
    return None, "no Chromium found (apt-get install chromium-headless-shell)"


def bundle_size(ctx: harness.Context) -> None:
    raw = {p.relative_to(ROOT).as_posix(): p.read_bytes() for p in BUNDLE}
    sizes = {name: {"bytes": len(b), "gzip9": len(gzip.compress(b, 9, mtime=0))} for name, b in raw.items()}
    total = sum(s["gzip9"] for s in sizes.values())
    ctx.config["bundle"] = {"files": sizes, "total_bytes": sum(len(b) for b in raw.values()), "total_gzip9": total}
    ctx.check("survivor page bundle under 200 KB compressed", total < TARGET_BUNDLE_GZ, gzip9_bytes=total)


def run(ctx: harness.Context) -> None:
    bundle_size(ctx)
    sets = image_sets(ctx)
    ctx.config["images"] = {name: [list(px.shape) for px in imgs] for name, imgs in sets.items()}
    node = shutil.which("node")
    if node is None:
        ctx.skipped.append({"peer": "node", "reason": "node is not installed"})
    chromium, why = chromium_or_reason()
    if chromium is None:
        ctx.skipped.append({"peer": "chromium", "reason": why})
    playwright = None
    if chromium is not None:
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
    try:
        for name, images in sets.items():
            measure(ctx, name, images, node is not None, playwright, chromium)
    finally:
        if playwright is not None:
            playwright.stop()


def measure(ctx: harness.Context, name: str, images: list, with_node: bool, playwright, chromium) -> None:
    native = [nh.pdq_hash(px).hex for px in images]
    cases: dict = {"native": lambda: [nh.pdq_hash(px) for px in images]}
    with tempfile.TemporaryDirectory(prefix="bench-wasm-") as tmp:
        folder = Path(tmp)
        _, manifest = write_pixels(images, folder)
        runner = NodeHasher(folder) if with_node else None
        browser = BrowserHasher(playwright, chromium, folder, manifest) if playwright is not None else None
        try:
            if runner is not None:
                for module in runner.modules:
                    cases[f"wasm-{'simd' if 'simd' in module else 'scalar'}-node"] = runner.round(module)
            if browser is not None:
                ctx.check(f"{name}: Chromium hashes equal native", browser.hashes == native, simd=browser.simd)
                cases[f"wasm-{'simd' if browser.simd else 'scalar'}-chromium"] = browser.round
            ctx.compare(name, cases, items=len(images), per="image")
        finally:
            if runner is not None:
                runner.close()
            if browser is not None:
                browser.close()
    for subject in cases:
        if subject != "native":
            ctx.ratio(name, subject, "native", label=f"{name}: {subject} vs native")


def main(argv=None) -> int:
    return harness.main(run, NAME, argv)


if __name__ == "__main__":
    sys.exit(main())
