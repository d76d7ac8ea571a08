// The PDQ core in WebAssembly (csrc/wasm, built by wasm/build.sh): pixels in, hash and
// quality out, bit for bit as the native module. No generated glue: the module imports two
// functions and exports ncii_alloc/ncii_free/ncii_pdq (see csrc/wasm/pdq_wasm.cpp).
// Works as a browser script (window.NciiPdq) and as a Node module (require).
"use strict";

(function (root) {
  // The smallest module using a v128 instruction: validates only where SIMD128 is supported.
  const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1,
    8, 0, 65, 0, 253, 15, 253, 98, 11]);

  function simdSupported() {
    try { return WebAssembly.validate(SIMD_PROBE); } catch (e) { return false; }
  }

  function hex(bytes) {
    let s = "";
    for (let i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    return s;
  }

  class Hasher {
    constructor(instance) {
      this.exports = instance.exports;
      this.exports._initialize();
      this.simd = this.exports.ncii_simd() === 1;
    }

    // pixels: Uint8Array / Uint8ClampedArray of width*height*channels bytes (channels 1, 3
    // or 4; RGBA from a canvas is 4, alpha ignored). Returns {hash, quality[, dihedral]}
    // with hashes as 64 lowercase hex characters.
    hash(pixels, width, height, channels, options) {
      const ch = channels || 4;
      const n = width * height * ch;
      if (!(width >= 0 && height >= 0) || pixels.length < n) throw new RangeError("pixels do not match the size");
      const dihedral = !!(options && options.dihedral);
      const e = this.exports;
      const out = e.ncii_alloc(32 + (dihedral ? 256 : 0));
      const buf = e.ncii_alloc(n);
      if (!out || !buf) { e.ncii_free(out); e.ncii_free(buf); throw new RangeError("image too large for memory"); }
      try {
        new Uint8Array(e.memory.buffer, buf, n).set(pixels.subarray(0, n));
        const quality = e.ncii_pdq(buf, width, height, ch, out, dihedral ? out + 32 : 0);
        if (quality < 0) throw new RangeError("not an image");
        const bytes = new Uint8Array(e.memory.buffer, out, 32 + (dihedral ? 256 : 0));
        const result = { hash: hex(bytes.subarray(0, 32)), quality: quality };
        if (dihedral) result.dihedral = Array.from({ length: 8 }, (_, k) => hex(bytes.subarray(32 + 32 * k, 64 + 32 * k)));
        return result;
      } finally {
        e.ncii_free(buf);
        e.ncii_free(out);
      }
    }

    // The core's 16x16 DCT of a 64x64 float array (Float32Array of 4096), for tests.
    dct16(values) {
      const e = this.exports;
      const buf = e.ncii_alloc(4 * (4096 + 256));
      try {
        new Float32Array(e.memory.buffer, buf, 4096).set(values);
        e.ncii_dct16(buf, buf + 4 * 4096);
        return new Float32Array(e.memory.buffer, buf + 4 * 4096, 256).slice();
      } finally {
        e.ncii_free(buf);
      }
    }
  }

  const imports = {
    env: { emscripten_notify_memory_growth: function () {} },
    wasi_snapshot_preview1: { proc_exit: function (code) { throw new Error("PDQ module aborted (" + code + ")"); } },
  };

  // bytes: an ArrayBuffer / typed array of pdq-simd.wasm or pdq.wasm.
  async function instantiate(bytes) {
    const result = await WebAssembly.instantiate(bytes, imports);
    return new Hasher(result.instance);
  }

  // In a page: fetch the module this browser can run, checked against its SHA-256
  // (integrity: {"pdq-simd.wasm": "sha256-...", "pdq.wasm": "sha256-..."}).
  async function load(base, integrity, forceScalar) {
    const name = !forceScalar && simdSupported() ? "pdq-simd.wasm" : "pdq.wasm";
    const options = { credentials: "same-origin" };
    if (integrity && integrity[name]) options.integrity = integrity[name];
    const response = await fetch(base + name, options);
    if (!response.ok) throw new Error("cannot load " + name);
    return instantiate(await response.arrayBuffer());
  }

  const api = { instantiate: instantiate, load: load, simdSupported: simdSupported, hex: hex };
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.NciiPdq = api;
})(typeof self !== "undefined" ? self : this);
