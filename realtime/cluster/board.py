"""The job's status board: one small named actor that every camera actor reports to.

It outlives any one camera actor, so it counts their starts (a restart is a start after the
first) and still answers `cluster status` while a camera is down or restarting. Camera actors
push a snapshot every REPORT_INTERVAL_S; the driver marks how each camera ended.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

BOARD_NAME = "status"
# How often each camera actor reports: often enough for a status page, cheap (one small message).
REPORT_INTERVAL_S = 1.0


@dataclass
class CameraStatus:
    """One camera as `cluster status` shows it."""

    camera: str
    actor: str
    state: str = "starting"  # starting, running, reconnecting (its stream was lost), ended, error
    node_id: str = ""
    node_ip: str = ""
    pid: int = 0
    restarts: int = 0
    frames_in: int = 0
    frames_out: int = 0
    fps: float = 0.0
    pose_fps: float = 0.0
    error: str | None = None
    events: list[dict] = field(default_factory=list)  # its newest episodes, when media is kept
    updated: float = field(default_factory=time.time)  # wall clock of the last report

    def row(self) -> dict:
        return asdict(self)


class StatusBoard:
    """The body of the board actor (wrapped with `ray.remote` by the driver). Calls are serial."""

    def __init__(self) -> None:
        self.cameras: dict[str, CameraStatus] = {}
        self.starts: dict[str, int] = {}

    def expect(self, actor: str, cameras: list[str]) -> None:
        """The driver's plan, so cameras whose actor has not started yet are listed too."""
        for camera in cameras:
            self.cameras.setdefault(camera, CameraStatus(camera, actor))

    def register(self, actor: str, cameras: list[str], node_id: str, node_ip: str, pid: int) -> int:
        """A camera actor (re)started; returns how many times it has started (1 = the first)."""
        self.starts[actor] = self.starts.get(actor, 0) + 1
        for camera in cameras:
            self.cameras[camera] = CameraStatus(
                camera, actor, "starting", node_id, node_ip, pid, restarts=self.starts[actor] - 1
            )
        return self.starts[actor]

    def update(self, actor: str, pid: int, snapshot: dict[str, dict]) -> None:
        for camera, values in snapshot.items():
            status = self.cameras.get(camera)
            if status is None or status.pid != pid:  # a report from a predecessor still in flight
                continue
            for key in ("state", "frames_in", "frames_out", "fps", "pose_fps", "error", "events"):
                if key in values:
                    setattr(status, key, values[key])
            status.updated = time.time()

    def mark(self, camera: str, state: str, error: str | None = None) -> None:
        """The driver's word on a camera: ended, or error (also when its actor is gone for good)."""
        status = self.cameras.get(camera)
        if status is not None:
            status.state, status.error, status.updated = state, error or status.error, time.time()
            if state != "running":
                status.fps = status.pose_fps = 0.0

    def snapshot(self) -> list[dict]:
        return [status.row() for status in self.cameras.values()]
