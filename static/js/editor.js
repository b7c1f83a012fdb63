// oiap editor: face boxes and landmark points drawn in SVG, edited with mouse and keyboard.
// Vanilla JS, no framework. The SVG viewBox is in image pixels, so an element's coordinates are the
// image's pixel coordinates; the server stores them normalised to [0, 1].
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("editor-config").textContent);
  const W = cfg.image.width;
  const H = cfg.image.height;
  const N = cfg.n_points;
  const SVG = "http://www.w3.org/2000/svg";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  const $ = (id) => document.getElementById(id);
  const stage = $("stage");
  const svg = $("canvas");
  const layer = $("faces");
  const overlay = $("overlay");
  const tip = $("ed-tip");
  const statusEl = $("ed-status");

  // Object boxes carry a class (an Open Images MID) chosen from the page's class list.
  const classList = document.getElementById("ed-class-list");
  const CLASSES = !!classList;
  const nameOf = new Map();
  const labelOf = new Map();
  if (classList) {
    for (const o of classList.options) {
      nameOf.set(o.dataset.label, o.value);
      labelOf.set(o.value.toLowerCase(), o.dataset.label);
    }
  }
  const className = (label) => (label ? nameOf.get(label) || label : "no class");
  let newLabel = cfg.default_label || null; // the class a newly drawn box gets
  const NOUN = (cfg.noun && cfg.noun[0]) || "face";

  const POINT_R = 4; // screen pixels
  const HANDLE = 7; // screen pixels
  const MIN_BOX = 2; // image pixels

  // ---- state -------------------------------------------------------------------------------------
  // geom is what undo and redo restore: per face its box and points in image pixels and a deleted
  // flag. meta holds what the server knows (ids, versions), which an undo must not roll back.
  let geom = [];
  const meta = new Map();
  const baseline = new Map(); // key -> geometry as last stored, to find what changed
  let sel = { key: null, pt: null };
  let undoStack = [];
  let redoStack = [];
  let lastTag = null;
  let lastTagAt = 0;
  const view = { zoom: 1, x: 0, y: 0 };
  let mode = null; // "add" while a new box is to be drawn
  let spaceDown = false;
  let drag = null;
  let saving = false;
  let nextNew = 1;
  let hover = null;

  function toPx(f) {
    return {
      key: f.key,
      box: f.box ? [f.box[0] * W, f.box[1] * H, f.box[2] * W, f.box[3] * H] : null,
      points: f.points ? f.points.map((p) => [p[0] * W, p[1] * H, p.length > 2 ? p[2] : 1]) : null,
      deleted: false,
      label: f.label || null,
    };
  }

  function geomString(g) {
    return JSON.stringify([g.box, g.points, g.deleted, CLASSES ? g.label || null : null]);
  }

  // Replace the whole state with faces as the server has them (at start, and to reload after a conflict).
  function loadFaces(faces) {
    geom = [];
    meta.clear();
    baseline.clear();
    undoStack = [];
    redoStack = [];
    for (const f of faces) {
      const g = toPx(f);
      geom.push(g);
      meta.set(f.key, {
        id: f.id, origin_id: f.origin_id, version: f.version, source: f.source,
        set_name: f.set_name, rating: f.rating, score: f.score, gone: false,
      });
      baseline.set(f.key, geomString(g));
    }
  }
  loadFaces(cfg.faces);

  const face = (key) => geom.find((g) => g.key === key && !g.deleted) || null;
  const selFace = () => (sel.key ? face(sel.key) : null);
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  function changedFaces() {
    return geom.filter((g) => {
      const b = baseline.get(g.key);
      if (b === undefined) return !g.deleted; // new: only when it still exists
      if (meta.get(g.key).gone) return !g.deleted; // deleted on the server, brought back by undo
      return b !== geomString(g);
    });
  }

  // ---- undo / redo -------------------------------------------------------------------------------
  function snapshot() {
    return JSON.stringify({ geom, sel });
  }

  function restore(s) {
    const o = JSON.parse(s);
    geom = o.geom;
    // A face saved after this snapshot was taken (an added face, then saved, then undone) is stored
    // on the server: undoing its addition deletes it there at the next save.
    for (const [key, m] of meta) {
      if ((m.id || m.origin_id) && !m.gone && !geom.some((g) => g.key === key)) {
        geom.push({ key, box: null, points: null, deleted: true });
      }
    }
    sel = face(o.sel.key) ? o.sel : { key: null, pt: null };
  }

  // Nudges of the same target within a second make one undo step, not one per key press.
  function pushUndo(tag) {
    const t = Date.now();
    if (tag && tag === lastTag && t - lastTagAt < 1000) {
      lastTagAt = t;
      return;
    }
    lastTag = tag || null;
    lastTagAt = t;
    undoStack.push(snapshot());
    if (undoStack.length > 500) undoStack.shift();
    redoStack = [];
  }

  function undo() {
    if (!undoStack.length) return status("Nothing to undo");
    redoStack.push(snapshot());
    restore(undoStack.pop());
    lastTag = null;
    status("Undone");
    render();
  }

  function redo() {
    if (!redoStack.length) return status("Nothing to redo");
    undoStack.push(snapshot());
    restore(redoStack.pop());
    lastTag = null;
    status("Redone");
    render();
  }

  // ---- view: rotation, zoom and pan -------------------------------------------------------------
  // Open Images' Rotation (0, 90, 180, 270: degrees counterclockwise) turns the photo and its faces
  // together for display; edits stay in the stored pixel grid. ROT_M maps image to display
  // coordinates as an SVG matrix(a b c d e f); the view (zoom, x, y) is in display coordinates.
  const ROT = (((Math.round((Number(cfg.image.rotation) || 0) / 90) % 4) + 4) % 4);
  const ROT_M = [[1, 0, 0, 1, 0, 0], [0, -1, 1, 0, 0, W], [-1, 0, 0, -1, W, H], [0, 1, -1, 0, H, 0]][ROT];
  const DW = ROT % 2 ? H : W;
  const DH = ROT % 2 ? W : H;
  $("world").setAttribute("transform", `matrix(${ROT_M.join(" ")})`);

  function toDisplay(x, y) {
    const [a, b, c, d, e, f] = ROT_M;
    return { x: a * x + c * y + e, y: b * x + d * y + f };
  }

  // A display vector back to an image vector: the inverse of a rotation is its transpose.
  function vecToImage(dx, dy) {
    const [a, b, c, d] = ROT_M;
    return { x: a * dx + b * dy, y: c * dx + d * dy };
  }

  function fromDisplay(X, Y) {
    return vecToImage(X - ROT_M[4], Y - ROT_M[5]);
  }

  function stageSize() {
    const r = svg.getBoundingClientRect();
    return { w: r.width || 1, h: r.height || 1, left: r.left, top: r.top };
  }

  function toDisplayPoint(e) {
    const s = stageSize();
    return { x: view.x + (e.clientX - s.left) / view.zoom, y: view.y + (e.clientY - s.top) / view.zoom };
  }

  function toImage(e) {
    const p = toDisplayPoint(e);
    return fromDisplay(p.x, p.y);
  }

  function fitZoom() {
    const s = stageSize();
    return Math.min(s.w / DW, s.h / DH);
  }

  function setView(zoom, cx, cy) {
    // Centre the image point (cx, cy) at the given zoom.
    const s = stageSize();
    const c = toDisplay(cx, cy);
    view.zoom = clamp(zoom, Math.min(fitZoom(), 1) * 0.25, 64);
    view.x = c.x - s.w / 2 / view.zoom;
    view.y = c.y - s.h / 2 / view.zoom;
    render();
  }

  function viewCentre() {
    const s = stageSize();
    return fromDisplay(view.x + s.w / 2 / view.zoom, view.y + s.h / 2 / view.zoom);
  }

  function fitImage() {
    setView(fitZoom() * 0.98, W / 2, H / 2);
  }

  function zoomToFace(g) {
    if (!g || !g.box) return fitImage();
    const s = stageSize();
    const [x0, y0, x1, y1] = g.box;
    let bw = Math.max(x1 - x0, 8);
    let bh = Math.max(y1 - y0, 8);
    if (ROT % 2) [bw, bh] = [bh, bw];
    setView(Math.min(s.w / (bw * 2), s.h / (bh * 2)), (x0 + x1) / 2, (y0 + y1) / 2);
  }

  function zoomAbout(factor, e) {
    tip.hidden = true;
    const p = toDisplayPoint(e);
    const s = stageSize();
    view.zoom = clamp(view.zoom * factor, Math.min(fitZoom(), 1) * 0.25, 64);
    view.x = p.x - (e.clientX - s.left) / view.zoom;
    view.y = p.y - (e.clientY - s.top) / view.zoom;
    render();
  }

  function layout() {
    // The stage takes the window's height below it, so the page never scrolls on a laptop screen.
    const top = stage.getBoundingClientRect().top + window.scrollY;
    const h = Math.max(240, window.innerHeight - top - 8);
    stage.style.height = h + "px";
    document.querySelector(".ed-side").style.maxHeight = h + "px";
  }

  // ---- drawing -----------------------------------------------------------------------------------
  let frame = 0;
  function render() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function el(name, attrs, parent) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function centroid(points) {
    let x = 0;
    let y = 0;
    for (const p of points) {
      x += p[0];
      y += p[1];
    }
    return [x / points.length, y / points.length];
  }

  function extent(points) {
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  }

  function knobs(g) {
    // Where the rotate and scale handles of the point group sit, in image pixels.
    const [x0, y0, x1, y1] = extent(g.points);
    const c = centroid(g.points);
    const off = 22 / view.zoom;
    return { c, rotate: [c[0], y0 - off], scale: [x1 + off * 0.6, y1 + off * 0.6], top: [c[0], y0] };
  }

  function faceClass(g) {
    const m = meta.get(g.key) || {};
    const cls = ["face", m.source === "human" ? "human" : "machine"];
    if (m.rating === "bad" && m.source !== "human") cls.push("rated-bad");
    if (g.key === sel.key) cls.push("selected");
    return cls.join(" ");
  }

  // One face's SVG group. Point radii come from the CSS variables --pr and --pr-current set on the
  // group, so a zoom changes two properties per face instead of rebuilding every point.
  function buildFace(g, cls) {
    const selected = g.key === sel.key;
    const grp = el("g", { class: cls, "data-key": g.key });
    const z = view.zoom;
    if (g.box) {
      const [x0, y0, x1, y1] = g.box;
      el("rect", { class: "box", x: x0, y: y0, width: x1 - x0, height: y1 - y0, "data-face": g.key, "data-h": "move" }, grp);
      if (CLASSES) {
        // Its size follows the zoom through --fs (drawFace), like the points' radius.
        el("text", { class: "cls", x: x0, y: y0 }, grp).textContent = className(g.label);
      }
    }
    if (g.points) {
      for (const [idx, closed] of cfg.lines) {
        const pts = idx.map((i) => g.points[i][0] + "," + g.points[i][1]).join(" ");
        el(closed ? "polygon" : "polyline", { class: "line", points: pts }, grp);
      }
      const order = g.points.map((_, i) => i);
      if (selected && sel.pt != null) order.push(order.splice(sel.pt, 1)[0]); // current point on top
      for (const i of order) {
        const p = g.points[i];
        const c = ["pt"];
        if (p[2] === 0) c.push("occluded");
        if (selected && i === sel.pt) c.push("current");
        if (hover && hover.key === g.key && hover.pt === i) c.push("hover");
        el("circle", { class: c.join(" "), cx: p[0], cy: p[1], "data-face": g.key, "data-pt": i }, grp);
      }
    }
    if (selected && g.box) {
      const [x0, y0, x1, y1] = g.box;
      const xm = (x0 + x1) / 2;
      const ym = (y0 + y1) / 2;
      const hs = HANDLE / z;
      const spots = { nw: [x0, y0], n: [xm, y0], ne: [x1, y0], e: [x1, ym], se: [x1, y1], s: [xm, y1], sw: [x0, y1], w: [x0, ym] };
      for (const h in spots) {
        const [x, y] = spots[h];
        el("rect", { class: "handle " + h, x: x - hs / 2, y: y - hs / 2, width: hs, height: hs, "data-face": g.key, "data-h": h }, grp);
      }
    }
    if (selected && g.points) {
      const k = knobs(g);
      el("line", { class: "knob-line", x1: k.top[0], y1: k.top[1], x2: k.rotate[0], y2: k.rotate[1] }, grp);
      el("circle", { class: "knob rotate", cx: k.rotate[0], cy: k.rotate[1], r: 6 / z, "data-face": g.key, "data-h": "rotate" }, grp);
      el("circle", { class: "knob scale", cx: k.scale[0], cy: k.scale[1], r: 6 / z, "data-face": g.key, "data-h": "scale" }, grp);
    }
    return grp;
  }

  // Each face's group is rebuilt only when what it shows changed, so a drag redraws one face.
  const drawn = new Map(); // key -> {el, sig, r}

  function drawFace(g) {
    const selected = g.key === sel.key;
    const cls = faceClass(g);
    let sig = cls + geomString(g);
    if (selected) sig += `|${sel.pt}|${view.zoom}`;
    if (hover && hover.key === g.key) sig += `|h${hover.pt}`;
    let d = drawn.get(g.key);
    if (!d || d.sig !== sig) {
      const grp = buildFace(g, cls);
      if (d) {
        if (drawCursor === d.el) drawCursor = grp;
        d.el.replaceWith(grp);
      }
      d = { el: grp, sig, r: null };
      drawn.set(g.key, d);
    }
    // Points shrink on a face that is small on screen, so its 68 points do not hide one another.
    const faceW = g.box ? (g.box[2] - g.box[0]) * view.zoom : 200;
    const r = clamp(faceW / 45, 1.5, POINT_R) / view.zoom;
    if (d.r !== r) {
      d.el.style.setProperty("--pr", r + "px");
      d.el.style.setProperty("--pr-current", r + 1.5 / view.zoom + "px");
      if (CLASSES) d.el.style.setProperty("--fs", 13 / view.zoom + "px");
      d.r = r;
    }
    // Keep document order = drawing order, moving a group only when it is out of place.
    if (drawCursor !== d.el) layer.insertBefore(d.el, drawCursor);
    else drawCursor = drawCursor.nextSibling;
  }
  let drawCursor = null;

  function draw() {
    frame = 0;
    const s = stageSize();
    svg.setAttribute("viewBox", `${view.x} ${view.y} ${s.w / view.zoom} ${s.h / view.zoom}`);
    svg.classList.toggle("pixelated", view.zoom >= 3);
    const live = new Set();
    drawCursor = layer.firstChild;
    for (const g of geom) {
      if (g.deleted || g.key === sel.key) continue;
      drawFace(g);
      live.add(g.key);
    }
    const cur = selFace();
    if (cur) {
      drawFace(cur); // the selected face on top of the others
      live.add(cur.key);
    }
    for (const [key, d] of drawn) {
      if (!live.has(key)) {
        d.el.remove();
        drawn.delete(key);
      }
    }
    overlay.replaceChildren();
    if (drag && drag.type === "draw") {
      const b = normBox(drag.start, drag.cur);
      el("rect", { class: "drawing", x: b[0], y: b[1], width: b[2] - b[0], height: b[3] - b[1] }, overlay);
    }
    // The side panel compares every face with its stored state: not on every frame of a drag.
    if (!drag || drag.type === "pan" || drag.type === "draw") panel();
  }

  function faceLabel(g) {
    const text = faceText(g);
    return CLASSES ? `${className(g.label)}: ${text}` : text;
  }

  function faceText(g) {
    const m = meta.get(g.key);
    if (m.id) return `human #${m.id} v${m.version}` + (m.origin_id ? ` (corrects #${m.origin_id})` : "");
    if (m.origin_id) {
      const score = m.score != null ? ` score ${Number(m.score).toFixed(2)}` : "";
      return `${m.source} #${m.origin_id}${score}` + (m.rating ? ` (rated ${m.rating})` : "");
    }
    return `new ${NOUN}`;
  }

  function panel() {
    const changed = new Set(changedFaces().map((g) => g.key));
    const list = $("ed-faces");
    list.replaceChildren();
    for (const g of geom) {
      if (g.deleted) continue;
      const li = document.createElement("li");
      li.dataset.key = g.key;
      li.textContent = faceLabel(g) + " ";
      if (changed.has(g.key)) {
        const u = document.createElement("span");
        u.className = "unsaved";
        u.textContent = "unsaved";
        li.appendChild(u);
      }
      if (g.key === sel.key) li.className = "selected";
      list.appendChild(li);
    }
    const nDeleted = geom.filter((g) => g.deleted && changed.has(g.key)).length;
    const nDirty = changed.size;
    const save = $("ed-save");
    save.textContent = nDirty ? `Save (${nDirty})` : "Save";
    save.classList.toggle("dirty", nDirty > 0);
    if (nDeleted) {
      const li = document.createElement("li");
      li.textContent = `${nDeleted} deleted, unsaved`;
      li.className = "unsaved";
      list.appendChild(li);
    }
    $("ed-undo").disabled = !undoStack.length;
    $("ed-redo").disabled = !redoStack.length;
    $("ed-delete").disabled = !selFace();
    $("ed-occluded").disabled = !(selFace() && sel.pt != null);
    $("ed-add").classList.toggle("active", mode === "add");
    const g = selFace();
    const classInput = $("ed-class");
    if (classInput && document.activeElement !== classInput) {
      // The chooser shows the selected box's class, else the class the next new box gets.
      classInput.value = className(g ? g.label : newLabel);
    }
    const pointEl = $("ed-point");
    if (g && sel.pt != null && g.points) {
      const p = g.points[sel.pt];
      pointEl.textContent = `${cfg.names[sel.pt]}${p[2] === 0 ? " — occluded" : ""} at ${p[0].toFixed(1)}, ${p[1].toFixed(1)}`;
    } else {
      pointEl.textContent = g
        ? g.points ? "Face selected; click a point to select it." : `${CLASSES ? className(g.label) + " box" : "Box"} selected.`
        : "No point selected.";
    }
  }

  function status(text, kind) {
    // The toolbar line never wraps (the stage must not move under the pointer), so a long
    // message is cut there and shown whole in the side panel.
    statusEl.textContent = text;
    statusEl.title = text;
    statusEl.className = "ed-status" + (kind ? " " + kind : "");
    const msg = $("ed-message");
    msg.textContent = kind === "error" || kind === "conflict" ? text : "";
    msg.hidden = !msg.textContent;
  }

  // ---- edits -------------------------------------------------------------------------------------
  function clampPoint(p) {
    p[0] = clamp(p[0], 0, W);
    p[1] = clamp(p[1], 0, H);
    return p;
  }

  function normBox(a, b) {
    return [Math.min(a.x, b.x), Math.min(a.y, b.y), Math.max(a.x, b.x), Math.max(a.y, b.y)].map((v, i) => clamp(v, 0, i % 2 ? H : W));
  }

  function transformPoints(g, orig, c, angle, scale) {
    const cos = Math.cos(angle) * scale;
    const sin = Math.sin(angle) * scale;
    g.points = orig.map((p) => {
      const dx = p[0] - c[0];
      const dy = p[1] - c[1];
      return clampPoint([c[0] + cos * dx - sin * dy, c[1] + sin * dx + cos * dy, p[2]]);
    });
  }

  function select(key, pt) {
    sel = { key, pt: pt == null ? null : pt };
    render();
  }

  function nudge(sx, sy) {
    // Arrow keys move on screen; in a rotated view that is another direction in the image.
    const { x: dx, y: dy } = vecToImage(sx, sy);
    const g = selFace();
    if (!g) return status("Select a point or a face first");
    if (sel.pt != null && g.points) {
      pushUndo(`nudge:${g.key}:${sel.pt}`);
      const p = g.points[sel.pt];
      p[0] = clamp(p[0] + dx, 0, W);
      p[1] = clamp(p[1] + dy, 0, H);
    } else {
      pushUndo(`nudge:${g.key}`);
      moveFace(g, { box: g.box && g.box.slice(), points: g.points && g.points.map((p) => p.slice()) }, dx, dy);
    }
    render();
  }

  function moveFace(g, orig, dx, dy) {
    if (orig.box) {
      dx = clamp(dx, -orig.box[0], W - orig.box[2]);
      dy = clamp(dy, -orig.box[1], H - orig.box[3]);
      g.box = [orig.box[0] + dx, orig.box[1] + dy, orig.box[2] + dx, orig.box[3] + dy];
    }
    if (orig.points) g.points = orig.points.map((p) => clampPoint([p[0] + dx, p[1] + dy, p[2]]));
  }

  function transformKey(angleDeg, scale) {
    const g = selFace();
    if (!g || !g.points) return status("Select a face with points first");
    pushUndo(`transform:${g.key}`);
    transformPoints(g, g.points.map((p) => p.slice()), centroid(g.points), (angleDeg * Math.PI) / 180, scale);
    render();
  }

  function toggleOccluded() {
    const g = selFace();
    if (!g || sel.pt == null || !g.points) return status("Select a point first");
    pushUndo();
    const p = g.points[sel.pt];
    p[2] = p[2] === 0 ? 1 : 0;
    status(`${cfg.names[sel.pt]}: ${p[2] === 0 ? "occluded" : "visible"}`);
    render();
  }

  function deleteFace() {
    const g = selFace();
    if (!g) return status("Select a face to delete");
    pushUndo();
    g.deleted = true;
    sel = { key: null, pt: null };
    status(`${NOUN[0].toUpperCase() + NOUN.slice(1)} deleted (save to keep it deleted; ctrl+z brings it back)`);
    render();
  }

  function cycleFace(step) {
    const live = geom.filter((g) => !g.deleted);
    if (!live.length) return;
    const i = live.findIndex((g) => g.key === sel.key);
    const next = live[(i + step + live.length) % live.length];
    select(next.key, null);
    zoomToFace(next);
  }

  function cyclePoint(step) {
    const g = selFace() || geom.find((f) => !f.deleted);
    if (!g || !g.points) return;
    const pt = sel.key === g.key && sel.pt != null ? (sel.pt + step + N) % N : step > 0 ? 0 : N - 1;
    select(g.key, pt);
  }

  async function addFace(box) {
    const key = `new${nextNew++}`;
    let points = null;
    if (N) {
      status("Placing the points…");
      const res = await postJSON(cfg.place_url, {
        image_id: cfg.image.id, kind: cfg.kind,
        box: [box[0] / W, box[1] / H, box[2] / W, box[3] / H].map((v) => clamp(v, 0, 1)),
      });
      if (!res.ok) return status(res.error, "error");
      points = res.data.points.map((p) => [p[0] * W, p[1] * H, p[2]]);
      status(res.data.method === "five" ? "Points placed from the five-point annotation" : "Points placed from the template");
    }
    pushUndo();
    geom.push({ key, box, points, deleted: false, label: CLASSES ? newLabel : null });
    meta.set(key, { id: null, origin_id: null, version: null, source: "human", gone: false });
    select(key, null);
  }

  // ---- saving ------------------------------------------------------------------------------------
  async function postJSON(url, body) {
    let res;
    try {
      res = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
        body: JSON.stringify(body),
      });
    } catch (err) {
      return { ok: false, status: 0, error: "The server did not answer; nothing was saved. Try again." };
    }
    let data = null;
    try {
      data = await res.json();
    } catch (err) {
      data = null;
    }
    const error = (data && data.error) || `The server answered ${res.status}` + (res.status === 400 ? " (session expired? reload the page)" : "");
    return { ok: res.ok, status: res.status, data, error };
  }

  const norm6 = (v, max) => Math.round(clamp(v / max, 0, 1) * 1e6) / 1e6;

  function payloadFace(g) {
    const m = meta.get(g.key);
    const out = { key: g.key };
    if (!m.gone) {
      if (m.id) {
        out.id = m.id;
        out.version = m.version;
      }
      if (m.origin_id) out.origin_id = m.origin_id;
    }
    if (g.deleted) {
      out.deleted = true;
      return out;
    }
    let [x0, y0, x1, y1] = [norm6(g.box[0], W), norm6(g.box[1], H), norm6(g.box[2], W), norm6(g.box[3], H)];
    if (x1 <= x0) x1 = Math.min(1, x0 + 1e-6), x0 = x1 - 1e-6;
    if (y1 <= y0) y1 = Math.min(1, y0 + 1e-6), y0 = y1 - 1e-6;
    out.box = [x0, y0, x1, y1];
    if (g.points) out.points = g.points.map((p) => [norm6(p[0], W), norm6(p[1], H), p[2] === 0 ? 0 : 1]);
    if (CLASSES && g.label) out.label = g.label;
    return out;
  }

  async function save() {
    if (saving) return;
    const changed = changedFaces();
    if (!changed.length) return status("Nothing to save", "ok");
    saving = true;
    status("Saving…");
    // What was sent becomes the baseline, even if the user edits on while the request runs.
    const sent = new Map(changed.map((g) => [g.key, geomString(g)]));
    const res = await postJSON(cfg.save_url, { image_id: cfg.image.id, kind: cfg.kind, faces: changed.map(payloadFace) });
    saving = false;
    if (!res.ok) {
      status(res.error, res.status === 409 ? "conflict" : "error");
      $("ed-reload").hidden = res.status !== 409;
      render();
      return;
    }
    $("ed-reload").hidden = true;
    for (const r of res.data.faces) {
      const m = meta.get(r.key);
      Object.assign(m, { id: r.id, origin_id: r.origin_id, version: r.version, source: "human", gone: r.deleted, rating: null });
      baseline.set(r.key, sent.get(r.key));
    }
    const n = res.data.faces.length;
    status(res.data.message || `Saved ${n} face${n === 1 ? "" : "s"}`, "ok");
    render();
  }

  async function reload() {
    if (changedFaces().length && !window.confirm("Load the faces as saved now? Your unsaved edits here are dropped.")) return;
    let res;
    try {
      res = await fetch(cfg.faces_url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch (err) {
      return status("The server did not answer", "error");
    }
    if (!res.ok) return status(`The server answered ${res.status}`, "error");
    const data = await res.json();
    loadFaces(data.faces);
    sel = { key: null, pt: null };
    $("ed-reload").hidden = true;
    status("Loaded the faces as saved now", "ok");
    render();
  }

  function goBack() {
    const back = $("ed-back");
    if (back) window.location.href = back.href;
  }

  // ---- pointer -----------------------------------------------------------------------------------
  function startPan(e) {
    drag = { type: "pan", sx: e.clientX, sy: e.clientY, vx: view.x, vy: view.y };
    stage.classList.add("panning");
  }

  svg.addEventListener("pointerdown", (e) => {
    stage.focus({ preventScroll: true });
    if (e.button === 1 || (e.button === 0 && spaceDown)) {
      e.preventDefault();
      startPan(e);
      svg.setPointerCapture(e.pointerId);
      return;
    }
    if (e.button !== 0) return;
    const p = toImage(e);
    svg.setPointerCapture(e.pointerId);
    if (mode === "add") {
      drag = { type: "draw", start: p, cur: p };
      return;
    }
    const t = e.target;
    const key = t.dataset ? t.dataset.face : undefined;
    const g = key ? face(key) : null;
    if (!g) {
      select(null, null);
      startPan(e); // a drag on the photo itself pans, for trackpads without a middle button
      return;
    }
    const pt = t.dataset.pt != null ? Number(t.dataset.pt) : null;
    let h = t.dataset.h || (pt != null ? "point" : "move");
    if (g.points && (h === "move" || h === "point")) {
      if (e.shiftKey) h = "scale";
      else if (e.ctrlKey || e.metaKey || e.altKey) h = "rotate";
    }
    if (h !== "point") tip.hidden = true;
    select(key, pt != null ? pt : sel.key === key ? sel.pt : null);
    const orig = { box: g.box && g.box.slice(), points: g.points && g.points.map((q) => q.slice()) };
    drag = { type: h, key, pt, start: p, orig, before: snapshot(), moved: false };
    if (h === "rotate" || h === "scale") {
      drag.c = centroid(orig.points);
      drag.a0 = Math.atan2(p.y - drag.c[1], p.x - drag.c[0]);
      drag.d0 = Math.max(Math.hypot(p.x - drag.c[0], p.y - drag.c[1]), 1e-6);
    }
  });

  svg.addEventListener("pointermove", (e) => {
    if (!drag) return hoverAt(e);
    if (drag.type === "pan") {
      view.x = drag.vx - (e.clientX - drag.sx) / view.zoom;
      view.y = drag.vy - (e.clientY - drag.sy) / view.zoom;
      return render();
    }
    const p = toImage(e);
    if (drag.type === "draw") {
      drag.cur = p;
      return render();
    }
    const g = face(drag.key);
    if (!g) return;
    const dx = p.x - drag.start.x;
    const dy = p.y - drag.start.y;
    if (!drag.moved) {
      // The undo step is taken on the first movement, so a click alone leaves no step behind.
      undoStack.push(drag.before);
      redoStack = [];
      lastTag = null;
      drag.moved = true;
    }
    const o = drag.orig;
    if (drag.type === "point") {
      g.points[drag.pt] = clampPoint([o.points[drag.pt][0] + dx, o.points[drag.pt][1] + dy, o.points[drag.pt][2]]);
      showTip(cfg.names[drag.pt], e);
    } else if (drag.type === "move") {
      moveFace(g, o, dx, dy);
    } else if (drag.type === "rotate") {
      transformPoints(g, o.points, drag.c, Math.atan2(p.y - drag.c[1], p.x - drag.c[0]) - drag.a0, 1);
    } else if (drag.type === "scale") {
      transformPoints(g, o.points, drag.c, 0, Math.hypot(p.x - drag.c[0], p.y - drag.c[1]) / drag.d0);
    } else {
      let [x0, y0, x1, y1] = o.box;
      if (drag.type.includes("w")) x0 = clamp(x0 + dx, 0, x1 - MIN_BOX);
      if (drag.type.includes("e")) x1 = clamp(x1 + dx, x0 + MIN_BOX, W);
      if (drag.type.includes("n")) y0 = clamp(y0 + dy, 0, y1 - MIN_BOX);
      if (drag.type.includes("s")) y1 = clamp(y1 + dy, y0 + MIN_BOX, H);
      g.box = [x0, y0, x1, y1];
    }
    render();
  });

  function endDrag(e) {
    if (!drag) return;
    const d = drag;
    drag = null;
    stage.classList.remove("panning");
    if (svg.hasPointerCapture(e.pointerId)) svg.releasePointerCapture(e.pointerId);
    if (d.type === "draw") {
      const b = normBox(d.start, d.cur);
      setMode(null);
      if (b[2] - b[0] < MIN_BOX * 2 || b[3] - b[1] < MIN_BOX * 2) {
        status("Drag a box to add a face (it was too small)");
        return render();
      }
      addFace(b);
    }
    render();
  }
  svg.addEventListener("pointerup", endDrag);
  svg.addEventListener("pointercancel", endDrag);

  function showTip(text, e) {
    const s = stageSize();
    tip.textContent = text;
    tip.hidden = false;
    tip.style.left = e.clientX - s.left + 14 + "px";
    tip.style.top = e.clientY - s.top + 10 + "px";
  }

  function hoverAt(e) {
    const t = e.target;
    if (t.dataset && t.dataset.pt != null) {
      const pt = Number(t.dataset.pt);
      const g = face(t.dataset.face);
      const occ = g && g.points[pt][2] === 0 ? " — occluded" : "";
      showTip(cfg.names[pt] + occ, e);
      if (!hover || hover.key !== t.dataset.face || hover.pt !== pt) {
        hover = { key: t.dataset.face, pt };
        render();
      }
    } else if (hover || !tip.hidden) {
      hover = null;
      tip.hidden = true;
      render();
    }
  }
  svg.addEventListener("pointerleave", () => {
    tip.hidden = true;
  });

  svg.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
      zoomAbout(Math.exp(-e.deltaY * unit * 0.0015), e);
    },
    { passive: false },
  );
  svg.addEventListener("mousedown", (e) => {
    if (e.button === 1) e.preventDefault(); // no autoscroll or paste on middle-drag
  });
  svg.addEventListener("contextmenu", (e) => {
    if (drag) e.preventDefault();
  });

  // ---- keyboard ----------------------------------------------------------------------------------
  function setMode(m) {
    mode = m;
    stage.classList.toggle("adding", m === "add");
    if (m === "add") status(`Drag a box around the ${CLASSES ? className(newLabel) : NOUN} (Esc cancels)`);
    render();
  }

  function toggleHelp(show) {
    const help = $("ed-help");
    help.hidden = show === undefined ? !help.hidden : !show;
  }

  document.addEventListener("keydown", (e) => {
    const tag = e.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    const k = e.key;
    const ctrl = e.ctrlKey || e.metaKey;
    if (ctrl && (k === "z" || k === "Z")) {
      e.preventDefault();
      return e.shiftKey ? redo() : undo();
    }
    if (ctrl && (k === "y" || k === "Y")) {
      e.preventDefault();
      return redo();
    }
    if (ctrl || e.altKey) return; // leave the browser's own shortcuts alone
    const big = e.shiftKey;
    const step = (big ? 10 : 1) / view.zoom; // one screen pixel, at any zoom
    let handled = true;
    switch (e.code === "BracketLeft" || e.code === "BracketRight" || e.code === "Comma" || e.code === "Period" ? e.code : k) {
      case " ":
        spaceDown = true;
        stage.classList.add("panning");
        break;
      case "s":
      case "S":
        save();
        break;
      case "ArrowLeft":
        nudge(-step, 0);
        break;
      case "ArrowRight":
        nudge(step, 0);
        break;
      case "ArrowUp":
        nudge(0, -step);
        break;
      case "ArrowDown":
        nudge(0, step);
        break;
      case "o":
      case "O":
        toggleOccluded();
        break;
      case "BracketLeft":
        transformKey(big ? -5 : -1, 1);
        break;
      case "BracketRight":
        transformKey(big ? 5 : 1, 1);
        break;
      case "Comma":
        transformKey(0, big ? 0.9 : 0.98);
        break;
      case "Period":
        transformKey(0, big ? 1.1 : 1.02);
        break;
      case "Tab":
        cyclePoint(big ? -1 : 1);
        break;
      case "n":
      case "N":
        cycleFace(big ? -1 : 1);
        break;
      case "a":
      case "A":
        setMode(mode === "add" ? null : "add");
        break;
      case "Delete":
      case "Backspace":
        deleteFace();
        break;
      case "0":
        fitImage();
        break;
      case "1":
        setView(1, viewCentre().x, viewCentre().y);
        break;
      case "z":
      case "Z":
        zoomToFace(selFace());
        break;
      case "?":
        toggleHelp();
        break;
      case "c":
      case "C":
        if (CLASSES) {
          $("ed-class").focus();
          $("ed-class").select();
        } else handled = false;
        break;
      case "b":
      case "B":
        goBack();
        break;
      case "Escape":
        if (mode) setMode(null);
        else if (!$("ed-help").hidden) toggleHelp(false);
        else if (sel.pt != null) select(sel.key, null);
        else select(null, null);
        break;
      default:
        handled = false;
    }
    if (handled) e.preventDefault();
  });

  document.addEventListener("keyup", (e) => {
    if (e.key === " ") {
      spaceDown = false;
      if (!drag || drag.type !== "pan") stage.classList.remove("panning");
      e.preventDefault();
    }
  });
  window.addEventListener("blur", () => {
    spaceDown = false;
  });

  // ---- class chooser (object boxes) --------------------------------------------------------------
  // Typing a class name (the list completes it) and Enter gives the selected box that class, or, with
  // no box selected, the class of the next box drawn. One undo step per change.
  function chooseClass(text) {
    const label = labelOf.get(text.trim().toLowerCase());
    if (!label) return status(`No class named "${text}": pick one from the list`, "error");
    const g = selFace();
    if (g) {
      if (g.label !== label) {
        pushUndo();
        g.label = label;
        status(`Class: ${className(label)} (save to keep it)`);
      }
    } else {
      status(`New boxes: ${className(label)}`);
    }
    newLabel = label;
    render();
    return true;
  }
  if (CLASSES) {
    const input = $("ed-class");
    input.addEventListener("change", () => chooseClass(input.value));
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        if (chooseClass(input.value)) input.blur();
      } else if (e.key === "Escape") {
        e.preventDefault();
        input.blur();
        render();
      }
    });
  }

  // ---- buttons and panel -------------------------------------------------------------------------
  $("ed-save").addEventListener("click", save);
  $("ed-undo").addEventListener("click", undo);
  $("ed-redo").addEventListener("click", redo);
  $("ed-add").addEventListener("click", () => setMode(mode === "add" ? null : "add"));
  $("ed-delete").addEventListener("click", deleteFace);
  $("ed-occluded").addEventListener("click", toggleOccluded);
  $("ed-fit").addEventListener("click", fitImage);
  $("ed-help-btn").addEventListener("click", () => toggleHelp());
  $("ed-reload").addEventListener("click", reload);
  // Buttons must not keep the focus: space and the letter keys belong to the editor.
  for (const b of document.querySelectorAll(".ed-toolbar button")) b.addEventListener("mouseup", () => b.blur());
  $("ed-faces").addEventListener("click", (e) => {
    const li = e.target.closest("li[data-key]");
    if (!li) return;
    select(li.dataset.key, null);
    zoomToFace(face(li.dataset.key));
  });

  window.addEventListener("beforeunload", (e) => {
    if (changedFaces().length) {
      e.preventDefault();
      e.returnValue = "";
    }
  });
  window.addEventListener("resize", () => {
    layout();
    render();
  });

  // ---- start -------------------------------------------------------------------------------------
  if (!$("ed-back") && document.referrer) {
    // Came from the review queue or a set page: offer the way back (b) without a ?next= parameter.
    const ref = new URL(document.referrer);
    if (ref.origin === location.origin && ref.pathname !== location.pathname && !ref.pathname.startsWith("/login")) {
      const a = document.createElement("a");
      a.id = "ed-back";
      a.className = "ed-back";
      a.href = ref.href;
      a.title = "Back (b)";
      a.innerHTML = "&larr; Back";
      document.querySelector(".ed-toolbar").prepend(a);
    }
  }
  layout();
  const focus = cfg.focus_key ? face(cfg.focus_key) : null;
  if (focus) {
    sel = { key: focus.key, pt: null };
    zoomToFace(focus);
  } else {
    fitImage();
  }
  if (!geom.length) status("No faces of this kind yet: press a to add one");

  // A small surface for tests and for the console.
  window.oiapEditor = {
    get view() {
      return { ...view, rotation: ROT * 90 };
    },
    get selection() {
      return { ...sel };
    },
    faces: () => JSON.parse(JSON.stringify(geom.filter((g) => !g.deleted))),
    meta: (key) => ({ ...meta.get(key) }),
    changed: () => changedFaces().map((g) => g.key),
    undoDepth: () => undoStack.length,
    setView,
    select,
    draw, // synchronous redraw, for timing
    save,
    // Screen position (client pixels) of an image point, to aim the pointer in tests.
    toScreen(x, y) {
      const s = stageSize();
      const d = toDisplay(x, y);
      return { x: s.left + (d.x - view.x) * view.zoom, y: s.top + (d.y - view.y) * view.zoom };
    },
  };
})();
