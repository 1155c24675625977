// Live page: one panel per camera. Up to `data-live-streams` panels show their MJPEG stream (the
// <img> plays it by itself); the others show a still, refreshed every second, and a click on one
// makes it live in place of the camera that has been live the longest. Every camera's labels
// arrive over one Server-Sent Events stream, each message naming its camera.
"use strict";

const grid = document.getElementById("cameras");
const maxLive = Number(grid.dataset.liveStreams);
const STILL_REFRESH_MS = 1000;
const STILL_RETRY_MS = 3000;
const panels = new Map(); // camera name -> its <section>
const liveCameras = []; // shown live, the longest-live first

const streamUrl = (camera) => `stream/${encodeURIComponent(camera)}.mjpg`;
const stillUrl = (camera) => `frame/${encodeURIComponent(camera)}.jpg?t=${Date.now()}`;

function show(panel, mode) {
  const camera = panel.dataset.camera;
  panel.dataset.mode = mode;
  if (mode === "live") liveCameras.push(camera);
  // A new src ends the previous request, so a camera turned still stops holding a connection.
  panel.querySelector("img.view").src = mode === "live" ? streamUrl(camera) : stillUrl(camera);
}

function refreshStill(panel, delay) {
  setTimeout(() => {
    if (panel.dataset.mode === "still") panel.querySelector("img.view").src = stillUrl(panel.dataset.camera);
  }, delay);
}

function adopt(panel) {
  panels.set(panel.dataset.camera, panel);
  const img = panel.querySelector("img.view");
  img.addEventListener("load", () => {
    if (panel.dataset.mode === "still") refreshStill(panel, STILL_REFRESH_MS);
  });
  img.addEventListener("error", () => {
    if (panel.dataset.mode === "still") refreshStill(panel, STILL_RETRY_MS);
  });
  img.addEventListener("click", () => {
    if (panel.dataset.mode === "live") return;
    if (liveCameras.length >= maxLive) show(panels.get(liveCameras.shift()), "still");
    show(panel, "live");
  });
}

// The cameras the server knew when it made the page.
for (const panel of grid.querySelectorAll("section.camera")) {
  adopt(panel);
  if (panel.dataset.mode === "live") liveCameras.push(panel.dataset.camera);
  else if (panel.querySelector("img.view").complete) refreshStill(panel, STILL_REFRESH_MS);
}

// A camera whose first frame came after the page was made.
function panelFor(camera) {
  let panel = panels.get(camera);
  if (panel) return panel;
  panel = document.getElementById("camera-template").content.firstElementChild.cloneNode(true);
  panel.dataset.camera = camera;
  panel.querySelector("h2").textContent = camera;
  panel.querySelector("img.view").alt = `camera ${camera}, annotated`;
  grid.append(panel);
  adopt(panel);
  show(panel, liveCameras.length < maxLive ? "live" : "still");
  document.getElementById("no-cameras").hidden = true;
  return panel;
}

const labels = new EventSource("labels");
labels.onmessage = (message) => {
  const state = JSON.parse(message.data);
  const panel = panelFor(state.camera);
  panel.querySelector(".frame").textContent = state.frame;
  panel.querySelector(".fps").textContent = state.fps.toFixed(1);
  const items = state.people.length
    ? state.people.map((p) => (p.label ? `#${p.track} ${p.label} ${p.score.toFixed(2)}` : `#${p.track} · no action yet`) +
                             (p.reps ? ` ×${p.reps}` : ""))
    : ["nobody in view"];
  panel.querySelector(".labels").replaceChildren(...items.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
};
