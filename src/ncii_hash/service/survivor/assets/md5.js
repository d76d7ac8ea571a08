// MD5 (RFC 1321) over a stream of byte chunks, for StopNCII's video signal: the MD5 of the
// whole file, computed in the browser without holding the file in memory. Browser script
// (window.NciiMd5) or Node module. Not for security: it names a file, as StopNCII does.
"use strict";

(function (root) {
  // Per-round left rotations and the sine table: T[i] = floor(2^32 * |sin(i + 1)|).
  const S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
  const T = new Uint32Array(64);
  for (let i = 0; i < 64; i++) T[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 4294967296) >>> 0;

  class Md5 {
    constructor() {
      this.h = new Uint32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
      this.block = new Uint8Array(64);
      this.fill = 0;       // bytes waiting in `block`
      this.length = 0;     // total bytes seen (exact up to 2^53)
      this.words = new Uint32Array(16);
    }

    compress(bytes, offset) {
      const x = this.words;
      for (let i = 0; i < 16; i++) {
        const j = offset + 4 * i;
        x[i] = (bytes[j] | (bytes[j + 1] << 8) | (bytes[j + 2] << 16) | (bytes[j + 3] << 24)) >>> 0;
      }
      let a = this.h[0], b = this.h[1], c = this.h[2], d = this.h[3];
      for (let i = 0; i < 64; i++) {
        const round = i >> 4;
        let f, g;
        if (round === 0) { f = (b & c) | (~b & d); g = i; }
        else if (round === 1) { f = (d & b) | (~d & c); g = (5 * i + 1) & 15; }
        else if (round === 2) { f = b ^ c ^ d; g = (3 * i + 5) & 15; }
        else { f = c ^ (b | ~d); g = (7 * i) & 15; }
        const sum = (a + f + T[i] + x[g]) >>> 0;
        const s = S[(round << 2) | (i & 3)];
        a = d; d = c; c = b;
        b = (b + ((sum << s) | (sum >>> (32 - s)))) >>> 0;
      }
      this.h[0] += a; this.h[1] += b; this.h[2] += c; this.h[3] += d;
    }

    update(chunk) {
      let i = 0;
      this.length += chunk.length;
      if (this.fill) {
        const take = Math.min(64 - this.fill, chunk.length);
        this.block.set(chunk.subarray(0, take), this.fill);
        this.fill += take; i = take;
        if (this.fill < 64) return this;
        this.compress(this.block, 0);
        this.fill = 0;
      }
      for (; i + 64 <= chunk.length; i += 64) this.compress(chunk, i);
      if (i < chunk.length) { this.block.set(chunk.subarray(i), 0); this.fill = chunk.length - i; }
      return this;
    }

    hex() {
      const bits = this.length * 8;
      const pad = new Uint8Array(((this.fill < 56 ? 56 : 120) - this.fill) + 8);
      pad[0] = 0x80;
      const n = pad.length - 8;
      const low = bits >>> 0, high = Math.floor(bits / 4294967296) >>> 0;
      for (let k = 0; k < 4; k++) { pad[n + k] = (low >>> (8 * k)) & 0xff; pad[n + 4 + k] = (high >>> (8 * k)) & 0xff; }
      const length = this.length;
      this.update(pad);
      this.length = length;
      let out = "";
      for (const word of this.h) for (let k = 0; k < 4; k++) out += ((word >>> (8 * k)) & 0xff).toString(16).padStart(2, "0");
      return out;
    }
  }

  // The MD5 of a Blob (a File), read in chunks of `chunkBytes`.
  async function md5Blob(blob, chunkBytes) {
    const step = chunkBytes || (4 << 20);
    const digest = new Md5();
    for (let at = 0; at < blob.size; at += step) digest.update(new Uint8Array(await blob.slice(at, at + step).arrayBuffer()));
    return digest.hex();
  }

  const api = { Md5: Md5, md5Blob: md5Blob };
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.NciiMd5 = api;
})(typeof self !== "undefined" ? self : this);
