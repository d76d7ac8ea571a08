// Hashes raw pixels with the WebAssembly PDQ modules, for tests/test_wasm.py and
// benchmarks/bench_wasm.py. The manifest: {"pixels": "<file of concatenated raw pixels>",
// "images": [{"offset", "width", "height", "channels"}, ...]}.
//   node wasm/node_runner.js ASSETS_DIR MANIFEST.json [REPEAT]
//     prints {"<module>": {"simd": bool, "results": [{hash, quality, dihedral}], "seconds": s}}
//     as JSON, where seconds is the time of REPEAT rounds of single hashes.
//   node wasm/node_runner.js ASSETS_DIR MANIFEST.json serve
//     reads lines "pdq.wasm" or "pdq-simd.wasm" on stdin; for each, hashes every image once
//     with that module and answers "ok" (the benchmark times these rounds from Python).
"use strict";
const fs = require("fs");
const path = require("path");

async function main() {
  const [assets, manifestPath, repeatText] = process.argv.slice(2);
  const pdq = require(path.resolve(assets, "pdq.js"));
  const manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8"));
  const raw = fs.readFileSync(path.resolve(path.dirname(manifestPath), manifest.pixels));
  if (repeatText === "serve") return serve(pdq, assets, manifest, raw);
  const repeat = Number(repeatText || 0);
  const out = {};
  for (const name of ["pdq.wasm", "pdq-simd.wasm"]) {
    if (name === "pdq-simd.wasm" && !pdq.simdSupported()) continue;
    const hasher = await pdq.instantiate(fs.readFileSync(path.join(assets, name)));
    const images = manifest.images.map((im) => [raw.subarray(im.offset, im.offset + im.width * im.height * im.channels), im]);
    const results = images.map(([px, im]) => hasher.hash(px, im.width, im.height, im.channels, { dihedral: true }));
    const start = process.hrtime.bigint();
    for (let r = 0; r < repeat; r++) for (const [px, im] of images) hasher.hash(px, im.width, im.height, im.channels);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    out[name] = { simd: hasher.simd, results: results, seconds: seconds };
  }
  process.stdout.write(JSON.stringify(out));
}

async function serve(pdq, assets, manifest, raw) {
  const hashers = {};
  for (const name of ["pdq.wasm", "pdq-simd.wasm"]) {
    if (name === "pdq-simd.wasm" && !pdq.simdSupported()) continue;
    hashers[name] = await pdq.instantiate(fs.readFileSync(path.join(assets, name)));
  }
  const images = manifest.images.map((im) => [raw.subarray(im.offset, im.offset + im.width * im.height * im.channels), im]);
  const lines = require("readline").createInterface({ input: process.stdin });
  process.stdout.write(JSON.stringify(Object.keys(hashers)) + "\n");
  for await (const line of lines) {
    const h = hashers[line.trim()];
    if (!h) break;
    for (const [px, im] of images) h.hash(px, im.width, im.height, im.channels);
    process.stdout.write("ok\n");
  }
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(1); });
