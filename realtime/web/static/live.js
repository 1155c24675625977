// Live page: the <img> shows the MJPEG stream by itself; the labels arrive over Server-Sent Events.
"use strict";

const labels = new EventSource("labels");
labels.onmessage = (message) => {
  const state = JSON.parse(message.data);
  document.getElementById("frame").textContent = state.frame;
  document.getElementById("fps").textContent = state.fps.toFixed(1);
  const items = state.people.length
    ? state.people.map((p) => (p.label ? `#${p.track} ${p.label} ${p.score.toFixed(2)}` : `#${p.track} · no action yet`))
    : ["nobody in view"];
  document.getElementById("labels").replaceChildren(...items.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
};
