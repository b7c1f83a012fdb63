// oiap mask editor: correct an object mask on a crop of its image with superpixels and a brush.
// Vanilla JS. The mask, the superpixel labels and the overlay are arrays over the crop's working grid
// (cfg.crop.width x cfg.crop.height); a click touches only the pixels of one superpixel through a
// per-superpixel pixel index built once, and the overlay is redrawn as one ImageData.
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("mask-config").textContent);
  const W = cfg.crop.width;
  const H = cfg.crop.height;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const canvas = $("mk-canvas");
  const photo = $("mk-photo");
  const statusEl = $("mk-status");
  const layers = $("mk-layers");
  const ctx = canvas.getContext("2d");
  canvas.width = W;
  canvas.height = H;
  const image = ctx.createImageData(W, H);
  const px = new Uint32Array(image.data.buffer);

  // Colours as little-endian RGBA words (ImageData is RGBA in memory; every platform that runs a browser is little-endian).
  const rgba = (r, g, b, a) => ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
  const FILL = rgba(236, 72, 153, 90);
  const OUTLINE = rgba(250, 204, 21, 255);
  const SP_EDGE = rgba(255, 255, 255, 70);

  // Open Images' Rotation (degrees counterclockwise) turns photo and mask together for display; the
  // grid stays the file's. [a, b, c, d]: a grid vector (x, y) is (a x + c y, b x + d y) on screen, and
  // the transpose turns it back (as ROT_M in editor.js).
  const ROT = ((Math.round((Number(cfg.rotation) || 0) / 90) % 4) + 4) % 4;
  const [RA, RB, RC, RD] = [[1, 0, 0, 1], [0, -1, 1, 0], [-1, 0, 0, -1], [0, 1, -1, 0]][ROT];
  if (ROT) layers.style.transform = `rotate(${-90 * ROT}deg)`;

  // ---- state -------------------------------------------------------------------------------------
  const mask = decodeRuns(cfg.runs, W * H);
  let labels = null; // Uint16Array, W*H
  let spStart = null; // Int32Array(n + 1): superpixel l owns spPix[spStart[l] .. spStart[l + 1])
  let spPix = null; // Int32Array(W*H): pixel indices grouped by superpixel
  let spEdge = null; // Uint8Array(W*H): 1 on a superpixel's border
  let showEdges = true;
  let tool = "superpixel"; // or "brush"
  let addMode = true; // "x" toggles; shift inverts while held
  let brush = 6; // radius in working pixels
  let undoStack = [];
  let redoStack = [];
  let stroke = null; // {value, flipped: []} while the pointer is down
  let lastPoint = null;
  let dirty = false;
  let saving = false;
  const ann = { id: cfg.annotation.id, version: cfg.annotation.version, origin_id: cfg.annotation.origin_id };
  const stats = { lastRedrawMs: null, lastClickMs: null, clicks: [] };

  function decodeRuns(runs, n) {
    // Row-major run lengths over the grid, starting with a run of 0s (possibly empty).
    const out = new Uint8Array(n);
    let i = 0;
    let v = 0;
    for (const r of runs) {
      if (v) out.fill(1, i, i + r);
      i += r;
      v ^= 1;
    }
    return out;
  }

  function encodeRuns(m) {
    const runs = [];
    let v = 0;
    let start = 0;
    for (let i = 0; i < m.length; i++) {
      if (m[i] !== v) {
        runs.push(i - start);
        start = i;
        v ^= 1;
      }
    }
    runs.push(m.length - start);
    return runs;
  }

  // ---- superpixels -------------------------------------------------------------------------------
  async function loadLabels() {
    const res = await fetch(cfg.labels_url, { credentials: "same-origin" });
    if (!res.ok) throw new Error(`superpixels: ${res.status} ${await res.text()}`);
    const inflated = res.body.pipeThrough(new DecompressionStream("deflate"));
    const buf = await new Response(inflated).arrayBuffer();
    if (buf.byteLength !== W * H * 2) throw new Error(`superpixels: ${buf.byteLength} bytes for a ${W}x${H} crop`);
    labels = new Uint16Array(buf);
    buildIndex();
  }

  function buildIndex() {
    // A counting sort of the pixels by label: the index a click walks instead of the whole grid.
    let n = 0;
    for (let i = 0; i < labels.length; i++) if (labels[i] >= n) n = labels[i] + 1;
    spStart = new Int32Array(n + 1);
    for (let i = 0; i < labels.length; i++) spStart[labels[i] + 1]++;
    for (let l = 0; l < n; l++) spStart[l + 1] += spStart[l];
    const fillAt = spStart.slice(0, n);
    spPix = new Int32Array(labels.length);
    for (let i = 0; i < labels.length; i++) spPix[fillAt[labels[i]]++] = i;
    spEdge = new Uint8Array(labels.length);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const i = y * W + x;
        const l = labels[i];
        if ((x + 1 < W && labels[i + 1] !== l) || (y + 1 < H && labels[i + W] !== l)) spEdge[i] = 1;
      }
    }
  }

  // ---- drawing -----------------------------------------------------------------------------------
  function redraw() {
    const t0 = performance.now();
    const edges = showEdges && spEdge;
    for (let y = 0; y < H; y++) {
      const row = y * W;
      for (let x = 0; x < W; x++) {
        const i = row + x;
        if (mask[i]) {
          // The outline: a mask pixel with a 4-neighbour outside the mask (or at the crop's edge).
          const inner =
            x > 0 && x + 1 < W && y > 0 && y + 1 < H && mask[i - 1] && mask[i + 1] && mask[i - W] && mask[i + W];
          px[i] = inner ? FILL : OUTLINE;
        } else {
          px[i] = edges && edges[i] ? SP_EDGE : 0;
        }
      }
    }
    ctx.putImageData(image, 0, 0);
    stats.lastRedrawMs = performance.now() - t0;
    updateInfo();
  }

  function area() {
    let a = 0;
    for (let i = 0; i < mask.length; i++) a += mask[i];
    return a;
  }

  function updateInfo() {
    $("mk-area").textContent = `${area()} px`;
    $("mk-mode").textContent = addMode ? "add" : "remove";
    $("mk-mode-btn").classList.toggle("remove", !addMode);
    $("mk-tool-sp").classList.toggle("active", tool === "superpixel");
    $("mk-tool-brush").classList.toggle("active", tool === "brush");
    $("mk-brush-size").value = String(brush);
    $("mk-brush-label").textContent = `${brush * 2 + 1} px`;
    $("mk-undo").disabled = !undoStack.length;
    $("mk-redo").disabled = !redoStack.length;
    $("mk-save").classList.toggle("dirty", dirty);
  }

  function setStatus(text, cls) {
    statusEl.textContent = text;
    statusEl.className = "ed-status" + (cls ? " " + cls : "");
  }

  // ---- edits -------------------------------------------------------------------------------------
  function set(i, value) {
    if (mask[i] !== value) {
      mask[i] = value;
      stroke.flipped.push(i);
    }
  }

  function paintSuperpixel(x, y) {
    if (!labels) return;
    const l = labels[y * W + x];
    if (stroke.labels.has(l)) return;
    stroke.labels.add(l);
    for (let k = spStart[l], end = spStart[l + 1]; k < end; k++) set(spPix[k], stroke.value);
  }

  function paintDisc(cx, cy) {
    const r = brush;
    const r2 = (r + 0.5) * (r + 0.5);
    for (let y = Math.max(0, cy - r); y <= Math.min(H - 1, cy + r); y++) {
      for (let x = Math.max(0, cx - r); x <= Math.min(W - 1, cx + r); x++) {
        if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r2) set(y * W + x, stroke.value);
      }
    }
  }

  function paintAt(x, y) {
    if (tool === "superpixel") paintSuperpixel(x, y);
    else paintDisc(x, y);
  }

  function paintLine(a, b) {
    // Every grid point between two pointer events, so a fast drag leaves no gaps.
    const steps = Math.max(Math.abs(b.x - a.x), Math.abs(b.y - a.y), 1);
    for (let s = 1; s <= steps; s++) {
      paintAt(Math.round(a.x + ((b.x - a.x) * s) / steps), Math.round(a.y + ((b.y - a.y) * s) / steps));
    }
  }

  function commit(flipped) {
    if (!flipped.length) return;
    undoStack.push(Int32Array.from(flipped));
    redoStack = [];
    markDirty();
  }

  function markDirty() {
    dirty = true;
    setStatus("Unsaved changes");
  }

  function flip(step) {
    for (let k = 0; k < step.length; k++) mask[step[k]] ^= 1;
  }

  function undo() {
    const step = undoStack.pop();
    if (!step) return;
    flip(step);
    redoStack.push(step);
    markDirty();
    redraw();
  }

  function redo() {
    const step = redoStack.pop();
    if (!step) return;
    flip(step);
    undoStack.push(step);
    markDirty();
    redraw();
  }

  function fillHoles() {
    // Background pixels not reachable from the crop's border through background are holes.
    const seen = new Uint8Array(W * H);
    const queue = new Int32Array(W * H);
    let head = 0;
    let tail = 0;
    const push = (i) => {
      if (!mask[i] && !seen[i]) {
        seen[i] = 1;
        queue[tail++] = i;
      }
    };
    for (let x = 0; x < W; x++) {
      push(x);
      push((H - 1) * W + x);
    }
    for (let y = 0; y < H; y++) {
      push(y * W);
      push(y * W + W - 1);
    }
    while (head < tail) {
      const i = queue[head++];
      const x = i % W;
      if (x > 0) push(i - 1);
      if (x + 1 < W) push(i + 1);
      if (i >= W) push(i - W);
      if (i + W < W * H) push(i + W);
    }
    stroke = { value: 1, flipped: [], labels: new Set() };
    for (let i = 0; i < W * H; i++) if (!mask[i] && !seen[i]) set(i, 1);
    const n = stroke.flipped.length;
    commit(stroke.flipped);
    stroke = null;
    redraw();
    setStatus(n ? `Filled ${n} px of holes` : "No holes to fill");
  }

  // ---- pointer -----------------------------------------------------------------------------------
  function screenFrame() {
    // The canvas's centre on screen and its screen pixels per grid pixel (its box is turned by ROT).
    const r = canvas.getBoundingClientRect();
    return { cx: r.left + r.width / 2, cy: r.top + r.height / 2, k: (ROT % 2 ? r.height : r.width) / W };
  }

  function gridPoint(ev) {
    const f = screenFrame();
    const X = (ev.clientX - f.cx) / f.k;
    const Y = (ev.clientY - f.cy) / f.k;
    const x = Math.floor(RA * X + RB * Y + W / 2);
    const y = Math.floor(RC * X + RD * Y + H / 2);
    return { x: Math.min(W - 1, Math.max(0, x)), y: Math.min(H - 1, Math.max(0, y)) };
  }

  function toScreen(x, y) {
    // The screen point of a grid pixel's centre.
    const f = screenFrame();
    const vx = x + 0.5 - W / 2;
    const vy = y + 0.5 - H / 2;
    return { x: f.cx + (RA * vx + RC * vy) * f.k, y: f.cy + (RB * vx + RD * vy) * f.k };
  }

  canvas.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    const t0 = performance.now();
    canvas.setPointerCapture(ev.pointerId);
    const p = gridPoint(ev);
    stroke = { value: addMode !== ev.shiftKey ? 1 : 0, flipped: [], labels: new Set() };
    lastPoint = p;
    paintAt(p.x, p.y);
    redraw();
    stats.lastClickMs = performance.now() - t0;
    stats.clicks.push(stats.lastClickMs);
  });

  canvas.addEventListener("pointermove", (ev) => {
    const p = gridPoint(ev);
    moveCursor(ev, p);
    if (!stroke) return;
    const before = stroke.flipped.length;
    paintLine(lastPoint, p);
    lastPoint = p;
    if (stroke.flipped.length !== before) redraw();
  });

  function endStroke() {
    if (!stroke) return;
    commit(stroke.flipped);
    stroke = null;
    redraw();
  }
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);
  canvas.addEventListener("pointerleave", () => ($("mk-cursor").hidden = true));

  function moveCursor(ev, p) {
    // The brush's footprint follows the pointer, in screen pixels.
    const c = $("mk-cursor");
    if (tool !== "brush") {
      c.hidden = true;
      return;
    }
    const d = (2 * brush + 1) * screenFrame().k;
    const at = toScreen(p.x, p.y);
    const stage = $("mk-stage").getBoundingClientRect();
    c.hidden = false;
    c.style.width = c.style.height = `${d}px`;
    c.style.left = `${at.x - stage.left - d / 2}px`;
    c.style.top = `${at.y - stage.top - d / 2}px`;
  }

  // ---- layout ------------------------------------------------------------------------------------
  function fit() {
    // The crop as large as the stage allows, its aspect kept; pixels stay square.
    const stage = $("mk-stage");
    const [DW, DH] = ROT % 2 ? [H, W] : [W, H];
    const k = Math.min(stage.clientWidth / DW, stage.clientHeight / DH);
    for (const el of [canvas, photo]) {
      el.style.width = `${W * k}px`;
      el.style.height = `${H * k}px`;
    }
  }
  window.addEventListener("resize", fit);

  // ---- saving ------------------------------------------------------------------------------------
  async function save() {
    if (saving) return;
    saving = true;
    setStatus("Saving…");
    const body = {
      annotation_id: ann.id,
      version: ann.version,
      rect: cfg.crop.rect,
      size: [W, H],
      runs: encodeRuns(mask),
    };
    let res;
    let data;
    try {
      res = await fetch(cfg.save_url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
        body: JSON.stringify(body),
      });
      data = await res.json();
    } catch (e) {
      saving = false;
      setStatus(`Not saved: ${e}`, "error");
      return;
    }
    saving = false;
    if (res.status === 409) {
      // Nothing was written; the edits stay here, so nothing is lost.
      setStatus(`Not saved: ${data.error}`, "conflict");
      $("mk-message").textContent = data.error;
      $("mk-message").hidden = false;
      $("mk-reload").hidden = false;
      return;
    }
    if (!res.ok) {
      setStatus(`Not saved: ${data.error || res.status}`, "error");
      return;
    }
    ann.id = data.id;
    ann.version = data.version;
    ann.origin_id = data.origin_id;
    dirty = false;
    $("mk-message").hidden = true;
    setStatus(data.message, "ok");
    updateInfo();
  }

  // ---- keys and buttons --------------------------------------------------------------------------
  function setTool(t) {
    tool = t;
    $("mk-cursor").hidden = true;
    updateInfo();
  }

  function setBrush(r) {
    brush = Math.max(0, Math.min(64, r));
    updateInfo();
  }

  const help = $("mk-help");
  document.addEventListener("keydown", (ev) => {
    if (ev.target.closest && ev.target.closest("input, textarea, select")) return;
    const k = ev.key;
    if ((ev.ctrlKey || ev.metaKey) && (k === "z" || k === "Z")) {
      ev.preventDefault();
      if (ev.shiftKey) redo();
      else undo();
      return;
    }
    if ((ev.ctrlKey || ev.metaKey) && k === "y") {
      ev.preventDefault();
      redo();
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (k === "s") save();
    else if (k === "x") {
      addMode = !addMode;
      updateInfo();
    } else if (k === "p") setTool("superpixel");
    else if (k === "r") setTool("brush");
    else if (k === "[") setBrush(brush - 1);
    else if (k === "]") setBrush(brush + 1);
    else if (k === "h") fillHoles();
    else if (k === "e") {
      showEdges = !showEdges;
      redraw();
    } else if (k === "b" && $("mk-back")) $("mk-back").click();
    else if (k === "?") help.hidden = !help.hidden;
    else if (k === "Escape") help.hidden = true;
    else return;
    ev.preventDefault();
  });

  $("mk-save").addEventListener("click", save);
  $("mk-undo").addEventListener("click", undo);
  $("mk-redo").addEventListener("click", redo);
  $("mk-fill").addEventListener("click", fillHoles);
  $("mk-mode-btn").addEventListener("click", () => {
    addMode = !addMode;
    updateInfo();
  });
  $("mk-tool-sp").addEventListener("click", () => setTool("superpixel"));
  $("mk-tool-brush").addEventListener("click", () => setTool("brush"));
  $("mk-brush-size").addEventListener("input", (ev) => setBrush(Number(ev.target.value)));
  $("mk-edges").addEventListener("click", () => {
    showEdges = !showEdges;
    redraw();
  });
  $("mk-help-btn").addEventListener("click", () => (help.hidden = !help.hidden));
  $("mk-reload").addEventListener("click", () => {
    if (!dirty || window.confirm("Drop your unsaved edits and load the mask as saved now?")) {
      window.location.reload();
    }
  });
  window.addEventListener("beforeunload", (ev) => {
    if (dirty) ev.preventDefault();
  });

  // For tests and the console: the grid, the mask and the timings.
  window.oiapMask = {
    ready: false,
    stats,
    annotation: () => ({ ...ann }),
    size: () => [W, H],
    label: (x, y) => labels[y * W + x],
    labels: () => Array.from(labels),
    superpixel: (l) => Array.from(spPix.subarray(spStart[l], spStart[l + 1])),
    maskSum: area,
    maskAt: (x, y) => mask[y * W + x],
    runs: () => encodeRuns(mask),
    toScreen,
    rotation: ROT * 90,
    isDirty: () => dirty,
  };

  fit();
  redraw();
  // The first request for a crop computes its superpixels (a second or two for a 1024 px crop).
  setStatus("Loading superpixels…");
  loadLabels()
    .then(() => {
      redraw();
      window.oiapMask.ready = true;
      setStatus(`${spStart.length - 1} superpixels`);
    })
    .catch((e) => setStatus(String(e), "error"));
})();
