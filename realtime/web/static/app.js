// Upload page: POST the file, follow the job over Server-Sent Events, then play the result.
"use strict";

const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("upload-button").disabled = false;
}

function showState(job) {
  $("progress").value = job.progress;
  $("percent").textContent = Math.round(job.progress);
  $("fps").textContent = job.fps == null ? "–" : job.fps.toFixed(1);  // null until a rate means something
  $("frames").textContent = job.frame_count ? `${job.frames} / ${job.frame_count}` : job.frames;
  const done = job.warning ? "Done — part of the video could not be read." : "Done.";  // its good frames are shown
  $("status").textContent = {queued: "Waiting for the analyser…", running: "Analysing…",
                             done, failed: "Failed."}[job.status] || job.status;
  $("warning").textContent = job.warning || "";
  $("warning").hidden = !job.warning;
  $("notices").replaceChildren(...job.notices.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
}

function showResult(job) {
  const video = $("result-video");
  video.src = job.links.result;
  $("download-video").href = `${job.links.result}?download=1`;
  $("download-events").href = `${job.links.events_log}?download=1`;
  $("result").hidden = false;
  video.play().catch(() => {});  // autoplay may be refused; the controls remain
  $("upload-button").disabled = false;
  fetch(job.links.timeline)
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then((data) => { drawTimeline($("timeline"), data, video); $("timeline").dataset.ready = "1"; })
    .catch((err) => { $("timeline-figure").hidden = true; console.warn(`no timeline: ${err}`); });
  showEpisodes(job.links.episodes, video);
}

// The result's action episodes (docs/media.md), as the live view lists a run's; a click seeks there.
function showEpisodes(url, video) {
  const list = $("episode-list");
  list.replaceChildren();
  $("episodes").hidden = true;
  fetch(`${url}?limit=200`)
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
    .then((body) => {
      const episodes = body.events.slice().sort((a, b) => a.t_start - b.t_start);
      list.replaceChildren(...episodes.map((episode) => {
        const li = document.createElement("li");
        li.className = "event";
        li.dataset.id = episode.id;
        li.dataset.label = episode.label;
        if (episode.snapshot) {
          const img = document.createElement("img");
          img.src = `${url}/${encodeURIComponent(episode.id)}/snapshot.jpg`;
          img.alt = `${episode.label}, person ${episode.track}`;
          li.append(img);
        }
        const meta = document.createElement("div");
        meta.className = "meta";
        const length = episode.duration_s == null ? "" : ` · ${episode.duration_s.toFixed(1)} s`;
        meta.textContent = `#${episode.track} ${episode.label} · at ${episode.t_start.toFixed(1)} s${length}`;
        li.append(meta);
        li.addEventListener("click", () => { video.currentTime = episode.t_start; video.play().catch(() => {}); });
        return li;
      }));
      $("episodes").hidden = episodes.length === 0;
    })
    .catch((err) => console.warn(`no events: ${err}`));
}

function follow(job) {
  const events = new EventSource(job.links.events);
  events.onmessage = (message) => {
    const state = JSON.parse(message.data);
    state.links = job.links;
    showState(state);
    if (state.status === "done") {
      events.close();
      showResult(state);
    } else if (state.status === "failed") {
      events.close();
      showError(state.error || "the analysis failed");
    }
  };
  events.onerror = () => {
    // EventSource reconnects by itself; only give up when the job is gone.
    // While the server restarts the fetch fails too: EventSource keeps trying, and the job resumes.
    fetch(job.links.self)
      .then((r) => { if (r.status === 404) { events.close(); showError("the job no longer exists"); } })
      .catch(() => {});
  };
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("video-input").files[0];
  if (!file) return;
  $("error").hidden = true;
  $("result").hidden = true;
  $("timeline").replaceChildren();
  delete $("timeline").dataset.ready;
  $("timeline-figure").hidden = false;
  $("job").hidden = false;
  $("upload-button").disabled = true;
  showState({progress: 0, fps: null, frames: 0, frame_count: null, status: "queued", warning: null, notices: []});
  $("status").textContent = "Uploading…";
  const body = new FormData();
  body.append("video", file);
  let response;
  try {
    response = await fetch("/api/jobs", {method: "POST", body});
  } catch (err) {
    showError(`upload failed: ${err}`);
    return;
  }
  const reply = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
  if (response.status !== 201) {
    $("job").hidden = true;
    showError(reply.error || `upload refused (HTTP ${response.status})`);
    return;
  }
  follow(reply);
});
