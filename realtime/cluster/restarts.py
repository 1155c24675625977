"""One time line per camera across actor restarts, for the job's timeline chart.

A restarted actor runs a fresh pipeline: its `t` (seconds since the camera's first frame), frame
numbers and track ids start again from zero, after its `{"type":"stream","status":"restarted"}`
event. The JSON-lines file and MQTT keep the events as the pipeline made them (each run is
consistent in itself, and the restart event marks the seam). The timeline draws the whole job on
one axis, so its writer gets them aligned: `t` shifted by the wall-clock time between the camera's
first `opened` and this run's, track ids after the previous runs' ids, and the people of the dead
run closed (`person` `left`) when the restart is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..sinks import EventWriter


@dataclass
class _Camera:
    first_opened: float | None = None  # wall clock of the camera's first `opened`
    shift_s: float = 0.0  # added to this run's `t`
    id_base: int = 0  # added to this run's track ids
    last_id: int = 0  # the highest (aligned) track id so far
    labelled: set[int] = field(default_factory=set)  # aligned ids with a label and no `left` yet


class RestartAligner:
    """Events of the whole job in, the same on one time line per camera out."""

    def __init__(self) -> None:
        self.cameras: dict[str, _Camera] = {}

    def align(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        camera = self.cameras.setdefault(str(event.get("camera", "")), _Camera())
        kind, status = event.get("type"), event.get("status")
        if kind == "stream" and status == "opened" and "time" in event:
            if camera.first_opened is None:
                camera.first_opened = float(event["time"])
            else:
                camera.shift_s = float(event["time"]) - camera.first_opened
        if kind == "stream" and status == "restarted":
            at = float(event["time"]) - (camera.first_opened or float(event["time"]))
            gone = [
                {"type": "person", "camera": event.get("camera"), "status": "left", "t": round(at, 3), "track": track}
                for track in sorted(camera.labelled)
            ]
            camera.labelled.clear()
            camera.id_base = camera.last_id
            return [*gone, event]
        if "t" not in event or "track" not in event:
            return [event]
        track = int(event["track"]) + camera.id_base
        camera.last_id = max(camera.last_id, track)
        if kind == "action":
            camera.labelled.add(track)
        elif kind == "person" and status == "left":
            camera.labelled.discard(track)
        return [{**event, "t": round(float(event["t"]) + camera.shift_s, 3), "track": track}]


class RestartAlignedWriter:
    """An EventWriter that hands events on to `writer` aligned by a RestartAligner."""

    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer
        self.aligner = RestartAligner()

    def send(self, event: dict[str, Any]) -> None:
        for aligned in self.aligner.align(event):
            self.writer.send(aligned)

    def close(self) -> None:
        self.writer.close()
