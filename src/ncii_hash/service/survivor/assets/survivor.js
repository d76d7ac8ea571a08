// The hub's survivor page: the local app's page (app.js, unchanged) with its /api/... calls
// answered here, inside the browser, instead of by a local server:
//   /api/hash        a picture is decoded by the browser and hashed by the PDQ module (with
//                    ?window=true, the survivor's opt-in, also its centre window, cut from the
//                    same pixels); a video
//                    gives the MD5 of its bytes (read in chunks) and the PDQ hashes of one
//                    frame a second, decoded by the browser's <video>
//   /api/submission  the submission text, built here exactly as `ncii-hash hash -o` writes it
//   /api/submit      POST /cases on this hub (with an Idempotency-Key kept for retries)
//   /api/case        POST /cases/{n}/status or /withdraw on this hub
// Nothing is sent while hashing: the module is fetched when the page loads, before any file is
// chosen; file bytes, names and pixels never leave the page. Only hashes, their qualities and
// counts are sent, and only when "Send" is pressed.
"use strict";

(function () {
  const script = document.currentScript;
  const BASE = script.dataset.base;
  const MODULES = JSON.parse(script.dataset.integrity || "{}");
  const MAX_PIXELS = Number(script.dataset.maxPixels);
  const MAX_FILE_BYTES = Number(script.dataset.maxFileBytes);
  const LOW_QUALITY = 50;
  const WINDOW = "centre70";  // the shared window of a submission (version 3)
  const THUMB = 96;
  const MAX_VIDEO_SECONDS = 4 * 3600;
  const realFetch = window.fetch.bind(window);
  const hasher = window.NciiPdq.load(BASE, MODULES);
  hasher.catch(() => {});  // reported when a picture is hashed

  const items = new Map();   // id -> {kind, pdq, quality[, window: {pdq, quality}]}
  let counter = 0;
  let submission = null;     // {text, key, url}

  function reply(body, status) {
    if (status === 204) return new Response(null, { status: 204 });
    return new Response(JSON.stringify(body), { status: status || 200, headers: { "Content-Type": "application/json" } });
  }

  // ---- what the file is, from its first bytes (before anything is decoded) ----------------
  function u16be(b, i) { return (b[i] << 8) | b[i + 1]; }
  function u16le(b, i) { return b[i] | (b[i + 1] << 8); }
  function u32be(b, i) { return ((b[i] << 24) >>> 0) + (b[i + 1] << 16) + (b[i + 2] << 8) + b[i + 3]; }
  function u24le(b, i) { return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16); }
  function ascii(b, i, n) { return String.fromCharCode.apply(null, b.subarray(i, i + n)); }

  // {width, height, grey, alpha} or null. grey: decoded by Pillow as one channel (PNG grey,
  // JPEG with one component), which the native path hashes as grey: the page does the same.
  // alpha: the picture may have transparent pixels (read back without premultiplying).
  function imageInfo(b) {
    if (b.length >= 26 && b[0] === 0x89 && ascii(b, 1, 3) === "PNG") {
      let alpha = b[25] === 4 || b[25] === 6;
      for (let i = 8; !alpha && i + 8 <= b.length;) {
        const type = ascii(b, i + 4, 4);
        if (type === "IDAT") break;
        alpha = type === "tRNS";
        i += 12 + u32be(b, i);
      }
      return { width: u32be(b, 16), height: u32be(b, 20), grey: b[25] === 0 || b[25] === 4, alpha: alpha };
    }
    if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
      let i = 2;
      while (i + 9 < b.length) {
        if (b[i] !== 0xff) return null;
        const m = b[i + 1];
        if (m === 0xff) { i++; continue; }
        if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
          return { width: u16be(b, i + 7), height: u16be(b, i + 5), grey: b[i + 9] === 1, alpha: false };
        }
        if (m === 0xd8 || (m >= 0xd0 && m <= 0xd7) || m === 0x01) { i += 2; continue; }
        i += 2 + u16be(b, i + 2);
      }
      return null;
    }
    if (b.length >= 10 && ascii(b, 0, 4) === "GIF8") return { width: u16le(b, 6), height: u16le(b, 8), grey: false, alpha: true };
    if (b.length >= 30 && ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 4) === "WEBP") {
      const chunk = ascii(b, 12, 4);
      if (chunk === "VP8 ") return { width: u16le(b, 26) & 0x3fff, height: u16le(b, 28) & 0x3fff, grey: false, alpha: false };
      if (chunk === "VP8L") {
        return { width: 1 + (b[21] | ((b[22] & 0x3f) << 8)),
          height: 1 + ((b[22] >> 6) | (b[23] << 2) | ((b[24] & 0x0f) << 10)), grey: false, alpha: true };
      }
      if (chunk === "VP8X") return { width: 1 + u24le(b, 24), height: 1 + u24le(b, 27), grey: false, alpha: (b[20] & 0x10) !== 0 };
      return null;
    }
    if (isIsoImage(b)) {
      // HEIC / AVIF: the largest "ispe" (image spatial extents) property is the picture's
      // size (a grid's tiles have smaller ones). The browser may or may not decode the format.
      let width = 0, height = 0;
      for (let i = b.indexOf(0x69, 8); i >= 0 && i + 16 <= b.length; i = b.indexOf(0x69, i + 1)) {
        if (ascii(b, i, 4) !== "ispe") continue;
        const w = u32be(b, i + 8), h = u32be(b, i + 12);
        if (w * h > width * height) { width = w; height = h; }
      }
      return width && height ? { width: width, height: height, grey: false, alpha: true } : null;
    }
    if (b.length >= 26 && ascii(b, 0, 2) === "BM") {
      const v = new DataView(b.buffer, b.byteOffset, b.length);
      return { width: Math.abs(v.getInt32(18, true)), height: Math.abs(v.getInt32(22, true)), grey: false, alpha: true };
    }
    return null;
  }

  function isIsoImage(b) {
    return b.length >= 12 && ascii(b, 4, 4) === "ftyp" && /^(hei|hev|mif|msf|avi)/.test(ascii(b, 8, 4));
  }

  function isVideo(blob, b) {
    return /^video\//.test(blob.type) || (b.length >= 12 && ascii(b, 4, 4) === "ftyp" && !/^hei|^mif|^avi/.test(ascii(b, 8, 4)))
      || (b.length >= 4 && u32be(b, 0) === 0x1a45dfa3);
  }

  // ---- decoding and hashing -------------------------------------------------------------
  async function bitmapOf(blob) {
    // EXIF orientation applied as the native path does (Pillow's exif_transpose); embedded
    // colour profiles are not applied (Pillow does not apply them either).
    const options = { imageOrientation: "from-image", colorSpaceConversion: "none", premultiplyAlpha: "none" };
    try {
      return await createImageBitmap(blob, options);
    } catch (e) {
      if (e instanceof TypeError) return createImageBitmap(blob, { colorSpaceConversion: "none" });
      throw e;
    }
  }

  function canvas(width, height) {
    const c = document.createElement("canvas");
    c.width = width; c.height = height;
    return c;
  }

  // The decoded RGBA pixels of a bitmap with transparency, not premultiplied: a 2D canvas
  // premultiplies (a fully transparent pixel reads back as black), while the native path keeps
  // the colour under the alpha (Pillow drops the alpha channel). A WebGL texture keeps the
  // bitmap's bytes as they are; null when WebGL or a texture of this size is not available.
  function unpremultipliedPixels(bitmap) {
    const c = canvas(1, 1);
    const gl = c.getContext("webgl", { premultipliedAlpha: false, antialias: false });
    if (!gl || Math.max(bitmap.width, bitmap.height) > gl.getParameter(gl.MAX_TEXTURE_SIZE)) return null;
    try {
      const texture = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, texture);
      gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
      gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
      gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, bitmap);
      const framebuffer = gl.createFramebuffer();
      gl.bindFramebuffer(gl.FRAMEBUFFER, framebuffer);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, texture, 0);
      if (gl.checkFramebufferStatus(gl.FRAMEBUFFER) !== gl.FRAMEBUFFER_COMPLETE) return null;
      const pixels = new Uint8Array(bitmap.width * bitmap.height * 4);
      gl.readPixels(0, 0, bitmap.width, bitmap.height, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
      return gl.getError() === gl.NO_ERROR ? pixels : null;
    } finally {
      const lose = gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext();
    }
  }

  // The decoded RGBA pixels of a bitmap, and a small JPEG thumbnail (data: URL).
  function pixelsOf(bitmap) {
    const c = canvas(bitmap.width, bitmap.height);
    const ctx = c.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    const data = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
    c.width = c.height = 0;
    return data;
  }

  function thumbnailOf(bitmap) {
    const scale = Math.min(1, THUMB / Math.max(bitmap.width, bitmap.height));
    const c = canvas(Math.max(1, Math.round(bitmap.width * scale)), Math.max(1, Math.round(bitmap.height * scale)));
    c.getContext("2d").drawImage(bitmap, 0, 0, c.width, c.height);
    return c.toDataURL("image/jpeg", 0.7);
  }

  function grey(rgba) {
    const out = new Uint8Array(rgba.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = rgba[4 * i];
    return out;
  }

  class Refused extends Error {}

  function once(target, ok, bad) {
    return new Promise((resolve, reject) => {
      const done = (f) => (e) => { target.removeEventListener(ok, good); target.removeEventListener(bad, fail); f(e); };
      const good = done(resolve), fail = done(() => reject(new Refused("unreadable")));
      target.addEventListener(ok, good);
      target.addEventListener(bad, fail);
    });
  }

  // A video: the MD5 of the file (StopNCII's video signal) and the PDQ hash of the frame shown
  // at 0 s, 1 s, 2 s, ... (the native path hashes frame n when n % int(fps) == 0: the same frames
  // for whole-number frame rates; the browser's decoder and colour conversion are its own, so
  // the frame hashes are close to the native ones, not equal -- docs/wasm.md).
  async function hashVideo(blob) {
    const md5 = await window.NciiMd5.md5Blob(blob);
    const url = URL.createObjectURL(blob);
    const video = document.createElement("video");
    video.muted = true;
    video.preload = "auto";
    try {
      const loaded = once(video, "loadedmetadata", "error");
      video.src = url;
      await loaded;
      const duration = video.duration;
      if (!(duration > 0) || !video.videoWidth || !video.videoHeight) throw new Refused("unreadable");
      if (duration > MAX_VIDEO_SECONDS || video.videoWidth * video.videoHeight > MAX_PIXELS) throw new Refused("too_large");
      const h = await hasher;
      const c = canvas(video.videoWidth, video.videoHeight);
      const ctx = c.getContext("2d", { willReadFrequently: true });
      const frames = [], seen = new Set();
      for (let t = 0; t < duration; t += 1) {
        const seeked = once(video, "seeked", "error");
        video.currentTime = t + 0.001;  // inside frame t*fps's interval, never the one before
        await seeked;
        ctx.drawImage(video, 0, 0, c.width, c.height);
        const r = h.hash(ctx.getImageData(0, 0, c.width, c.height).data, c.width, c.height, 4);
        if (!seen.has(r.hash)) { seen.add(r.hash); frames.push({ pdq: r.hash, quality: r.quality }); }
      }
      c.width = c.height = 0;
      return { kind: "video", md5: md5, frames: frames, quality: Math.max(...frames.map((f) => f.quality)) };
    } finally {
      video.removeAttribute("src");
      video.load();
      URL.revokeObjectURL(url);
    }
  }

  async function hashFile(blob, withWindow) {
    if (!blob.size) throw new Refused("empty");
    if (blob.size > MAX_FILE_BYTES) throw new Refused("too_large");
    let head = new Uint8Array(await blob.slice(0, 1 << 20).arrayBuffer());
    if (isVideo(blob, head)) return hashVideo(blob);
    let info = imageInfo(head);
    if (!info && blob.size > head.length) {  // e.g. a JPEG with large metadata before its frame header
      head = new Uint8Array(await blob.slice(0, 16 << 20).arrayBuffer());
      info = imageInfo(head);
    }
    if (!info) throw new Refused("unsupported");
    if (!(info.width > 0 && info.height > 0) || info.width * info.height > MAX_PIXELS) throw new Refused("too_large");
    let bitmap;
    try {
      bitmap = await bitmapOf(blob);
    } catch (e) {  // HEIC in a browser without its decoder: the format, not the file
      throw new Refused(isIsoImage(head) ? "unsupported" : "unreadable");
    }
    try {
      const rgba = (info.alpha && unpremultipliedPixels(bitmap)) || pixelsOf(bitmap);
      const h = await hasher;
      const pixels = info.grey ? grey(rgba) : rgba, channels = info.grey ? 1 : 4;
      const result = h.hash(pixels, bitmap.width, bitmap.height, channels);
      const media = { kind: "image", pdq: result.hash, quality: result.quality, thumbnail: thumbnailOf(bitmap) };
      if (withWindow) {  // kept only when good enough to match on (as ncii-hash hash --share-window)
        const w = h.hashWindow(pixels, bitmap.width, bitmap.height, channels, WINDOW);
        if (w.quality >= LOW_QUALITY) media.window = { pdq: w.hash, quality: w.quality };
      }
      return media;
    } finally {
      bitmap.close();
    }
  }

  // ---- the submission (format of src/ncii_hash/submission.py: version 1, or 3 with windows) --
  function shuffle(list) {
    const r = new Uint32Array(1);
    for (let i = list.length - 1; i > 0; i--) {
      crypto.getRandomValues(r);
      const j = r[0] % (i + 1);
      [list[i], list[j]] = [list[j], list[i]];
    }
    return list;
  }

  function randomKey() {
    const b = crypto.getRandomValues(new Uint8Array(32));
    return btoa(String.fromCharCode.apply(null, b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function imageItem(m, withWindows) {
    const item = { kind: "image", pdq: m.pdq, quality: m.quality };
    if (withWindows && m.window) item.windows = { [WINDOW]: { pdq: m.window.pdq, quality: m.window.quality } };
    return item;
  }

  function buildSubmission(ids, withWindows) {
    const chosen = ids.map((id) => items.get(id)).filter(Boolean);
    if (!chosen.length) return null;
    const images = chosen.filter((m) => m.kind === "image");
    const videos = chosen.filter((m) => m.kind === "video");
    const windows = withWindows ? images.filter((m) => m.window).length : 0;
    const list = shuffle(images.map((m) => imageItem(m, withWindows))
      .concat(videos.map((v) => ({ kind: "video", frames: shuffle(v.frames.slice()), md5: v.md5 }))));
    const counts = { items: list.length, image: images.length, video: videos.length,
      video_frames: videos.reduce((n, v) => n + v.frames.length, 0),
      low_quality: images.filter((m) => m.quality < LOW_QUALITY).length };
    if (windows) counts.window_hashes = windows;
    const text = JSON.stringify({
      format: "ncii-hash-submission", version: windows ? 3 : 1, algorithm: "pdq", items: list, counts: counts,
    }, null, 2) + "\n";
    forgetSubmission();
    const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    submission = { text: text, key: randomKey(), url: url };
    const save = document.getElementById("save");
    if (save) save.href = url;
    return text;
  }

  function forgetSubmission() {
    if (submission) URL.revokeObjectURL(submission.url);
    submission = null;
  }

  // ---- this hub's /cases API ------------------------------------------------------------
  async function toHub(path, body, headers) {
    return realFetch(path, { method: "POST", body: body, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
      headers: Object.assign({ "Content-Type": "application/json" }, headers || {}) });
  }

  async function hubFailure(response, sending) {
    if (response.status === 429) {
      const wait = Number(response.headers.get("Retry-After"));
      return reply({ error: "too_many_tries", retry_after: Number.isFinite(wait) && wait > 0 ? wait : null }, 429);
    }
    if (response.status === 403 && !sending) return reply({ error: "wrong_pin" }, 403);
    return reply({ error: "hub_refused", status: response.status }, 502);
  }

  async function submit() {
    if (!submission) return reply({ detail: "nothing to send: make the submission first" }, 409);
    for (let attempt = 0; ; attempt++) {
      try {
        const response = await toHub("/cases", submission.text, { "Idempotency-Key": submission.key });
        if (!response.ok) return hubFailure(response, true);
        const body = await response.json();
        return reply({ case_number: body.case_number, pin: body.pin });
      } catch (e) {
        if (attempt >= 2) return reply({ error: "unreachable_maybe_sent" }, 502);
        await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)));
      }
    }
  }

  async function caseRequest(body) {
    const number = body.case_number, pin = body.pin, action = body.action;
    if (typeof number !== "string" || !number.trim() || typeof pin !== "string" || !pin.trim()
        || (action !== "status" && action !== "withdraw")) return reply({ error: "case_missing" }, 400);
    try {
      const response = await toHub("/cases/" + encodeURIComponent(number.trim()) + "/" + action,
        JSON.stringify({ pin: pin.trim() }));
      if (!response.ok) return hubFailure(response, false);
      const answer = await response.json();
      return reply({ case_number: String(answer.case_number || number), status: String(answer.status || ""),
        items: answer.items, hashes: answer.hashes, feedback: answer.feedback || {} });
    } catch (e) {
      return reply({ error: "unreachable" }, 502);
    }
  }

  // ---- the app page's local API, answered in the page -------------------------------------
  async function api(path, query, init) {
    const body = init.body;
    const data = typeof body === "string" ? JSON.parse(body || "{}") : {};
    switch (path) {
      case "/api/state":
        return reply({ hub: location.origin, folder_files: 0, max_file_bytes: MAX_FILE_BYTES,
          features_available: false, heartbeat_seconds: 3600 });
      case "/api/heartbeat":
        return reply(null, 204);
      case "/api/hash":
        try {
          const media = await hashFile(body, query.get("window") === "true");
          const id = "i" + (++counter);
          items.set(id, media);
          if (media.kind === "video") {
            return reply({ id: id, kind: "video", quality: media.quality, frames: media.frames.length, thumbnail: null });
          }
          const shown = Object.assign({ id: id }, media);
          if (media.window) shown.window = media.window.pdq;
          return reply(shown);
        } catch (e) {
          return reply({ error: e instanceof Refused ? e.message : "failed" }, 422);
        }
      case "/api/forget":
        for (const id of data.ids || []) items.delete(id);
        forgetSubmission();
        return reply({});
      case "/api/clear":
        items.clear();
        forgetSubmission();
        return reply({});
      case "/api/submission": {
        const text = buildSubmission(data.ids || [], data.windows === true);
        return text === null ? reply({ detail: "nothing to send" }, 409) : reply({ text: text });
      }
      case "/api/submit":
        return submit();
      case "/api/case":
        return caseRequest(data);
      default:
        return reply({ detail: "not found" }, 404);
    }
  }

  window.fetch = function (input, init) {
    const url = new URL(typeof input === "string" ? input : input.url, location.href);
    if (url.origin === location.origin && url.pathname.startsWith("/api/")) return api(url.pathname, url.searchParams, init || {});
    if (url.origin === location.origin && url.pathname.startsWith("/static/messages/")) {
      return realFetch(BASE + url.pathname.slice("/static/".length), { credentials: "same-origin" });
    }
    return realFetch(input, init);
  };

  document.addEventListener("DOMContentLoaded", () => {
    // This page sends to the hub it came from, and nowhere else.
    for (const id of ["hub", "case-hub"]) {
      const field = document.getElementById(id);
      if (field) { field.value = location.origin; field.readOnly = true; }
    }
  });
})();
