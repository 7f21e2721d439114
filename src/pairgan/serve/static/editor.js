// pairgan editor: paint a label map (or upload an image), translate it on the server, side by side.
// Painting writes pixels directly (no anti-aliasing), so every painted pixel is exactly a palette
// colour and the server maps it back to its class id.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
// COCO-18 keypoints of a person standing, as fractions (y, x) of the image: the default target pose.
const DEFAULT_POSE = [[0.14, 0.5], [0.24, 0.5], [0.25, 0.38], [0.4, 0.34], [0.54, 0.32], [0.25, 0.62],
  [0.4, 0.66], [0.54, 0.68], [0.54, 0.42], [0.72, 0.42], [0.9, 0.42], [0.54, 0.58], [0.72, 0.58],
  [0.9, 0.58], [0.12, 0.47], [0.12, 0.53], [0.13, 0.44], [0.13, 0.56]];

const state = {
  models: [], model: null, tool: "brush", colour: [0, 0, 0], brush: 8,
  undo: [], image: null, original: null, dirty: true, drawing: false, last: null,
  edits: [], pose: null, dragJoint: -1, busy: false, pending: false, outputUrl: null, scale: 1,
};

const canvas = $("canvas");
const ctx = canvas.getContext("2d", { willReadFrequently: true });
const overlay = $("overlay");

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function paletteOf(model) { return model && model.palette ? model.palette : null; }
function background() {
  const pal = paletteOf(state.model);
  return pal ? pal[0].slice() : [255, 255, 255];
}
function hexToRgb(hex) { const v = parseInt(hex.slice(1), 16); return [(v >> 16) & 255, (v >> 8) & 255, v & 255]; }

// ------------------------------------------------------------------ the API, with the server's token
// A server started with --token answers 401 without it: ask once, keep it for this tab only
// (sessionStorage), and ask again only when the server refuses the kept one.
const TOKEN_KEY = "pairgan-token";
async function api(path, init = {}) {
  let r = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = Object.assign({}, init.headers || {});
    if (token) headers.Authorization = `Bearer ${token}`;
    r = await fetch(path, Object.assign({}, init, { headers }));
    if (r.status !== 401) return r;
    sessionStorage.removeItem(TOKEN_KEY);
    const typed = window.prompt(token ? "The server refused that token. Its token:" : "This server needs its access token:");
    if (!typed) return r;
    sessionStorage.setItem(TOKEN_KEY, typed.trim());
  }
  return r;
}

// ------------------------------------------------------------------ models
async function loadModels() {
  setStatus("loading models…");
  const r = await api("/v1/models");
  const doc = await r.json();
  if (!r.ok) throw new Error(doc.error ? doc.error.message : r.statusText);
  state.models = doc.models;
  state.maxPixels = doc.limits ? doc.limits.max_pixels : 0;
  const sel = $("model");
  sel.textContent = "";
  for (const m of state.models) {
    const o = document.createElement("option");
    o.value = m.name;
    o.textContent = `${m.name} (${m.method})`;
    sel.appendChild(o);
  }
  if (state.models.length) selectModel(state.models[0].name);
  setStatus("ready");
}

function selectModel(name) {
  const m = state.models.find((x) => x.name === name);
  state.model = m;
  const spec = m.input;
  $("model-info").textContent = `${m.method} · ${m.backend} · ${spec.kind} input, ${spec.channels} ch` +
    (spec.label_nc ? `, ${spec.label_nc} classes` : "") + (spec.fixed_size ? ` · fixed ${spec.fixed_size[1]}x${spec.fixed_size[0]}` : "");
  buildPalette(m);
  const [h, w] = spec.recommended_size;
  $("canvas-w").value = w;
  $("canvas-h").value = h;
  // options
  const v = m.options.variant;
  $("variant-row").classList.toggle("hidden", !v);
  if (v) {
    const sel = $("variant");
    sel.textContent = "";
    for (const value of ["all"].concat(v.values.filter((x) => x !== "all"))) {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = value === "all" ? `all ${v.k}` : `#${value}`;
      sel.appendChild(o);
    }
  }
  const f = m.options.features;
  $("features-row").classList.toggle("hidden", !f);
  $("tool-restyle").classList.toggle("hidden", !m.options.edits);
  if (f) {
    const sel = $("features");
    sel.textContent = "";
    const add = (value, text) => { const o = document.createElement("option"); o.value = value; o.textContent = text; sel.appendChild(o); };
    add("", "default"); add("random", "random");
    const counts = m.options.clusters ? Object.values(m.options.clusters) : [];
    const kmax = counts.length ? Math.max(...counts) : 0;
    for (let k = 0; k < kmax; k++) add(`cluster:${k}`, `cluster ${k}`);
  }
  const pose = spec.kind === "pose";
  for (const id of ["tools", "palette"]) $(id).classList.toggle("hidden", pose);
  $("free-colour-row").classList.toggle("hidden", pose || spec.paint !== "free");
  $("hint").textContent = pose
    ? "Upload a person image, then drag the yellow joints to the target pose."
    : spec.kind === "label" || spec.paint === "palette"
      ? "Paint classes with the palette; Fill floods a region; Translate when ready (or tick live)."
      : "Upload an image or paint on the canvas, then Translate.";
  setTool(pose ? "pose" : "brush");
  state.edits = [];
  newCanvas(w, h);
  state.pose = pose ? DEFAULT_POSE.map(([y, x]) => [y * h, x * w]) : null;
  if (pose && m.options.pose && m.options.pose.default) state.pose = m.options.pose.default.map(([y, x]) => [y * h, x * w]);
  drawOverlay();
  clearOutput();
}

function buildPalette(m) {
  const box = $("palette");
  box.textContent = "";
  const pal = paletteOf(m);
  if (!pal) { state.colour = hexToRgb($("free-colour").value); return; }
  pal.forEach((rgb, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "swatch";
    b.dataset.index = String(i);
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.style.background = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
    b.appendChild(chip);
    b.appendChild(document.createTextNode(m.classes && m.classes[i] ? m.classes[i] : `class ${i}`));
    b.title = `class ${i}: rgb(${rgb.join(", ")})`;
    b.addEventListener("click", () => selectColour(i));
    box.appendChild(b);
  });
  selectColour(Math.min(1, pal.length - 1));
}

function selectColour(i) {
  const pal = paletteOf(state.model);
  state.colour = pal[i].slice();
  for (const b of $("palette").children) b.classList.toggle("active", b.dataset.index === String(i));
  if (state.tool === "eraser" || state.tool === "restyle") setTool("brush");
}

function setTool(tool) {
  state.tool = tool;
  for (const b of document.querySelectorAll("[data-tool]")) b.classList.toggle("active", b.dataset.tool === tool);
}

// ------------------------------------------------------------------ canvas
function fitDisplay() {
  const w = canvas.width, h = canvas.height;
  const room = Math.max(200, Math.min(560, ($("left").clientWidth || 560) - 24));
  state.scale = Math.min(8, room / Math.max(w, h));
  canvas.style.width = `${Math.round(w * state.scale)}px`;
  canvas.style.height = `${Math.round(h * state.scale)}px`;
  overlay.setAttribute("width", Math.round(w * state.scale));
  overlay.setAttribute("height", Math.round(h * state.scale));
  overlay.setAttribute("viewBox", `0 0 ${w} ${h}`);
}

function newCanvas(w, h) {
  w = Math.max(8, Math.min(4096, w | 0));
  h = Math.max(8, Math.min(4096, h | 0));
  canvas.width = w;
  canvas.height = h;
  const img = ctx.createImageData(w, h);
  const bg = background();
  for (let i = 0; i < w * h; i++) { img.data[4 * i] = bg[0]; img.data[4 * i + 1] = bg[1]; img.data[4 * i + 2] = bg[2]; img.data[4 * i + 3] = 255; }
  state.image = img;
  state.original = null;
  state.dirty = true;
  state.undo = [];
  state.edits = [];
  render();
  fitDisplay();
}

function render() { ctx.putImageData(state.image, 0, 0); }

function pushUndo() {
  const img = state.image;
  state.undo.push({ image: new ImageData(new Uint8ClampedArray(img.data), img.width, img.height),
    original: state.original, dirty: state.dirty, edits: state.edits.slice() });
  if (state.undo.length > 50) state.undo.shift();
}

function undo() {
  const prev = state.undo.pop();
  if (!prev) return;
  if (prev.image.width !== canvas.width || prev.image.height !== canvas.height) {
    canvas.width = prev.image.width; canvas.height = prev.image.height; fitDisplay();
  }
  state.image = prev.image; state.original = prev.original; state.dirty = prev.dirty; state.edits = prev.edits;
  render(); drawOverlay(); maybeLive();
}

function setPixel(x, y, c) {
  const img = state.image;
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  const i = 4 * (y * img.width + x);
  img.data[i] = c[0]; img.data[i + 1] = c[1]; img.data[i + 2] = c[2]; img.data[i + 3] = 255;
}

function stamp(cx, cy, c) {
  const r = state.brush / 2;
  const r2 = r * r;
  const x0 = Math.floor(cx - r), x1 = Math.ceil(cx + r), y0 = Math.floor(cy - r), y1 = Math.ceil(cy + r);
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
      if (dx * dx + dy * dy <= r2 || (r < 1 && x === Math.floor(cx) && y === Math.floor(cy))) setPixel(x, y, c);
    }
  }
}

function line(a, b, c) {
  const n = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / Math.max(1, state.brush / 4)));
  for (let i = 0; i <= n; i++) stamp(a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n, c);
}

function regionMask(x, y) {
  // 4-connected pixels of the colour at (x, y), as a Uint8Array mask (the server's instance rule).
  const img = state.image, w = img.width, h = img.height, d = img.data;
  const mask = new Uint8Array(w * h);
  const i0 = 4 * (y * w + x);
  const r = d[i0], g = d[i0 + 1], b = d[i0 + 2];
  const stack = [y * w + x];
  mask[y * w + x] = 1;
  while (stack.length) {
    const p = stack.pop();
    const px = p % w, py = (p - px) / w;
    const nb = [px > 0 ? p - 1 : -1, px < w - 1 ? p + 1 : -1, py > 0 ? p - w : -1, py < h - 1 ? p + w : -1];
    for (const q of nb) {
      if (q < 0 || mask[q]) continue;
      const j = 4 * q;
      if (d[j] === r && d[j + 1] === g && d[j + 2] === b) { mask[q] = 1; stack.push(q); }
    }
  }
  return mask;
}

function fill(x, y, c) {
  const mask = regionMask(x, y);
  for (let p = 0; p < mask.length; p++) if (mask[p]) setPixel(p % canvas.width, Math.floor(p / canvas.width), c);
}

function classAt(x, y) {
  const pal = paletteOf(state.model);
  if (!pal) return -1;
  const i = 4 * (y * canvas.width + x), d = state.image.data;
  return pal.findIndex((c) => c[0] === d[i] && c[1] === d[i + 1] && c[2] === d[i + 2]);
}

function restyle(x, y) {
  // Cycle the feature cluster of the object under (x, y): one edit per object.
  const mask = regionMask(x, y);
  const w = canvas.width;
  const cls = classAt(x, y);
  const counts = state.model.options.clusters || {};
  const k = Math.max(1, counts[String(cls)] || 1);
  const hit = state.edits.find((e) => mask[e.y * w + e.x]);
  if (hit) hit.cluster = (hit.cluster + 1) % k;
  else state.edits.push({ x, y, cluster: 1 % k });
  drawOverlay();
  setStatus(`object of class ${cls >= 0 ? cls : "?"}: cluster ${hit ? hit.cluster : 1 % k} of ${k}`);
}

function toPixel(ev) {
  const rect = canvas.getBoundingClientRect();
  return [(ev.clientX - rect.left) * canvas.width / rect.width, (ev.clientY - rect.top) * canvas.height / rect.height];
}

function paintColour() { return state.tool === "eraser" ? background() : state.colour; }

canvas.addEventListener("pointerdown", (ev) => {
  if (!state.model || state.tool === "pose") return;
  ev.preventDefault();
  const p = toPixel(ev);
  const x = Math.floor(p[0]), y = Math.floor(p[1]);
  if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return;
  if (state.tool === "restyle") { restyle(x, y); maybeLive(); return; }
  pushUndo();
  state.dirty = true;
  if (state.tool === "fill") { fill(x, y, paintColour()); render(); state.edits = []; drawOverlay(); maybeLive(); return; }
  state.drawing = true;
  state.last = p;
  canvas.setPointerCapture(ev.pointerId);
  stamp(p[0], p[1], paintColour());
  render();
});
canvas.addEventListener("pointermove", (ev) => {
  if (!state.drawing) return;
  const p = toPixel(ev);
  line(state.last, p, paintColour());
  state.last = p;
  render();
});
const endStroke = () => {
  if (!state.drawing) return;
  state.drawing = false;
  if (state.edits.length) { state.edits = []; drawOverlay(); }
  maybeLive();
};
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

// ------------------------------------------------------------------ overlay: edits and the pose skeleton
function drawOverlay() {
  overlay.textContent = "";
  const r = 1 / state.scale;
  for (const e of state.edits) {
    const c = document.createElementNS(SVG_NS, "circle");
    c.setAttribute("cx", e.x + 0.5); c.setAttribute("cy", e.y + 0.5); c.setAttribute("r", 6 * r);
    c.setAttribute("class", "edit"); c.setAttribute("stroke-width", 2 * r);
    overlay.appendChild(c);
    const t = document.createElementNS(SVG_NS, "text");
    t.setAttribute("x", e.x + 8 * r); t.setAttribute("y", e.y + 4 * r); t.setAttribute("class", "edit-label");
    t.setAttribute("font-size", 12 * r); t.setAttribute("stroke-width", 3 * r);
    t.textContent = `#${e.cluster}`;
    overlay.appendChild(t);
  }
  if (!state.pose) return;
  const limbs = (state.model.options.pose && state.model.options.pose.limbs && state.model.options.pose.limbs.length)
    ? state.model.options.pose.limbs
    : [[1, 2], [1, 5], [2, 3], [3, 4], [5, 6], [6, 7], [1, 8], [8, 9], [9, 10], [1, 11], [11, 12], [12, 13], [1, 0], [0, 14], [14, 16], [0, 15], [15, 17]];
  for (const [a, b] of limbs) {
    const pa = state.pose[a], pb = state.pose[b];
    if (!pa || !pb || pa[0] < 0 || pb[0] < 0) continue;
    const l = document.createElementNS(SVG_NS, "line");
    l.setAttribute("x1", pa[1]); l.setAttribute("y1", pa[0]); l.setAttribute("x2", pb[1]); l.setAttribute("y2", pb[0]);
    l.setAttribute("class", "limb"); l.setAttribute("stroke-width", 3 * r);
    overlay.appendChild(l);
  }
  state.pose.forEach((p, i) => {
    if (p[0] < 0) return;
    const c = document.createElementNS(SVG_NS, "circle");
    c.setAttribute("cx", p[1]); c.setAttribute("cy", p[0]); c.setAttribute("r", 5 * r);
    c.setAttribute("class", "joint"); c.setAttribute("stroke-width", 1.5 * r);
    c.dataset.joint = String(i);
    const names = state.model.options.pose && state.model.options.pose.keypoints;
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = names && names[i] ? names[i] : `joint ${i}`;
    c.appendChild(title);
    c.addEventListener("pointerdown", (ev) => { ev.preventDefault(); state.dragJoint = i; c.setPointerCapture(ev.pointerId); });
    c.addEventListener("pointermove", (ev) => {
      if (state.dragJoint !== i) return;
      const q = toPixel(ev);
      state.pose[i] = [Math.max(0, Math.min(canvas.height - 1, q[1])), Math.max(0, Math.min(canvas.width - 1, q[0]))];
      c.setAttribute("cx", state.pose[i][1]); c.setAttribute("cy", state.pose[i][0]);
    });
    c.addEventListener("pointerup", () => { state.dragJoint = -1; drawOverlay(); maybeLive(); });
    overlay.appendChild(c);
  });
}

// ------------------------------------------------------------------ upload
async function upload(file) {
  if (!file) return;
  let bmp;
  try {
    bmp = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch (e) {
    setStatus("the browser cannot show this file; it is sent to the server as it is", true);
    state.original = file; state.dirty = false;
    return;
  }
  if (state.maxPixels && bmp.width * bmp.height > state.maxPixels) {
    setStatus(`image of ${bmp.width}x${bmp.height} is larger than the server's limit of ${state.maxPixels} pixels`, true);
    return;
  }
  pushUndo();
  canvas.width = bmp.width; canvas.height = bmp.height;
  ctx.clearRect(0, 0, bmp.width, bmp.height);
  ctx.drawImage(bmp, 0, 0);
  const img = ctx.getImageData(0, 0, bmp.width, bmp.height);
  const pal = paletteOf(state.model);
  if (pal) {  // class ids stored as grey levels -> their palette colours, so painting on them works
    const d = img.data;
    const isPal = new Set(pal.map((c) => (c[0] << 16) | (c[1] << 8) | c[2]));
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] === d[i + 1] && d[i] === d[i + 2] && d[i] < pal.length && !isPal.has((d[i] << 16) | (d[i] << 8) | d[i])) {
        const c = pal[d[i]]; d[i] = c[0]; d[i + 1] = c[1]; d[i + 2] = c[2];
      }
      d[i + 3] = 255;
    }
  }
  state.image = img;
  state.original = file;
  state.dirty = false;
  state.edits = [];
  $("canvas-w").value = bmp.width; $("canvas-h").value = bmp.height;
  if (state.pose) {
    const m = state.model.options.pose && state.model.options.pose.default ? state.model.options.pose.default : DEFAULT_POSE;
    state.pose = m.map(([y, x]) => [y * bmp.height, x * bmp.width]);
  }
  render(); fitDisplay(); drawOverlay();
  setStatus(`loaded ${file.name || "image"} (${bmp.width}x${bmp.height})`);
  maybeLive();
}

// ------------------------------------------------------------------ translate
function canvasBlob() { return new Promise((resolve) => canvas.toBlob(resolve, "image/png")); }

function clearOutput() {
  const out = $("output");
  out.textContent = "";
  const p = document.createElement("p"); p.className = "muted"; p.id = "output-empty"; p.textContent = "The translation appears here.";
  out.appendChild(p);
  $("download").classList.add("disabled");
}

function maybeLive() { if ($("live").checked) translate(); }

async function translate() {
  if (!state.model) return;
  if (state.busy) { state.pending = true; return; }
  state.busy = true;
  $("translate").disabled = true;
  const t0 = performance.now();
  setStatus("translating…");
  try {
    const fd = new FormData();
    const blob = (!state.dirty && state.original) ? state.original : await canvasBlob();
    fd.append("image", blob, "input.png");
    fd.append("model", state.model.name);
    fd.append("seed", String(Math.max(0, parseInt($("seed").value || "0", 10) || 0)));
    const opts = state.model.options;
    if (opts.variant) fd.append("variant", $("variant").value || "all");
    if (opts.features && $("features").value) fd.append("features", $("features").value);
    if (opts.edits && state.edits.length) fd.append("edits", JSON.stringify(state.edits));
    if (state.pose) fd.append("pose", JSON.stringify(state.pose.map(([y, x]) => [Math.round(y * 10) / 10, Math.round(x * 10) / 10])));
    const r = await api("/v1/translate", { method: "POST", body: fd });
    if (!r.ok) {
      let msg = `${r.status} ${r.statusText}`;
      try { const e = await r.json(); msg = `${r.status}: ${e.error.message}`; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    const out = await r.blob();
    const k = parseInt(r.headers.get("X-Pairgan-Variants") || "0", 10);
    await showOutput(out, k);
    setStatus(`done in ${((performance.now() - t0) / 1000).toFixed(2)} s (server ${r.headers.get("X-Pairgan-Seconds")} s)`);
  } catch (e) {
    setStatus(String(e.message || e), true);
  } finally {
    state.busy = false;
    $("translate").disabled = false;
    if (state.pending) { state.pending = false; translate(); }
  }
}

async function showOutput(blob, k) {
  if (state.outputUrl) URL.revokeObjectURL(state.outputUrl);
  state.outputUrl = URL.createObjectURL(blob);
  const out = $("output");
  out.textContent = "";
  const dl = $("download");
  dl.href = state.outputUrl;
  dl.classList.remove("disabled");
  const width = canvas.getBoundingClientRect().width || canvas.width;
  if (k > 1) {
    const bmp = await createImageBitmap(blob);
    const w = bmp.width / k;
    for (let i = 0; i < k; i++) {
      const fig = document.createElement("figure");
      const c = document.createElement("canvas");
      c.width = w; c.height = bmp.height;
      c.className = "variant";
      c.getContext("2d").drawImage(bmp, i * w, 0, w, bmp.height, 0, 0, w, bmp.height);
      c.style.width = `${Math.round(Math.min(width, 280))}px`;
      const cap = document.createElement("figcaption"); cap.textContent = `variant ${i}`;
      fig.appendChild(c); fig.appendChild(cap); out.appendChild(fig);
    }
    const img = document.createElement("img");  // the whole strip, for tests and downloads
    img.id = "output-image"; img.className = "hidden"; img.alt = "all variants"; img.src = state.outputUrl;
    out.appendChild(img);
    return;
  }
  const img = document.createElement("img");
  img.id = "output-image";
  img.alt = "translated image";
  img.src = state.outputUrl;
  img.style.width = `${Math.round(width)}px`;
  await new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; out.appendChild(img); });
}

// ------------------------------------------------------------------ wiring
for (const b of document.querySelectorAll("[data-tool]")) b.addEventListener("click", () => setTool(b.dataset.tool));
$("brush-size").addEventListener("input", (e) => { state.brush = parseInt(e.target.value, 10); $("brush-size-value").textContent = e.target.value; });
$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", () => { pushUndo(); newCanvas(parseInt($("canvas-w").value, 10), parseInt($("canvas-h").value, 10)); drawOverlay(); });
$("upload").addEventListener("change", (e) => { upload(e.target.files[0]); e.target.value = ""; });
$("translate").addEventListener("click", translate);
$("model").addEventListener("change", (e) => selectModel(e.target.value));
$("free-colour").addEventListener("input", (e) => { state.colour = hexToRgb(e.target.value); if (state.tool === "eraser") setTool("brush"); });
$("features").addEventListener("change", maybeLive);
$("variant").addEventListener("change", maybeLive);
window.addEventListener("resize", () => { fitDisplay(); drawOverlay(); });
document.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
  if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); undo(); return; }
  const keys = { b: "brush", e: "eraser", f: "fill", r: "restyle" };
  if (keys[e.key] && !(e.key === "r" && $("tool-restyle").classList.contains("hidden"))) setTool(keys[e.key]);
  if (e.key === "Enter") translate();
});
$("origin").textContent = window.location.origin;
window.pairganEditor = { state, translate, selectModel, stamp, render };  // for tests and scripting
loadModels().catch((e) => setStatus(`cannot load models: ${e.message}`, true));
