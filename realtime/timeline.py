"""Each person's action over a clip, as a chart: one row per track, coloured by class, clip time across.

Built from the events the pipeline writes (`action` events: t, track, label, repetitions; `person`
`left` events; the `stream` `opened` event and the final `summary` for the clip's length),
so the web page and `--timeline out.png` draw the same thing from the same data.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import OutputError
from .sinks import prepare_folder
from .types import DEFAULT_CAMERA

# Okabe-Ito colours (told apart with the common colour-vision deficiencies), RGB hex.
CLASS_COLOURS = {
    "JUMPING": "#e69f00",
    "JUMPING_JACKS": "#56b4e9",
    "BOXING": "#d55e00",
    "WAVING_2HANDS": "#009e73",
    "WAVING_1HAND": "#cc79a7",
    "CLAPPING_HANDS": "#0072b2",
    "OTHER": "#999999",
}
# For labels of a checkpoint trained on other classes: picked by a stable hash of the name.
EXTRA_COLOURS = ("#f0e442", "#882255", "#44aa99", "#332288", "#117733", "#aa4499", "#661100", "#6699cc")


def class_colour(label: str) -> str:
    return CLASS_COLOURS.get(label) or EXTRA_COLOURS[zlib.crc32(label.encode()) % len(EXTRA_COLOURS)]


@dataclass(frozen=True)
class Segment:
    start: float  # seconds of clip time
    end: float
    label: str
    reps: int = 0  # repetitions counted while this label was shown


@dataclass
class Row:
    """One tracked person: the labels shown for them, in time order."""

    camera: str
    track: int
    segments: list[Segment] = field(default_factory=list)


@dataclass
class _Open:
    """A row's current label from its start, with the person's total of repetitions before it."""

    row: Row
    start: float
    label: str
    total_before: int  # without the ones carried into this label from the window that named it
    total: int  # the latest total seen


def _totals(event: dict[str, Any]) -> tuple[int, int]:
    """(total before this event's run, total) of an event with counts; (0, 0) without."""
    total = int(event.get("reps_total", 0))
    return total - int(event.get("reps", 0)), total


@dataclass
class Timeline:
    duration: float  # the clip's length in seconds (the time axis)
    rows: list[Row]

    @property
    def labels(self) -> list[str]:
        """Every label drawn, in order of first appearance (for the legend)."""
        seen: dict[str, None] = {}
        for segment in sorted((s for row in self.rows for s in row.segments), key=lambda s: s.start):
            seen.setdefault(segment.label)
        return list(seen)

    def row_name(self, row: Row) -> str:
        cameras = {r.camera for r in self.rows}
        return f"#{row.track}" if len(cameras) <= 1 else f"{row.camera} #{row.track}"

    @classmethod
    def from_events(cls, events: Iterable[dict[str, Any]], duration: float | None = None) -> Timeline:
        """The chart's data from pipeline events (other event types are ignored).

        A label lasts from its `action` event to the person's next one, to their `person`
        `left` event, or to the end of the clip. The clip's length is `duration` if given,
        else the summary's frames over the source's frame rate; never shorter than the last event.
        """
        open_rows: dict[tuple[str, int], _Open] = {}
        rows: dict[tuple[str, int], Row] = {}
        last_t = 0.0
        fps: dict[str, float] = {}  # per camera, from its `opened` event
        frames_out: dict[str, int] = {}  # per camera, from its summary
        closed: list[tuple[Row, Segment]] = []
        for event in events:
            kind, status = event.get("type"), event.get("status")
            camera = str(event.get("camera", DEFAULT_CAMERA))
            if kind == "stream" and status == "opened" and event.get("fps"):
                fps[camera] = float(event["fps"])
            elif kind == "summary" and "frames_out" in event:
                frames_out[camera] = int(event["frames_out"])
            elif kind == "reps" and (camera, int(event["track"])) in open_rows:
                open_rows[(camera, int(event["track"]))].total = _totals(event)[1]
            elif kind == "action" or (kind == "person" and status == "left"):
                key = (camera, int(event["track"]))
                t = float(event["t"])
                last_t = max(last_t, t)
                before, total = _totals(event)
                if key in open_rows:
                    current = open_rows.pop(key)
                    # Repetitions carried into the next label are that label's.
                    closed.append((current.row, _segment(current, t, before if kind == "action" else total)))
                if kind == "action":
                    row = rows.setdefault(key, Row(*key))
                    open_rows[key] = _Open(row, t, str(event["label"]), before, total)
        if duration is None:
            duration = max((n / fps[c] for c, n in frames_out.items() if fps.get(c)), default=last_t)
        duration = max(duration, last_t)
        closed += [(o.row, _segment(o, duration, o.total)) for o in open_rows.values()]
        for row, segment in closed:
            if segment.end > segment.start:
                row.segments.append(segment)
        for row in rows.values():
            row.segments.sort(key=lambda s: s.start)
        ordered = [rows[key] for key in sorted(rows) if rows[key].segments]
        return cls(duration=duration, rows=ordered)

    def to_dict(self) -> dict[str, Any]:
        """What the web page draws from (JSON)."""
        return {
            "duration": round(self.duration, 3),
            "rows": [
                {
                    "camera": row.camera,
                    "track": row.track,
                    "name": self.row_name(row),
                    "segments": [
                        {"start": round(s.start, 3), "end": round(s.end, 3), "label": s.label, "reps": s.reps}
                        for s in row.segments
                    ],
                }
                for row in self.rows
            ],
            "labels": self.labels,  # the legend's order (JSON objects may come back with sorted keys)
            "colours": {label: class_colour(label) for label in self.labels},
        }


def _segment(current: _Open, end: float, total: int) -> Segment:
    return Segment(current.start, end, current.label, max(0, total - current.total_before))


# --- the PNG chart ---

WIDTH = 960
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP = 84, 24, 16
ROW_HEIGHT, ROW_GAP = 24, 8
AXIS_HEIGHT, LEGEND_LINE = 34, 26
FONT = cv2.FONT_HERSHEY_SIMPLEX
INK, GRID, TRACK_BG, PAPER = (40, 35, 30), (200, 200, 200), (238, 238, 238), (255, 255, 255)  # BGR


def _bgr(hex_colour: str) -> tuple[int, int, int]:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return b, g, r


def tick_step(duration: float, most: int = 10) -> float:
    """A 1-2-5 step that puts at most `most` ticks on the axis."""
    if duration <= 0:
        return 1.0
    step = 10 ** math.floor(math.log10(duration / most))
    for factor in (1, 2, 5, 10):
        if duration / (step * factor) <= most:
            return step * factor
    return step * 10


def draw(timeline: Timeline, width: int = WIDTH) -> np.ndarray:
    """The chart as a BGR image."""
    plot_w = width - MARGIN_LEFT - MARGIN_RIGHT
    rows = timeline.rows
    legend = _legend_layout(timeline.labels, width)
    legend_lines = max((line for line, _, _ in legend), default=-1) + 1
    body = max(1, len(rows)) * (ROW_HEIGHT + ROW_GAP)
    height = MARGIN_TOP + body + AXIS_HEIGHT + legend_lines * LEGEND_LINE + 8
    image = np.full((height, width, 3), PAPER, np.uint8)
    duration = timeline.duration if timeline.duration > 0 else 1.0

    def x_of(t: float) -> int:
        return MARGIN_LEFT + round(plot_w * min(max(t, 0.0), duration) / duration)

    axis_y = MARGIN_TOP + body
    step = tick_step(duration)
    for i in range(int(duration / step + 1e-9) + 1):
        x = x_of(i * step)
        cv2.line(image, (x, MARGIN_TOP), (x, axis_y + 4), GRID, 1)
        text = f"{i * step:g} s"
        w = cv2.getTextSize(text, FONT, 0.45, 1)[0][0]
        cv2.putText(image, text, (min(x - w // 2, width - w - 2), axis_y + 20), FONT, 0.45, INK, 1, cv2.LINE_AA)
    if not rows:
        cv2.putText(
            image,
            "no action recognised",
            (MARGIN_LEFT + 8, MARGIN_TOP + ROW_HEIGHT - 7),
            FONT,
            0.5,
            INK,
            1,
            cv2.LINE_AA,
        )
    for i, row in enumerate(rows):
        top = MARGIN_TOP + i * (ROW_HEIGHT + ROW_GAP)
        cv2.putText(image, timeline.row_name(row), (8, top + ROW_HEIGHT - 7), FONT, 0.5, INK, 1, cv2.LINE_AA)
        cv2.rectangle(image, (x_of(0), top), (x_of(duration), top + ROW_HEIGHT - 1), TRACK_BG, -1)
        for segment in row.segments:
            x0, x1 = x_of(segment.start), x_of(segment.end)
            cv2.rectangle(
                image, (x0, top), (max(x0, x1 - 1), top + ROW_HEIGHT - 1), _bgr(class_colour(segment.label)), -1
            )
            if segment.reps > 0:
                _bar_count(image, f"x{segment.reps}", x0, x1, top)
    cv2.line(image, (x_of(0), axis_y), (x_of(duration), axis_y), INK, 1)
    legend_top = axis_y + AXIS_HEIGHT
    for line, x, label in legend:
        y = legend_top + line * LEGEND_LINE
        cv2.rectangle(image, (x, y), (x + 13, y + 13), _bgr(class_colour(label)), -1)
        cv2.putText(image, label, (x + 19, y + 12), FONT, 0.45, INK, 1, cv2.LINE_AA)
    return image


def _bar_count(image: np.ndarray, text: str, x0: int, x1: int, top: int) -> None:
    """A bar's repetitions written over its middle, in white on the bar's colour, where it fits."""
    (w, h), _ = cv2.getTextSize(text, FONT, 0.45, 1)
    if w + 4 > x1 - x0:
        return
    origin = ((x0 + x1 - w) // 2, top + (ROW_HEIGHT + h) // 2)
    cv2.putText(image, text, origin, FONT, 0.45, INK, 2, cv2.LINE_AA)
    cv2.putText(image, text, origin, FONT, 0.45, PAPER, 1, cv2.LINE_AA)


def _legend_layout(labels: list[str], width: int) -> list[tuple[int, int, str]]:
    """(line, x, label) of each legend entry, wrapped to the chart's width."""
    placed, line, x = [], 0, MARGIN_LEFT
    for label in labels:
        w = 19 + cv2.getTextSize(label, FONT, 0.45, 1)[0][0] + 22
        if x + w > width - MARGIN_RIGHT and x > MARGIN_LEFT:
            line, x = line + 1, MARGIN_LEFT
        placed.append((line, x, label))
        x += w
    return placed


def _checked_png_path(path: str | Path) -> Path:
    """A path a timeline can be written to: a .png file name, not a folder."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise OutputError(f"timeline {path} must be a .png file — e.g. --timeline timeline.png")
    if path.is_dir():
        raise OutputError(f"timeline path {path} is a folder — give a file name such as timeline.png")
    return path


def write_timeline_png(events: Iterable[dict[str, Any]], path: str | Path, duration: float | None = None) -> Path:
    """Draw the chart of these events to a PNG file."""
    path = _checked_png_path(path)
    image = draw(Timeline.from_events(events, duration))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ok = cv2.imwrite(str(path), image)
    except (OSError, cv2.error) as exc:
        raise OutputError(f"cannot write the timeline to {path} ({exc}) — choose another path") from None
    if not ok:
        raise OutputError(f"cannot write the timeline to {path} — check that its folder is writable")
    return path


class TimelineWriter:
    """An EventWriter that keeps what the chart needs and draws it to a PNG when closed."""

    KEEP = ("action", "person", "reps", "summary", "stream")

    def __init__(self, path: str | Path, duration: float | None = None) -> None:
        self.path = _checked_png_path(path)
        prepare_folder(self.path, "timeline")
        self.duration = duration
        self.events: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any]) -> None:
        if event.get("type") in self.KEEP:
            self.events.append(event)

    def close(self) -> None:
        write_timeline_png(self.events, self.path, self.duration)
