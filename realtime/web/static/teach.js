// Teach page: add clips (file or camera), mark the action's span, train with progress, activate a model.
"use strict";

const $ = (id) => document.getElementById(id);
let clip = null;  // the Blob or File to upload next, with its name
let recorder = null;

function fail(where, message) {
  $(where).textContent = message;
  $(where).hidden = !message;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function button(text, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

async function call(url, options = {}) {
  const response = await fetch(url, options);
  const body = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

// --- the clip to add: chosen or recorded, previewed, its span marked ---

function preview(blob, name) {
  clip = {blob, name};
  const video = $("clip-preview");
  video.src = URL.createObjectURL(blob);
  video.hidden = false;
  $("span-bar").hidden = false;
  $("span-row").hidden = false;
  $("start-s").value = "";
  $("end-s").value = "";
  drawSpan();
  updateAddButton();
}

function drawSpan() {
  const duration = $("clip-preview").duration;
  const start = parseFloat($("start-s").value) || 0;
  const end = parseFloat($("end-s").value) || duration || 0;
  const mark = $("span-mark");
  if (!duration || !isFinite(duration)) { mark.style.left = "0%"; mark.style.width = "100%"; return; }
  mark.style.left = `${(100 * start) / duration}%`;
  mark.style.width = `${(100 * Math.max(0, end - start)) / duration}%`;
}

function updateAddButton() {
  $("add-button").disabled = !(clip && $("action").value.trim() && $("subject").value.trim());
}

$("clip-file").addEventListener("change", () => {
  const file = $("clip-file").files[0];
  if (file) preview(file, file.name);
});
$("clip-preview").addEventListener("loadedmetadata", drawSpan);
$("clip-preview").addEventListener("click", drawSpan);
for (const id of ["start-s", "end-s"]) $(id).addEventListener("input", drawSpan);
for (const id of ["action", "subject"]) $(id).addEventListener("input", updateAddButton);
$("mark-start").addEventListener("click", () => { $("start-s").value = $("clip-preview").currentTime.toFixed(2); drawSpan(); });
$("mark-end").addEventListener("click", () => { $("end-s").value = $("clip-preview").currentTime.toFixed(2); drawSpan(); });
$("clear-span").addEventListener("click", () => { $("start-s").value = ""; $("end-s").value = ""; drawSpan(); });

$("record").addEventListener("click", async () => {
  fail("clip-error", "");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({video: true, audio: false});
  } catch (err) {
    fail("clip-error", `no camera: ${err.message || err} — choose a file instead`);
    return;
  }
  const video = $("clip-preview");
  video.hidden = false;
  video.srcObject = stream;
  video.play().catch(() => {});
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (event) => { if (event.data.size) chunks.push(event.data); };
  recorder.onstop = () => {
    stream.getTracks().forEach((track) => track.stop());
    video.srcObject = null;
    const type = recorder.mimeType || "video/webm";
    preview(new Blob(chunks, {type}), `recording-${Date.now()}.${type.includes("mp4") ? "mp4" : "webm"}`);
  };
  recorder.start();
  $("record").hidden = true;
  $("stop-recording").hidden = false;
});

$("stop-recording").addEventListener("click", () => {
  if (recorder && recorder.state !== "inactive") recorder.stop();
  $("record").hidden = false;
  $("stop-recording").hidden = true;
});

$("add-button").addEventListener("click", async () => {
  fail("clip-error", "");
  const body = new FormData();
  body.append("video", clip.blob, clip.name);
  body.append("action", $("action").value.trim());
  body.append("subject", $("subject").value.trim());
  if ($("start-s").value) body.append("start_s", $("start-s").value);
  if ($("end-s").value) body.append("end_s", $("end-s").value);
  $("add-button").disabled = true;
  try {
    await call("/api/teach/clips", {method: "POST", body});
    clip = null;
    $("clip-file").value = "";
    $("clip-preview").hidden = true;
    $("span-bar").hidden = true;
    $("span-row").hidden = true;
    await loadClips();
  } catch (err) {
    fail("clip-error", err.message);
  }
  updateAddButton();
});

async function loadClips() {
  const {clips} = await call("/api/teach/clips");
  $("clips").tBodies[0].replaceChildren(...clips.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.id = c.id;
    const span = c.span ? `${c.span[0]}–${c.span[1]}` : "whole clip";
    tr.append(cell(c.action), cell(c.subject), cell(span), cell(c.filename || ""));
    const td = document.createElement("td");
    td.append(button("Remove", async () => { await call(`/api/teach/clips/${c.id}`, {method: "DELETE"}); loadClips(); }));
    tr.append(td);
    return tr;
  }));
}

// --- training ---

function showTraining(state) {
  $("train-progress").value = state.progress;
  $("phase").textContent = state.status === "done" ? "Done." : `${state.phase || state.status} (${Math.round(state.progress)}%)`;
  const warnings = (state.metrics && state.metrics.warnings) || [];
  $("train-warnings").replaceChildren(...warnings.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
  if (state.status === "done" && state.model != null) {
    $("figure").src = `/api/models/${state.model}/figure.png`;
    $("figure-box").hidden = false;
    $("training").dataset.model = state.model;
    loadModels();
  }
  if (state.status === "failed") fail("train-error", state.error || "the training failed");
  $("train-button").disabled = !(state.status === "done" || state.status === "failed");
}

function follow(links) {
  const events = new EventSource(links.events);
  events.onmessage = (message) => {
    const state = JSON.parse(message.data);
    showTraining(state);
    if (state.status === "done" || state.status === "failed") events.close();
  };
}

$("train-button").addEventListener("click", async () => {
  fail("train-error", "");
  $("figure-box").hidden = true;
  const request = {
    mode: document.querySelector("input[name=mode]:checked").value,
    epochs: parseInt($("epochs").value, 10),
    subset: parseInt($("subset").value, 10) || 0,
  };
  try {
    const reply = await call("/api/teach/train", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(request),
    });
    $("training").hidden = false;
    showTraining({status: "queued", progress: 0, phase: "queued"});
    follow(reply.links);
  } catch (err) {
    fail("train-error", err.message);
  }
});

// --- models ---

async function loadModels() {
  const {models} = await call("/api/models");
  $("models").tBodies[0].replaceChildren(...models.map((m) => {
    const tr = document.createElement("tr");
    tr.dataset.id = m.id;
    if (m.active) tr.className = "active";
    const created = new Date(m.created * 1000).toLocaleString();
    tr.append(cell(m.id), cell(m.name), cell(m.classes.join(", ")), cell(created));
    const td = document.createElement("td");
    if (m.active) {
      td.textContent = "active";
    } else {
      td.append(button("Activate", async () => {
        fail("model-error", "");
        try { await call(`/api/models/${m.id}/activate`, {method: "POST"}); } catch (err) { fail("model-error", err.message); }
        loadModels();
      }));
    }
    tr.append(td);
    return tr;
  }));
}

$("rollback").addEventListener("click", async () => {
  fail("model-error", "");
  try { await call("/api/models/rollback", {method: "POST"}); } catch (err) { fail("model-error", err.message); }
  loadModels();
});

loadClips().catch((err) => fail("clip-error", err.message));
loadModels().catch((err) => fail("model-error", err.message));
