// backprop serve: draw on the canvas with pointer events (mouse, pen,
// touch); after each stroke (debounced) the drawing goes to
// POST /api/predict as a PNG, and the answer is shown: the class, ten bars,
// and the 28x28 image the network saw. The side panel shows GET /api/model.
"use strict";

const DEBOUNCE_MS = 150;
const SVG_NS = "http://www.w3.org/2000/svg";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const statusLine = document.getElementById("status");
const seen = document.getElementById("seen");
const bars = document.getElementById("bars");
// Pen width in canvas pixels (the canvas is 280 wide, ten times MNIST's 28).
const penWidth = Math.min(60, Math.max(2, Number(new URLSearchParams(location.search).get("pen")) || 18));

let classes = [];
let generation = 0;
let drawing = null; // the pointer id of the stroke in progress
let last = null;
let timer = null;
let inFlight = 0;
let pending = false;
let predictions = 0;

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
}

function setStatus(text, isError) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", Boolean(isError));
}

function setState() {
  statusLine.dataset.state = inFlight > 0 || timer !== null ? "busy" : "idle";
  statusLine.dataset.predictions = String(predictions);
}

function point(event) {
  const r = pad.getBoundingClientRect();
  return { x: (event.clientX - r.left) * (pad.width / r.width), y: (event.clientY - r.top) * (pad.height / r.height) };
}

function line(a, b) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = penWidth;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(a.x, a.y);
  ctx.lineTo(b.x, b.y);
  ctx.stroke();
}

pad.addEventListener("pointerdown", (event) => {
  if (drawing !== null) return;
  event.preventDefault();
  drawing = event.pointerId;
  pad.setPointerCapture(event.pointerId);
  last = point(event);
  line(last, last);
  if (timer !== null) { clearTimeout(timer); timer = null; }
  setState();
});

pad.addEventListener("pointermove", (event) => {
  if (event.pointerId !== drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of (events.length ? events : [event])) {
    const p = point(e);
    line(last, p);
    last = p;
  }
});

function endStroke(event) {
  if (event.pointerId !== drawing) return;
  drawing = null;
  last = null;
  schedule();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function schedule() {
  if (timer !== null) clearTimeout(timer);
  timer = setTimeout(() => {
    timer = null;
    pad.toBlob((blob) => send(blob, "image/png"), "image/png");
  }, DEBOUNCE_MS);
  setState();
}

async function send(body, type) {
  if (inFlight > 0) { pending = true; return; }
  inFlight += 1;
  setState();
  setStatus("Thinking\u2026");
  try {
    const response = await fetch("api/predict", { method: "POST", headers: { "Content-Type": type }, body });
    const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) {
      clearAnswer();
      setStatus(answer.error || `HTTP ${response.status}`, true);
    } else {
      predictions += 1;
      show(answer);
      setStatus(`Answered in ${answer.inference_us.toFixed(0)} \u00b5s of inference.`);
      if (answer.generation !== generation) loadModel();
    }
  } catch (err) {
    setStatus(`Cannot reach the server: ${err}`, true);
  } finally {
    inFlight -= 1;
    if (pending) {
      pending = false;
      schedule();
    }
    setState();
  }
}

function buildBars(n) {
  bars.replaceChildren();
  for (let i = 0; i < n; i++) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = classes[i] ?? String(i);
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    track.append(fill);
    const pct = document.createElement("span");
    pct.className = "pct";
    li.append(label, track, pct);
    li.dataset.class = String(i);
    li.dataset.p = "0";
    bars.append(li);
  }
}

function clearAnswer() {
  document.getElementById("predicted").textContent = "\u2013";
  document.getElementById("class-name").textContent = "";
  document.getElementById("confidence").textContent = "";
  buildBars(classes.length || 10);
  seen.getContext("2d").clearRect(0, 0, 28, 28);
}

function show(answer) {
  const p = answer.probabilities;
  if (bars.children.length !== p.length) buildBars(p.length);
  const predicted = document.getElementById("predicted");
  predicted.textContent = answer.class_name;
  predicted.dataset.class = String(answer.predicted);
  const named = answer.class_name !== String(answer.predicted);
  document.getElementById("class-name").textContent = named ? `class ${answer.predicted}` : "";
  document.getElementById("confidence").textContent = `${(100 * p[answer.predicted]).toFixed(1)}%`;
  Array.from(bars.children).forEach((li, i) => {
    li.dataset.p = String(p[i]);
    li.classList.toggle("top", i === answer.predicted);
    li.querySelector(".fill").style.width = `${(100 * p[i]).toFixed(2)}%`;
    li.querySelector(".pct").textContent = `${(100 * p[i]).toFixed(1)}%`;
  });
  const image = seen.getContext("2d").createImageData(28, 28);
  answer.input_28x28.forEach((v, i) => {
    image.data[4 * i] = v;
    image.data[4 * i + 1] = v;
    image.data[4 * i + 2] = v;
    image.data[4 * i + 3] = 255;
  });
  seen.getContext("2d").putImageData(image, 0, 0);
}

document.getElementById("clear").addEventListener("click", () => {
  clearPad();
  clearAnswer();
  setStatus("Draw a digit.");
});

// An image file, from the picker or dropped: shown on the canvas, and sent
// as it is (the server finds its format from its content).
function openFile(file) {
  if (!file) return;
  const url = URL.createObjectURL(file);
  const img = new Image();
  img.onload = () => {
    clearPad();
    const scale = Math.min(pad.width / img.width, pad.height / img.height);
    const w = img.width * scale;
    const h = img.height * scale;
    ctx.drawImage(img, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    URL.revokeObjectURL(url);
  };
  img.onerror = () => URL.revokeObjectURL(url);
  img.src = url;
  const name = file.name.toLowerCase();
  const pnm = /\.(pgm|pnm|ppm|pbm)$/.test(name) ? "image/x-portable-anymap" : "";
  send(file, file.type || pnm || "image/png");
}

document.getElementById("file").addEventListener("change", (event) => {
  openFile(event.target.files[0]);
  event.target.value = "";
});
document.addEventListener("dragover", (event) => {
  event.preventDefault();
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
document.addEventListener("drop", (event) => {
  event.preventDefault();
  document.body.classList.remove("dragging");
  openFile(event.dataTransfer.files[0]);
});

// The side panel.
async function loadModel() {
  try {
    const response = await fetch("api/model");
    const m = await response.json();
    generation = m.generation;
    const fresh = classes.length !== m.classes.length || classes.some((c, i) => c !== m.classes[i]);
    classes = m.classes;
    if (fresh) buildBars(classes.length);
    document.getElementById("m-path").textContent = m.path + (m.generation > 1 ? ` (reload ${m.generation - 1})` : "");
    const hidden = Array.from(new Set(m.activations.slice(0, -1))).join(", ");
    document.getElementById("m-arch").textContent = m.architecture + (hidden ? ` (${hidden})` : "");
    document.getElementById("m-params").textContent = m.parameters.toLocaleString("en");
    document.getElementById("m-epoch").textContent = String(m.epoch);
    document.getElementById("m-acc").textContent =
      m.test_accuracy === null ? "not recorded" : `${(100 * m.test_accuracy).toFixed(2)}%`;
    const h = m.history;
    chart("loss-chart", h.map((e) => e.epoch), [
      { name: "train", values: h.map((e) => e.train_loss) },
      { name: "test", values: h.map((e) => e.test_loss) },
    ], (v) => v.toFixed(3));
    chart("acc-chart", h.map((e) => e.epoch), [
      { name: "test", values: h.map((e) => (e.test_accuracy === null ? null : 100 * e.test_accuracy)) },
    ], (v) => `${v.toFixed(1)}%`, 100);
  } catch (err) {
    setStatus(`Cannot load the model summary: ${err}`, true);
  }
}

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// A line chart of `series` against `epochs`, as inline SVG.
function chart(id, epochs, series, format, ceiling) {
  const box = document.getElementById(id);
  const W = 260, H = 130, L = 44, R = 8, T = 8, B = 20;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && Number.isFinite(v));
  if (epochs.length === 0 || all.length === 0) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "no training history"));
    box.replaceChildren(root);
    return;
  }
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi - lo < 1e-9) {
    // A flat line: give it some room, within [0, ceiling].
    const pad = Math.max(Math.abs(hi) * 0.05, 1e-3);
    lo = Math.max(0, lo - pad);
    hi = ceiling === undefined ? hi + pad : Math.min(ceiling, hi + pad);
    if (hi - lo < 1e-9) lo = hi - pad;
  }
  const x0 = epochs[0], x1 = epochs[epochs.length - 1];
  const x = (e) => L + (x1 === x0 ? (W - L - R) / 2 : ((e - x0) / (x1 - x0)) * (W - L - R));
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  root.append(svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
  root.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
  root.append(svg("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, format(hi)));
  root.append(svg("text", { x: L - 4, y: H - B, "text-anchor": "end" }, format(lo)));
  root.append(svg("text", { x: L, y: H - 6, "text-anchor": "start" }, `epoch ${x0}`));
  root.append(svg("text", { x: W - R, y: H - 6, "text-anchor": "end" }, String(x1)));
  for (const s of series) {
    const pts = epochs.map((e, i) => [e, s.values[i]]).filter(([, v]) => v !== null && Number.isFinite(v));
    if (pts.length === 0) continue;
    const d = pts.map(([e, v], i) => `${i ? "L" : "M"}${x(e).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, class: s.name }));
    if (pts.length === 1) root.append(svg("circle", { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 2.5, class: s.name }));
  }
  if (series.length > 1) {
    series.forEach((s, i) => {
      root.append(svg("line", { x1: W - R - 60, y1: T + 6 + 12 * i, x2: W - R - 46, y2: T + 6 + 12 * i, class: s.name }));
      root.append(svg("text", { x: W - R - 42, y: T + 9 + 12 * i }, s.name));
    });
  }
  box.replaceChildren(root);
}

clearPad();
buildBars(10);
setState();
loadModel();
