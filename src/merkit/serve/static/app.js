// merkit's page: upload a song to POST v1/predict and draw the answer. Plain JS, no libraries.
"use strict";

const COLORS = { Q1: "#e0a800", Q2: "#d7263d", Q3: "#2e5eaa", Q4: "#3aa17e" };
// Russell's plane: x = valence (right = positive), y = arousal (up = high).
const CORNERS = { Q1: [1, 1], Q2: [-1, 1], Q3: [-1, -1], Q4: [1, -1] };
let meanings = { Q1: "happy/excited", Q2: "angry/tense", Q3: "sad/melancholic", Q4: "calm/serene" };
let limits = null;
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawQuadrants() {
  const group = $("quadrants");
  group.replaceChildren();
  for (const [q, [sx, sy]] of Object.entries(CORNERS)) {
    group.append(svg("rect", {
      x: sx > 0 ? 0 : -100, y: sy > 0 ? -100 : 0, width: 100, height: 100,
      fill: COLORS[q], class: "quadrant-area", "data-quadrant": q,
    }));
    group.append(svg("text", { x: 50 * sx, y: -50 * sy, class: "quadrant-name" },
      `${q} ${meanings[q] || ""}`));
  }
}

// A point of the plane from the arousal and valence probabilities (0.5 = the axis).
function place(pValence, pArousal) {
  return [200 * (pValence - 0.5), -200 * (pArousal - 0.5)];
}

function sides(probabilities) {
  const p = (q) => probabilities[q] || 0;
  return { valence: p("Q1") + p("Q4"), arousal: p("Q1") + p("Q2") };
}

function pct(x) { return `${(100 * x).toFixed(1)} %`; }

function clock(s) {
  const m = Math.floor(s / 60);
  return `${m}:${(s - 60 * m).toFixed(0).padStart(2, "0")}`;
}

function showBars(probabilities) {
  const bars = $("bars");
  bars.replaceChildren();
  for (const [q, p] of Object.entries(probabilities)) {
    const row = document.createElement("div");
    row.className = "bar-row";
    row.id = `bar-${q}`;
    row.dataset.probability = p;
    const name = document.createElement("span");
    name.textContent = `${q} ${meanings[q] || ""}`;
    const track = document.createElement("div");
    track.className = "bar-track";
    const fill = document.createElement("div");
    fill.className = "bar-fill";
    fill.style.width = `${100 * p}%`;
    fill.style.background = COLORS[q] || "#888";
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = pct(p);
    row.append(name, track, value);
    bars.append(row);
  }
}

function showTimeline(result) {
  const box = $("timeline-box");
  const segments = result.segments || [];
  const trail = $("trail");
  trail.replaceChildren();
  if (segments.length < 2) { box.hidden = true; return; }
  const strip = $("timeline");
  strip.replaceChildren();
  const total = result.duration_s;
  // Windows overlap (hop < window): each bar covers its window's share up to the next start.
  segments.forEach((seg, i) => {
    const end = i + 1 < segments.length ? segments[i + 1].start_s : seg.end_s;
    const x = (600 * seg.start_s) / total;
    const w = Math.max(1, (600 * (end - seg.start_s)) / total);
    const h = 60 * seg.probabilities[seg.quadrant];
    const bar = svg("rect", {
      x, y: 65 - h, width: w - 0.5, height: h, fill: COLORS[seg.quadrant] || "#888",
      opacity: seg.silent ? 0.3 : 1, class: "window", "data-quadrant": seg.quadrant,
    });
    bar.append(svg("title", {}, `${clock(seg.start_s)}-${clock(seg.end_s)}: ` +
      `${seg.quadrant} ${seg.meaning} (${pct(seg.probabilities[seg.quadrant])})`));
    strip.append(bar);
    const s = sides(seg.probabilities);
    const [cx, cy] = place(s.valence, s.arousal);
    trail.append(svg("circle", { cx, cy, r: 3, class: "trail-dot" }));
  });
  $("timeline-axis").replaceChildren(
    ...["0:00", clock(total / 2), clock(total)].map((t) => {
      const span = document.createElement("span");
      span.textContent = t;
      return span;
    }));
  box.hidden = false;
}

function show(result) {
  $("quadrant").textContent = result.quadrant;
  $("meaning").textContent = result.meaning;
  $("answer").dataset.quadrant = result.quadrant;
  $("answer").style.color = COLORS[result.quadrant] || "";
  const warn = result.reliable ? "" : " Not reliable: " + result.warnings.join("; ");
  // each side with its own probability: "low arousal (70 %)", not P(high arousal)
  const pArousal = result.arousal === "high" ? result.p_high_arousal : 1 - result.p_high_arousal;
  const pValence =
    result.valence === "positive" ? result.p_positive_valence : 1 - result.p_positive_valence;
  $("details").textContent =
    `${result.arousal} arousal (${pct(pArousal)}), ${result.valence} valence ` +
    `(${pct(pValence)}) · confidence ${pct(result.confidence)} · ` +
    `${result.duration_s.toFixed(1)} s, ${result.n_windows} window` +
    `${result.n_windows > 1 ? "s" : ""}.${warn}`;
  const [cx, cy] = place(result.p_positive_valence, result.p_high_arousal);
  const point = $("point");
  point.setAttribute("cx", cx);
  point.setAttribute("cy", cy);
  point.dataset.quadrant = result.quadrant;
  showBars(result.probabilities);
  showTimeline(result);
  $("result").hidden = false;
}

function fail(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("status").textContent = "";
}

async function upload(file) {
  $("error").hidden = true;
  $("result").hidden = true;
  document.body.dataset.state = "busy";
  if (limits && file.size > limits.max_upload_mb * 1e6) {
    fail(`${file.name} is larger than this service's limit of ${limits.max_upload_mb} MB`);
    document.body.dataset.state = "error";
    return;
  }
  $("status").textContent = `Listening to ${file.name} ...`;
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const response = await fetch("v1/predict?segments=true", { method: "POST", body: form });
    const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) {
      fail(body.error || `HTTP ${response.status}`);
      document.body.dataset.state = "error";
      return;
    }
    $("status").textContent = file.name;
    show(body);
    document.body.dataset.state = "done";
  } catch (error) {
    fail(`the service did not answer: ${error}`);
    document.body.dataset.state = "error";
  }
}

async function loadModel() {
  try {
    const response = await fetch("v1/model");
    if (!response.ok) return;
    const info = await response.json();
    meanings = { ...meanings, ...info.labels };
    limits = info.limits;
    $("model").textContent = `${info.summary} Limits: ${info.limits.max_upload_mb} MB, ` +
      `${info.limits.max_duration_s} s per song.`;
    drawQuadrants();
  } catch (error) {
    // the page still works with the default labels
  }
}

function setUp() {
  drawQuadrants();
  const drop = $("drop");
  $("file").addEventListener("change", (event) => {
    if (event.target.files.length) upload(event.target.files[0]);
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) upload(event.dataTransfer.files[0]);
  });
  document.body.dataset.state = "ready";
  loadModel();
}

setUp();
