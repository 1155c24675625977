// The live view's events panel: the media folder's events, newest first; a click plays the clip.
"use strict";
(() => {
  const list = document.getElementById("event-list");
  const form = document.getElementById("event-filter");
  const player = document.getElementById("event-player");
  const REFRESH_MS = 3000;
  let shown = "";

  function fillSelect(select, values) {
    const keep = select.value;
    const have = new Set(Array.from(select.options).map((o) => o.value));
    for (const value of values) {
      if (!have.has(value)) select.add(new Option(value, value));
    }
    select.value = keep;
  }

  function when(seconds) {
    return new Date(seconds * 1000).toLocaleString();
  }

  function item(event) {
    const li = document.createElement("li");
    li.className = "event";
    li.dataset.id = event.id;
    li.dataset.label = event.label;
    li.dataset.camera = event.camera;
    if (event.snapshot) {
      const img = document.createElement("img");
      img.src = `/api/events/${encodeURIComponent(event.id)}/snapshot.jpg`;
      img.alt = `${event.label} on ${event.camera}`;
      li.append(img);
    }
    const meta = document.createElement("div");
    meta.className = "meta";
    const duration = event.duration_s === null ? "going on" : `${event.duration_s.toFixed(1)} s`;
    meta.textContent = `${event.camera} · ${event.label} · ${when(event.start_time)} · ${duration}`;
    li.append(meta);
    li.addEventListener("click", () => play(event, li));
    return li;
  }

  function play(event, li) {
    if (!event.clip) return;
    for (const other of list.querySelectorAll("li.playing")) other.classList.remove("playing");
    li.classList.add("playing");
    player.hidden = false;
    player.src = `/api/events/${encodeURIComponent(event.id)}/clip.mp4`;
    player.dataset.id = event.id;
    player.play().catch(() => {});
  }

  async function refresh() {
    const query = new URLSearchParams(new FormData(form));
    query.set("limit", "50");
    try {
      const response = await fetch(`/api/events?${query}`);
      if (!response.ok) return;
      const body = await response.json();
      fillSelect(form.elements.camera, body.cameras);
      fillSelect(form.elements.label, body.labels);
      const key = JSON.stringify(body.events);
      if (key === shown) return;
      shown = key;
      const playing = player.dataset.id;
      list.replaceChildren(...body.events.map(item));
      if (!body.events.length) list.innerHTML = '<li class="empty">No events.</li>';
      const again = playing && list.querySelector(`li[data-id="${CSS.escape(playing)}"]`);
      if (again) again.classList.add("playing");
    } catch (error) {
      // The run ended or the network blinked: try again on the next tick.
    }
  }

  form.addEventListener("change", () => { shown = ""; refresh(); });
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
