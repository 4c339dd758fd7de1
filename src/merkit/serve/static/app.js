// merkit's page: upload songs to POST v1/predict, one at a time, and draw the answers.
// Plain JS, no libraries.
"use strict";

const COLORS = { Q1: "#e0a800", Q2: "#d7263d", Q3: "#2e5eaa", Q4: "#3aa17e" };
// Russell's plane: x = valence (right = pleasant), y = arousal (up = more energy).
const CORNERS = { Q1: [1, 1], Q2: [-1, 1], Q3: [-1, -1], Q4: [1, -1] };
let meanings = { Q1: "happy/excited", Q2: "angry/tense", Q3: "sad/melancholic", Q4: "calm/serene" };
let info = null; // GET v1/model
const answers = []; // {name, result} or {name, error}, in the order the songs were chosen
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
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
    // names sit outside the square, at its corners: no point can land on them
    group.append(svg("text", {
      x: 100 * sx, y: sy > 0 ? -110 : 120, class: "quadrant-name",
      "text-anchor": sx > 0 ? "end" : "start", "data-quadrant": q,
    }, `${q} ${meanings[q] || ""}`));
  }
  const key = $("colour-key");
  key.replaceChildren(...Object.keys(CORNERS).map((q) => {
    const item = el("span");
    const chip = el("span", { class: "chip" });
    chip.style.background = COLORS[q];
    item.append(chip, `${q} ${meanings[q] || ""}`);
    return item;
  }));
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

function sureWords(result) {
  if (result.mixed) return "not sure, between two moods";
  if (result.confidence >= 0.8) return "very sure";
  if (result.confidence >= 0.6) return "fairly sure";
  return "somewhat sure";
}

function sideWords(result) {
  const energy = result.arousal === "high" ? "more energy" : "less energy";
  const pleasant = result.valence === "positive" ? "more pleasant" : "less pleasant";
  const pA = result.arousal === "high" ? result.p_high_arousal : 1 - result.p_high_arousal;
  const pV =
    result.valence === "positive" ? result.p_positive_valence : 1 - result.p_positive_valence;
  return { energy: `${energy} (${pct(pA)})`, pleasant: `${pleasant} (${pct(pV)})` };
}

function showBars(probabilities) {
  const bars = $("bars");
  bars.replaceChildren();
  for (const [q, p] of Object.entries(probabilities)) {
    const row = el("div", { class: "bar-row", id: `bar-${q}` });
    row.dataset.probability = p;
    const track = el("div", { class: "bar-track" });
    const fill = el("div", { class: "bar-fill" });
    fill.style.width = `${100 * p}%`;
    fill.style.background = COLORS[q] || "#888";
    track.append(fill);
    row.append(el("span", {}, `${q} ${meanings[q] || ""}`), track,
      el("span", { class: "bar-value" }, pct(p)));
    bars.append(row);
  }
}

function showTimeline(result) {
  const box = $("timeline-box");
  const segments = result.segments || [];
  const trail = $("trail");
  trail.replaceChildren();
  $("legend-pieces").hidden = segments.length < 2;
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
    ...["0:00", clock(total / 2), clock(total)].map((t) => el("span", {}, t)));
  box.hidden = false;
}

function show(answer) {
  const result = answer.result;
  $("result-file").textContent = answer.name;
  $("quadrant").textContent = result.quadrant;
  $("meaning").textContent = result.meaning;
  $("between").hidden = !result.mixed;
  const second = result.runner_up;
  $("runner-up").hidden = !(result.mixed && second);
  $("runner-up").textContent = second ? ` and ${second} ${meanings[second] || ""}` : "";
  $("answer").dataset.quadrant = result.quadrant;
  $("answer").dataset.mixed = result.mixed ? "yes" : "no";
  $("answer").style.color = result.mixed ? "" : COLORS[result.quadrant] || "";
  $("mixed-note").hidden = !result.mixed;
  $("mixed-note").textContent = result.mixed
    ? `Mixed: this song sits between two moods. The model leans to ${result.quadrant} ` +
      `${result.meaning} (${pct(result.confidence)}), but not clearly` +
      (second ? `; ${second} ${meanings[second] || ""} comes next ` +
        `(${pct(result.probabilities[second])}).` : ".")
    : "";
  $("unfamiliar-note").hidden = result.familiar !== false; // when the model can tell
  $("sure").textContent = `How sure: ${sureWords(result)} (${pct(result.confidence)}).`;
  const s = sideWords(result);
  const warn = result.reliable ? "" : ` Not reliable: ${result.warnings.join("; ")}`;
  const pieces = result.n_windows > 1 ? `, heard in ${result.n_windows} pieces` : "";
  $("details").textContent = `Energy: ${s.energy}. Pleasantness: ${s.pleasant}. ` +
    `Length ${clock(result.duration_s)}${pieces}.${warn}`;
  const [cx, cy] = place(result.p_positive_valence, result.p_high_arousal);
  const point = $("point");
  point.setAttribute("cx", cx);
  point.setAttribute("cy", cy);
  point.dataset.quadrant = result.quadrant;
  showBars(result.probabilities);
  showTimeline(result);
  $("result").hidden = false;
  for (const row of $("answers").tBodies[0].rows) {
    row.classList.toggle("selected", row.dataset.index === String(answers.indexOf(answer)));
  }
}

function addRow(answer) {
  const index = answers.indexOf(answer);
  const row = el("tr", { "data-index": String(index) });
  row.append(el("td", {}, answer.name));
  if (answer.error) {
    row.dataset.state = "failed";
    const cell = el("td", { colspan: "5", class: "failed" }, `Could not listen: ${answer.error}`);
    row.append(cell);
  } else {
    const r = answer.result;
    const s = sideWords(r);
    const mood = el("td", {}, r.mixed ? r.summary : `${r.quadrant} ${r.meaning}`);
    if (r.mixed) mood.append(" ", el("span", { class: "tag-mixed" }, "mixed"));
    row.dataset.quadrant = r.quadrant;
    row.dataset.mixed = r.mixed ? "yes" : "no";
    row.append(mood, el("td", {}, `${sureWords(r)} (${pct(r.confidence)})`),
      el("td", {}, s.energy), el("td", {}, s.pleasant), el("td", {}, clock(r.duration_s)));
    row.addEventListener("click", () => show(answer));
  }
  $("answers").tBodies[0].append(row);
  $("table-box").hidden = false;
}

// ---- downloads --------------------------------------------------------------------------

const CSV_COLUMNS = ["file", "quadrant", "meaning", "summary", "mixed", "confidence", "p_Q1",
  "p_Q2", "p_Q3", "p_Q4", "arousal", "valence", "p_high_arousal", "p_positive_valence",
  "duration_s", "n_windows", "reliable", "error"];

function csvCell(value) {
  const text = value === undefined || value === null ? "" : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function csvText() {
  const lines = [CSV_COLUMNS.join(",")];
  for (const a of answers) {
    const r = a.result || {};
    const p = r.probabilities || {};
    const row = {
      file: a.name, quadrant: r.quadrant, meaning: r.meaning, summary: r.summary,
      mixed: r.mixed, confidence: r.confidence, p_Q1: p.Q1, p_Q2: p.Q2, p_Q3: p.Q3,
      p_Q4: p.Q4, arousal: r.arousal, valence: r.valence, p_high_arousal: r.p_high_arousal,
      p_positive_valence: r.p_positive_valence, duration_s: r.duration_s,
      n_windows: r.n_windows, reliable: r.reliable, error: a.error,
    };
    lines.push(CSV_COLUMNS.map((c) => csvCell(row[c])).join(","));
  }
  return lines.join("\n") + "\n";
}

function download(name, type, text) {
  const link = el("a", { download: name });
  link.href = URL.createObjectURL(new Blob([text], { type }));
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// ---- progress ---------------------------------------------------------------------------

// The song's length from the browser's own decoder (null when it cannot tell).
function audioDuration(file) {
  return new Promise((resolve) => {
    const audio = new Audio();
    const url = URL.createObjectURL(file);
    const done = (value) => { URL.revokeObjectURL(url); resolve(value); };
    audio.preload = "metadata";
    audio.onloadedmetadata = () => done(Number.isFinite(audio.duration) ? audio.duration : null);
    audio.onerror = () => done(null);
    setTimeout(() => done(null), 3000);
    audio.src = url;
  });
}

// About how long the service will take: its recent time per window times the song's windows.
function estimateSeconds(duration) {
  if (!info || duration === null) return null;
  const window = info.manifest.window_s || 30;
  const hop = info.manifest.hop_s || window / 2;
  const n = duration <= window ? 1 : Math.ceil((duration - window) / hop) + 1;
  return Math.max(1, n * info.seconds_per_window);
}

function post(file, onUpload) {
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open("POST", "v1/predict?segments=true");
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onUpload(event.loaded / event.total);
    };
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch (error) { body = null; }
      if (request.status === 200 && body) resolve({ result: body });
      else resolve({ error: (body && body.error) || `the service answered ${request.status}` });
    };
    request.onerror = () => resolve({ error: "the service did not answer (is it running?)" });
    const form = new FormData();
    form.append("file", file, file.name);
    request.send(form);
  });
}

async function listen(file, position, count) {
  const of = count > 1 ? ` (${position} of ${count})` : "";
  if (info && file.size > info.limits.max_upload_mb * 1e6) {
    return { error: `it is larger than this service's limit of ${info.limits.max_upload_mb} MB` };
  }
  const estimate = estimateSeconds(await audioDuration(file));
  const bar = $("progress");
  const started = performance.now();
  let uploaded = 0;
  const tick = () => {
    const elapsed = (performance.now() - started) / 1000;
    if (uploaded < 1) {
      bar.value = 0.1 * uploaded;
      $("status").textContent = `Sending ${file.name}${of} ...`;
    } else if (estimate) {
      bar.value = Math.min(0.97, 0.1 + 0.9 * (elapsed / estimate));
      $("status").textContent = `Listening to ${file.name}${of}: ${elapsed.toFixed(0)} s ` +
        `of about ${Math.ceil(estimate)} s`;
    } else {
      bar.removeAttribute("value"); // length unknown: a moving bar and the time so far
      $("status").textContent = `Listening to ${file.name}${of}: ${elapsed.toFixed(0)} s so far`;
    }
  };
  tick();
  const timer = setInterval(tick, 250);
  const answer = await post(file, (fraction) => { uploaded = fraction; });
  clearInterval(timer);
  bar.value = 1;
  return answer;
}

async function upload(files) {
  files = Array.from(files);
  if (!files.length) return;
  document.body.dataset.state = "busy";
  $("error").hidden = true;
  $("error").replaceChildren();
  $("progress-box").hidden = false;
  let succeeded = 0;
  for (const [i, file] of files.entries()) {
    const outcome = await listen(file, i + 1, files.length);
    const answer = { name: file.name, ...outcome };
    answers.push(answer);
    addRow(answer);
    if (answer.error) {
      const named = answer.error.includes(`'${file.name}'`);
      $("error").append(el("p", {}, named ? answer.error : `${file.name}: ${answer.error}`));
      $("error").hidden = false;
    } else {
      succeeded += 1;
      show(answer);
    }
  }
  $("progress-box").hidden = true;
  document.body.dataset.state = succeeded ? "done" : "error";
}

// ---- the model --------------------------------------------------------------------------

async function loadModel() {
  try {
    const response = await fetch("v1/model");
    if (!response.ok) return;
    info = await response.json();
    meanings = { ...meanings, ...info.labels };
    $("model").textContent = `About the model: ${info.plain} This service takes songs of up ` +
      `to ${info.limits.max_upload_mb} MB and ${Math.round(info.limits.max_duration_s / 60)} ` +
      "minutes.";
    $("mixed-rule").textContent = ` (its top choice gets less than ${pct(info.mixed_below)})`;
    if (info.calibration_error !== null && info.calibration_error !== undefined) {
      $("calibration-note").textContent = `; on songs it had not heard, this estimate was off ` +
        `by ${(100 * info.calibration_error).toFixed(1)} points on average`;
    }
    const piece = `${info.manifest.window_s.toFixed(0)}-second`;
    $("piece-words").textContent = `one ${piece} piece of it`;
    drawQuadrants();
  } catch (error) {
    // the page still works with the default labels
  }
}

function setUp() {
  drawQuadrants();
  const drop = $("drop");
  $("file").addEventListener("change", (event) => {
    upload(event.target.files);
    event.target.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    upload(event.dataTransfer.files);
  });
  $("download-csv").addEventListener("click",
    () => download("merkit-answers.csv", "text/csv", csvText()));
  $("download-json").addEventListener("click", () => download("merkit-answers.json",
    "application/json", JSON.stringify(answers.map((a) => a.result ||
      { path: a.name, error: a.error }), null, 2) + "\n"));
  document.body.dataset.state = "ready";
  loadModel();
}

setUp();
