// The result's timeline: one row per tracked person, coloured by action, on the clip's time axis.
// Drawn as SVG from /api/jobs/<id>/timeline (realtime/timeline.py makes the same chart as a PNG).
// Colours go in presentation attributes, never in style attributes, so the page's CSP holds.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const LAYOUT = {width: 640, left: 52, right: 14, top: 8, row: 20, gap: 6, axis: 26, legendLine: 22};

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// A 1-2-5 step giving at most `most` ticks.
function tickStep(duration, most = 8) {
  if (!(duration > 0)) return 1;
  const base = 10 ** Math.floor(Math.log10(duration / most));
  return [1, 2, 5, 10].map((f) => f * base).find((step) => duration / step <= most);
}

function legendLayout(labels, measure) {
  const placed = [];
  let line = 0, x = LAYOUT.left;
  for (const label of labels) {
    const w = 16 + measure(label) + 18;
    if (x + w > LAYOUT.width - LAYOUT.right && x > LAYOUT.left) { line += 1; x = LAYOUT.left; }
    placed.push({line, x, label});
    x += w;
  }
  return placed;
}

// Draws `data` into `svg` and makes a click seek `video`; returns a function that moves the playhead.
function drawTimeline(svg, data, video) {
  const {width, left, right, top, row, gap, axis, legendLine} = LAYOUT;
  const plotWidth = width - left - right;
  const duration = data.duration > 0 ? data.duration : 1;
  const xOf = (t) => left + plotWidth * Math.min(Math.max(t, 0), duration) / duration;
  const rows = data.rows;
  const body = Math.max(1, rows.length) * (row + gap);
  const labels = data.labels;
  const legend = legendLayout(labels, (label) => label.length * 6.2);
  const legendLines = legend.length ? legend[legend.length - 1].line + 1 : 0;
  const height = top + body + axis + legendLines * legendLine + 4;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.dataset.duration = duration;

  const axisY = top + body;
  const step = tickStep(duration);
  const ticks = svgElement("g", {class: "timeline-axis"});
  for (let t = 0; t <= duration + 1e-9; t += step) {
    const x = xOf(t);
    ticks.append(svgElement("line", {x1: x, x2: x, y1: top, y2: axisY + 4, class: "grid"}),
                 svgElement("text", {x, y: axisY + 17, "text-anchor": "middle"}, `${+t.toFixed(3)} s`));
  }
  ticks.append(svgElement("line", {x1: xOf(0), x2: xOf(duration), y1: axisY, y2: axisY, class: "axis"}));
  svg.append(ticks);

  if (!rows.length) {
    svg.append(svgElement("text", {x: left + 6, y: top + row - 6, class: "empty"}, "no action recognised"));
  }
  rows.forEach((person, i) => {
    const y = top + i * (row + gap);
    const group = svgElement("g", {class: "timeline-row", "data-track": person.track});
    group.append(svgElement("text", {x: 4, y: y + row - 6, class: "row-name"}, person.name),
                 svgElement("rect", {x: xOf(0), y, width: plotWidth, height: row, class: "track-bg"}));
    for (const segment of person.segments) {
      const rect = svgElement("rect", {x: xOf(segment.start), y, width: Math.max(1, xOf(segment.end) - xOf(segment.start)),
                                       height: row, fill: data.colours[segment.label], class: "segment",
                                       "data-label": segment.label, "data-start": segment.start});
      const reps = segment.reps ? ` ×${segment.reps}` : "";
      rect.append(svgElement("title", {}, `${person.name} ${segment.label}${reps} ` +
                                          `${segment.start.toFixed(2)}–${segment.end.toFixed(2)} s`));
      group.append(rect);
      const width = xOf(segment.end) - xOf(segment.start);
      if (reps && width >= 8 * reps.length) {  // the count over the bar, where it fits
        group.append(svgElement("text", {x: xOf(segment.start) + width / 2, y: y + row - 6, "text-anchor": "middle",
                                         class: "reps", "data-reps": segment.reps}, reps.trim()));
      }
    }
    svg.append(group);
  });

  for (const {line, x, label} of legend) {
    const y = axisY + axis + 8 + line * legendLine;  // text baseline, below the tick labels
    svg.append(svgElement("rect", {x, y: y - 11, width: 12, height: 12, fill: data.colours[label], class: "swatch"}),
               svgElement("text", {x: x + 16, y, class: "legend"}, label));
  }

  const playhead = svgElement("line", {id: "playhead", x1: xOf(0), x2: xOf(0), y1: top - 3, y2: axisY, class: "playhead"});
  svg.append(playhead);
  const movePlayhead = () => {
    const x = xOf(video.currentTime || 0);
    playhead.setAttribute("x1", x);
    playhead.setAttribute("x2", x);
  };

  svg.onclick = (event) => {
    const box = svg.getBoundingClientRect();
    const x = (event.clientX - box.left) * width / box.width;
    const t = (x - left) / plotWidth * duration;
    if (t < 0 || t > duration) return;
    video.currentTime = Math.min(t, video.duration || t);
    movePlayhead();
  };
  video.ontimeupdate = movePlayhead;
  movePlayhead();
  return movePlayhead;
}
