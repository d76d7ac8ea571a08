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

  // Python's round() of a double (ties to even: 10.5 -> 10, 11.5 -> 12), which Math.round
  // (ties up) is not; x - floor(x) is exact for every double, so the tie test is exact too.
  function roundHalfEven(x) {
    const f = Math.floor(x), d = x - f;
    if (d !== 0.5) return d < 0.5 ? f : f + 1;
    return f % 2 === 0 ? f : f + 1;
  }

  // The box keeping `fraction` of each side, centred: ncii_hash.image.variants.window_box
  // (same doubles, same rounding), as {top, left, width, height}.
  function windowBox(width, height, fraction) {
    const bw = Math.max(1, Math.min(width, roundHalfEven(width * fraction)));
    const bh = Math.max(1, Math.min(height, roundHalfEven(height * fraction)));
    const left = Math.min(width - bw, Math.max(0, roundHalfEven((width - bw) * 0.5)));
    const top = Math.min(height - bh, Math.max(0, roundHalfEven((height - bh) * 0.5)));
    return { top: top, left: left, width: bw, height: bh };
  }

  // The pixels of `box` (rows of width*channels bytes), as a new Uint8Array.
  function cutBox(pixels, width, channels, box) {
    const row = box.width * channels, out = new Uint8Array(row * box.height);
    for (let y = 0; y < box.height; y++) {
      const start = ((box.top + y) * width + box.left) * channels;
      out.set(pixels.subarray(start, start + row), y * row);
    }
    return out;
  }

  // The submission's shared windows (ncii_hash.submission.SHARED_WINDOWS): the share of each side.
  const WINDOWS = { centre70: 0.7 };

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

    // The hash of a shared window (e.g. "centre70") of the picture, cut from these pixels:
    // ncii_hash.image.pdq_window_hash on the same pixels, bit for bit.
    hashWindow(pixels, width, height, channels, name) {
      const ch = channels || 4;
      if (!Object.prototype.hasOwnProperty.call(WINDOWS, name)) throw new RangeError("unknown window " + name);
      const box = windowBox(width, height, WINDOWS[name]);
      return this.hash(cutBox(pixels, width, ch, box), box.width, box.height, ch);
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

  const api = { instantiate: instantiate, load: load, simdSupported: simdSupported, hex: hex,
    roundHalfEven: roundHalfEven, windowBox: windowBox, cutBox: cutBox, WINDOWS: WINDOWS };
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.NciiPdq = api;
})(typeof self !== "undefined" ? self : this);
