"""The action timeline: segments from pipeline events, and the PNG chart read back with OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime.errors import OutputError
from realtime.timeline import (
    MARGIN_LEFT,
    MARGIN_RIGHT,
    Segment,
    Timeline,
    TimelineWriter,
    class_colour,
    write_timeline_png,
)

# A 10 s clip at 25 fps, three people, as the pipeline writes it (JSONL events, in time order).
EVENTS = [
    {"type": "stream", "status": "opened", "camera": "cam0", "source": "clip.mp4", "fps": 25.0},
    {"type": "action", "camera": "cam0", "t": 1.24, "frame": 31, "track": 1, "label": "JUMPING_JACKS", "score": 0.9},
    {"type": "action", "camera": "cam0", "t": 2.0, "frame": 50, "track": 2, "label": "BOXING", "score": 0.8},
    {"type": "action", "camera": "cam0", "t": 4.0, "frame": 100, "track": 1, "label": "WAVING_2HANDS", "score": 0.7},
    {"type": "person", "status": "left", "camera": "cam0", "t": 6.0, "frame": 150, "track": 2, "label": "BOXING"},
    {"type": "action", "camera": "cam0", "t": 7.0, "frame": 175, "track": 3, "label": "OTHER", "score": 0.6},
    {"type": "stream", "status": "ended", "camera": "cam0", "stopped_by": "end"},
    {"type": "summary", "frames_in": 250, "frames_out": 250, "dropped": 0, "labels": {}},
]


def test_segments_follow_label_changes_departures_and_the_clip_end():
    timeline = Timeline.from_events(EVENTS)
    assert timeline.duration == pytest.approx(10.0)  # 250 frames at 25 fps
    assert [row.track for row in timeline.rows] == [1, 2, 3]
    one, two, three = timeline.rows
    assert one.segments == [Segment(1.24, 4.0, "JUMPING_JACKS"), Segment(4.0, 10.0, "WAVING_2HANDS")]
    assert two.segments == [Segment(2.0, 6.0, "BOXING")]  # ends when the person left
    assert three.segments == [Segment(7.0, 10.0, "OTHER")]
    assert timeline.labels == ["JUMPING_JACKS", "BOXING", "WAVING_2HANDS", "OTHER"]
    data = timeline.to_dict()
    assert [r["name"] for r in data["rows"]] == ["#1", "#2", "#3"]
    assert data["colours"]["BOXING"] == class_colour("BOXING")
    assert data["labels"] == timeline.labels


def test_duration_without_a_summary_is_the_last_event_and_an_explicit_one_wins():
    partial = [e for e in EVENTS if e["type"] != "summary"]
    assert Timeline.from_events(partial).duration == pytest.approx(7.0)
    assert Timeline.from_events(partial, duration=12.5).duration == pytest.approx(12.5)
    assert Timeline.from_events(EVENTS, duration=3.0).duration == pytest.approx(7.0)  # never before an event


def test_rows_of_several_cameras_are_told_apart():
    events = [
        {"type": "action", "camera": "door", "t": 0.5, "track": 1, "label": "BOXING"},
        {"type": "action", "camera": "yard", "t": 0.7, "track": 1, "label": "JUMPING"},
    ]
    timeline = Timeline.from_events(events, duration=2.0)
    assert [timeline.row_name(row) for row in timeline.rows] == ["door #1", "yard #1"]


def bands(image: np.ndarray, hex_colour: str, min_width: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of each horizontal band of pixels of exactly this colour, at least min_width wide."""
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    mask = np.all(image == (b, g, r), axis=2)
    wide = mask.sum(axis=1) >= min_width
    found, y = [], 0
    while y < len(wide):
        if wide[y]:
            y0 = y
            while y < len(wide) and wide[y]:
                y += 1
            xs = np.flatnonzero(mask[y0:y].any(axis=0))
            found.append((y0, y, int(xs.min()), int(xs.max())))
        y += 1
    return found


def test_png_has_one_row_per_person_coloured_by_class_on_the_clip_time_axis(tmp_path):
    path = write_timeline_png(EVENTS, tmp_path / "timeline.png")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] == 960
    # Legend swatches are 14 px wide: anything wider than 30 px is a segment of a row.
    found = {
        label: bands(image, class_colour(label), 30) for label in ("JUMPING_JACKS", "WAVING_2HANDS", "BOXING", "OTHER")
    }
    assert all(len(b) == 1 for b in found.values()), found
    rows = sorted({(y0, y1) for b in found.values() for (y0, y1, _, _) in b})
    assert len(rows) == 3  # the two labels of person 1 share a row
    assert found["JUMPING_JACKS"][0][:2] == found["WAVING_2HANDS"][0][:2]
    plot_w = 960 - MARGIN_LEFT - MARGIN_RIGHT

    def x(t: float) -> int:
        return MARGIN_LEFT + round(plot_w * t / 10.0)

    for label, start, end in (("JUMPING_JACKS", 1.24, 4.0), ("BOXING", 2.0, 6.0), ("OTHER", 7.0, 10.0)):
        ((_, _, x0, x1),) = found[label]
        assert abs(x0 - x(start)) <= 1 and abs(x1 - x(end)) <= 2, (label, x0, x1, x(start), x(end))
    # Rows are in track order, top to bottom.
    assert found["JUMPING_JACKS"][0][0] < found["BOXING"][0][0] < found["OTHER"][0][0]


def test_timeline_writer_draws_what_it_was_sent(tmp_path):
    writer = TimelineWriter(tmp_path / "out" / "t.png")
    for event in EVENTS:
        writer.send(event)
    writer.close()
    image = cv2.imread(str(tmp_path / "out" / "t.png"))
    assert len(bands(image, class_colour("BOXING"), 30)) == 1


def test_a_chart_without_actions_is_still_drawn(tmp_path):
    path = write_timeline_png([{"type": "summary", "frames_out": 1}], tmp_path / "empty.png")
    image = cv2.imread(str(path))
    assert image is not None
    assert not any(bands(image, colour, 30) for colour in map(class_colour, ("OTHER", "BOXING")))


def test_bad_timeline_paths_are_one_line_errors(tmp_path):
    with pytest.raises(OutputError, match=r"must be a \.png file"):
        write_timeline_png(EVENTS, tmp_path / "t.jpg")
    with pytest.raises(OutputError, match=r"must be a \.png file"):
        TimelineWriter(tmp_path / "t.svg")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        write_timeline_png(EVENTS, tmp_path / "dir.png")
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(OutputError, match="cannot write the timeline"):
        write_timeline_png(EVENTS, blocked / "t.png")  # its "folder" is a file
