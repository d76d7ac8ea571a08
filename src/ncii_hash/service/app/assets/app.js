// The page of `ncii-hash app`. Everything here runs against 127.0.0.1 only: file bytes are
// POSTed to this computer's app (never their names or paths), which hashes them and answers
// the hash and a small thumbnail; the page never talks to a hub itself.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const STEPS = ["step-check", "step-choose", "step-hash", "step-review", "step-done", "step-case"];
  const MEDIA = /^(image|video)\//;
  const MEDIA_NAME = /\.(jpe?g|jfif|png|webp|gif|bmp|tiff?|heic|heif|hif|avif|mp4|m4v|mov|3gp|mkv|webm|avi|flv|ogv|wmv|mpe?g|ts)$/i;
  let words = {};
  let config = { hub: "", folder_files: 0, max_file_bytes: 0, features_available: false, heartbeat_seconds: 10 };
  let items = [];        // {id, kind, quality, pdq, window, frames, thumbnail}, in the order hashed
  let problems = [];     // {name, code}: shown on this page only
  let revealed = false;
  let running = null;    // AbortController of the hashing in progress
  let lastCase = null;   // {case, pin, hub} while the "done" step is shown

  function t(key, vars) {
    let text = words[key] !== undefined ? String(words[key]) : key;
    for (const [k, v] of Object.entries(vars || {})) text = text.split("{" + k + "}").join(String(v));
    return text;
  }

  function say(text) { $("status").textContent = text; }

  function show(step) {
    for (const s of STEPS) $(s).hidden = s !== step;
    if (step !== "step-done") forgetCase();
    const heading = $(step).querySelector("h2");
    if (heading) heading.focus();
  }

  async function post(path, body, options) {
    const headers = { "X-Ncii-App": "1" };
    let payload = body;
    if (body !== undefined && !(body instanceof Blob)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    } else if (body instanceof Blob) {
      headers["Content-Type"] = "application/octet-stream";
    }
    return fetch(path, Object.assign({ method: "POST", headers: headers, body: payload,
      credentials: "same-origin", cache: "no-store" }, options || {}));
  }

  async function answer(response) {
    try { return await response.json(); } catch (e) { return {}; }
  }

  // ---- the check --------------------------------------------------------------------------
  function choice(name) {
    const c = document.querySelector("input[name=" + name + "]:checked");
    return c ? c.value : null;
  }

  function check() {
    const age = choice("age"), you = choice("you"), intimate = choice("intimate");
    $("check-missing").hidden = !!(age && you && intimate);
    $("under18").hidden = age !== "no";
    $("not-you").hidden = !(age === "yes" && you === "no");
    $("not-intimate").hidden = !(age === "yes" && you === "yes" && intimate === "no");
    if (!age || !you || !intimate) { say(t("check_missing")); return; }
    if (age === "no") { say(t("under18_title")); return; }
    if (you !== "yes" || intimate !== "yes") { say(""); return; }
    say("");
    show("step-choose");
  }

  // ---- choosing and hashing --------------------------------------------------------------
  function isMedia(file) { return MEDIA.test(file.type) || MEDIA_NAME.test(file.name); }

  async function entriesOf(entry, out) {
    if (entry.isFile) {
      await new Promise((resolve) => entry.file((f) => { out.push(f); resolve(); }, resolve));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve) => reader.readEntries(resolve, () => resolve([])));
        if (!batch.length) break;
        for (const e of batch) await entriesOf(e, out);
      }
    }
  }

  async function dropped(event) {
    event.preventDefault();
    $("drop").classList.remove("over");
    const files = [];
    const list = event.dataTransfer.items;
    const entries = list && list.length && list[0].webkitGetAsEntry
      ? Array.from(list).map((i) => i.webkitGetAsEntry()).filter(Boolean) : [];
    for (const e of entries) await entriesOf(e, files);  // folders are walked
    if (!entries.length) files.push(...Array.from(event.dataTransfer.files));
    hashAll(files.filter(isMedia).map((f) => ({ file: f })));
  }

  function features() { return config.features_available && $("features").checked; }

  // The survivor's opt-in: one more hash per picture, of its centre (submission version 3).
  function windows() { return $("window").checked; }

  function hashQuery() {
    const q = [];
    if (features()) q.push("features=true");
    if (windows()) q.push("window=true");
    return q.length ? "?" + q.join("&") : "";
  }

  async function hashAll(sources) {
    if (!sources.length) return;
    show("step-hash");
    const controller = new AbortController();
    running = controller;
    $("cancel").disabled = false;
    $("to-review").disabled = true;
    $("add-more").disabled = true;
    const progress = $("progress");
    progress.max = sources.length;
    progress.value = 0;
    const query = hashQuery();
    let ok = 0, failed = 0;
    for (let i = 0; i < sources.length; i++) {
      if (controller.signal.aborted) break;
      const source = sources[i];
      say(t("hashing_n_of_m", { n: i + 1, m: sources.length }));
      const name = source.file ? source.file.name : "";
      try {
        let response;
        if (source.file) {
          if (config.max_file_bytes && source.file.size > config.max_file_bytes) {
            problems.push({ name: name, code: "too_large" }); failed++; progress.value = i + 1; renderErrors(); continue;
          }
          response = await post("/api/hash" + query, source.file, { signal: controller.signal });
        } else {
          response = await post("/api/folder/" + source.index + query, undefined, { signal: controller.signal });
        }
        const body = await answer(response);
        if (response.ok && body.id) {
          items.push(body); ok++;
        } else {
          problems.push({ name: name, code: response.status === 413 ? "too_large" : (body.error || "failed") });
          failed++;
        }
      } catch (e) {
        if (e.name === "AbortError") break;
        problems.push({ name: name, code: "failed" }); failed++;
      }
      progress.value = i + 1;
      renderThumbs();
      renderErrors();
    }
    const cancelled = controller.signal.aborted;
    running = null;
    $("cancel").disabled = true;
    $("to-review").disabled = items.length === 0;
    $("add-more").disabled = false;
    renderThumbs();
    say(cancelled ? t("hashing_cancelled", { ok: ok }) : t("hashing_done", { ok: ok, failed: failed }));
  }

  function label(item, index) {
    const n = index + 1, m = items.length;
    return t(item.kind === "video" ? "video_n_of_m" : "photo_n_of_m", { n: n, m: m });
  }

  function tile(item, index) {
    const text = label(item, index);
    if (item.thumbnail) {
      const img = document.createElement("img");
      img.src = item.thumbnail;
      img.alt = revealed ? text : t("blurred", { label: text });
      img.className = revealed ? "thumb" : "thumb blurred";
      img.width = 96; img.height = 96;
      return img;
    }
    const box = document.createElement("span");
    box.className = "thumb plain";
    box.setAttribute("role", "img");
    box.setAttribute("aria-label", text);
    box.textContent = t(item.kind === "video" ? "video" : "photo");
    return box;
  }

  function renderThumbs() {
    const list = $("thumbs");
    list.replaceChildren(...items.map((item, i) => {
      const li = document.createElement("li");
      li.appendChild(tile(item, i));
      return li;
    }));
  }

  function renderErrors() {
    $("errors-title").hidden = problems.length === 0;
    $("errors").replaceChildren(...problems.map((p) => {
      const li = document.createElement("li");
      const text = t("error_" + p.code) !== "error_" + p.code ? t("error_" + p.code) : t("error_failed");
      li.textContent = p.name ? p.name + ": " + text : text;
      return li;
    }));
  }

  function reveal() {
    revealed = !revealed;
    $("reveal").setAttribute("aria-pressed", String(revealed));
    $("reveal").textContent = revealed ? t("reveal_hide") : t("reveal_show");
    renderThumbs();
    if (!$("step-review").hidden) renderReview();
  }

  // ---- what will be sent -----------------------------------------------------------------
  async function review() {
    if (!items.length) { say(t("nothing_left")); show("step-choose"); return; }
    const response = await post("/api/submission", { ids: items.map((i) => i.id), features: features(),
      windows: windows() });
    const body = await answer(response);
    if (!response.ok) { say(t("nothing_left")); return; }
    $("submission-text").textContent = body.text;
    let shared = 0;
    try { shared = JSON.parse(body.text).counts.window_hashes || 0; } catch (e) { shared = 0; }
    const photos = items.filter((i) => i.kind === "image").length;
    $("review-windows").textContent = !shared ? ""
      : t("review_windows", { n: shared, m: photos }) + (shared < photos ? " " + t("review_windows_missing") : "");
    $("review-windows").hidden = !shared;
    renderReview();
    if ($("step-review").hidden) show("step-review");
  }

  function renderReview() {
    $("review-items").replaceChildren(...items.map((item, i) => {
      const li = document.createElement("li");
      const text = label(item, i);
      li.appendChild(tile(item, i));
      const span = document.createElement("span");
      span.textContent = item.kind === "video" ? t("review_video_item", { label: text, frames: item.frames })
        : item.window && windows() ? t("review_item_window", { label: text, hash: item.pdq.slice(0, 16),
          window: item.window.slice(0, 16) })
          : t("review_item", { label: text, hash: item.pdq.slice(0, 16) });
      li.appendChild(span);
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = t("remove");
      button.setAttribute("aria-label", t("remove_label", { label: text }));
      button.addEventListener("click", () => remove(item, text));
      li.appendChild(button);
      return li;
    }));
  }

  async function remove(item, text) {
    items = items.filter((i) => i !== item);
    await post("/api/forget", { ids: [item.id] });
    renderThumbs();
    say(t("removed", { label: text }));
    if (!items.length) { $("submission-text").textContent = ""; show("step-choose"); say(t("nothing_left")); return; }
    await review();
    $("review-title").focus();
  }

  async function send() {
    say(t("sending"));
    $("send").disabled = true;
    try {
      const response = await post("/api/submit", { hub: $("hub").value });
      const body = await answer(response);
      if (response.ok && body.case_number) {
        lastCase = { case: body.case_number, pin: body.pin, hub: $("hub").value };
        show("step-done");
        $("done-case").textContent = body.case_number;
        $("done-pin").textContent = body.pin;
        $("case-hub").value = $("hub").value;
        say(t("done_title"));
      } else {
        say(hubError(body));
      }
    } catch (e) {
      say(t("unreachable"));
    } finally {
      $("send").disabled = false;
    }
  }

  function hubError(body) {
    const code = body.error || body.detail || "bad_answer";
    if (code === "too_many_tries") {
      return body.retry_after != null ? t("too_many_tries", { seconds: body.retry_after }) : t("too_many_tries_later");
    }
    return t(code, { status: body.status });
  }

  function forgetCase() {
    lastCase = null;
    if ($("done-case")) { $("done-case").textContent = ""; $("done-pin").textContent = ""; }
  }

  async function copyCase() {
    if (!lastCase) return;
    try {
      await navigator.clipboard.writeText(t("case_file", lastCase));
      say(t("copied"));
    } catch (e) {
      say(t("copy_failed"));
    }
  }

  function saveCase() {
    if (!lastCase) return;
    const url = URL.createObjectURL(new Blob([t("case_file", lastCase)], { type: "text/plain" }));
    const a = document.createElement("a");
    a.href = url; a.download = "case.txt";
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // ---- status and withdrawal -------------------------------------------------------------
  async function caseAction(action) {
    const result = $("case-result");
    if (action === "withdraw" && !$("withdraw-sure").checked) { say(t("withdraw_confirm_first")); return; }
    say(t("checking"));
    const response = await post("/api/case", { hub: $("case-hub").value, case_number: $("case-number").value,
      pin: $("case-pin").value, action: action });
    const body = await answer(response);
    let text;
    if (!response.ok) {
      text = hubError(body);
    } else if (action === "withdraw") {
      text = t("withdrawn_done", { case: body.case_number });
    } else {
      text = body.status === "withdrawn" ? t("status_withdrawn", { case: body.case_number })
        : t("status_active", { case: body.case_number, items: body.items, hashes: body.hashes });
      const counts = Object.entries(body.feedback || {}).filter(([, v]) => v).map(([k, v]) => k + " " + v);
      text += " " + (counts.length ? t("feedback", { counts: counts.join(", ") }) : t("no_feedback"));
    }
    result.textContent = text;
    result.hidden = false;
    say(text);
  }

  // ---- leaving ---------------------------------------------------------------------------
  function quickExit() {
    if (running) running.abort();
    try { post("/api/clear", {}, { keepalive: true }); } catch (e) { /* leave anyway */ }
    items = []; problems = []; lastCase = null;
    document.body.replaceChildren();
    document.title = "";
    location.replace("/exit");
  }

  function heartbeat() { post("/api/heartbeat").catch(() => {}); }

  async function start() {
    const lang = document.documentElement.lang || "en";
    $("lang-select").value = lang;
    $("quick-exit").addEventListener("click", quickExit);
    try {
      words = await (await fetch("/static/messages/" + lang + ".json", { cache: "no-store" })).json();
      config = await (await fetch("/api/state", { cache: "no-store" })).json();
    } catch (e) { /* the page still works with the words rendered by the server */ }
    $("hub").value = config.hub || "";
    $("case-hub").value = config.hub || "";
    if (config.folder_files > 0) {
      $("folder-offer").hidden = false;
      $("use-folder").textContent = t("use_folder", { n: config.folder_files });
    }
    $("features-box").hidden = !config.features_available;
    $("check-continue").addEventListener("click", check);
    $("go-case").addEventListener("click", () => show("step-case"));
    $("pick-files").addEventListener("change", (e) => { hashAll(Array.from(e.target.files).map((f) => ({ file: f }))); e.target.value = ""; });
    $("pick-folder").addEventListener("change", (e) => { hashAll(Array.from(e.target.files).filter(isMedia).map((f) => ({ file: f }))); e.target.value = ""; });
    $("use-folder").addEventListener("click", () => hashAll(Array.from({ length: config.folder_files }, (_, i) => ({ index: i }))));
    const drop = $("drop");
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", dropped);
    $("cancel").addEventListener("click", () => { if (running) running.abort(); });
    $("reveal").addEventListener("click", reveal);
    $("add-more").addEventListener("click", () => show("step-choose"));
    $("to-review").addEventListener("click", review);
    $("back-to-hash").addEventListener("click", () => show("step-hash"));
    $("send").addEventListener("click", send);
    $("copy").addEventListener("click", copyCase);
    $("print").addEventListener("click", () => window.print());
    $("save-case").addEventListener("click", saveCase);
    $("done-to-case").addEventListener("click", () => show("step-case"));
    $("case-status").addEventListener("click", () => caseAction("status"));
    $("case-withdraw").addEventListener("click", () => caseAction("withdraw"));
    $("case-back").addEventListener("click", () => show("step-check"));
    heartbeat();
    setInterval(heartbeat, (config.heartbeat_seconds || 10) * 1000);
    document.body.classList.add("ready");
  }

  document.addEventListener("DOMContentLoaded", start);
})();
