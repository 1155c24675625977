"""The article's design in one thread: read → pose → track → classify → output, frame by frame.

Built from the very steps the threaded pipeline runs (`PoseSchedule`, `pose`, `Tracking`,
`ActionClassification`, `OutputStep`), so the benchmark compares designs, not code, and
tests can check the threads change nothing but the timing.
"""

from __future__ import annotations

from collections.abc import Callable

from .inference_worker import ActionClassification
from .pose import PoseBackend
from .pose_stage import PoseSchedule, Tracking, pose
from .types import FrameRecord


class SerialLoop:
    """One record at a time through every step, in the calling thread."""

    def __init__(
        self,
        backend: PoseBackend,
        classification: ActionClassification,
        skip: int = 0,
        pose_fps: float | None = None,
        output: Callable[[FrameRecord], None] | None = None,
    ) -> None:
        self.backend = backend
        self.classification = classification
        self.tracking = Tracking()
        self.output = output
        self._skip, self._pose_fps = skip, pose_fps
        self._schedules: dict[str, PoseSchedule] = {}
        self.poses_run = 0

    def process(self, record: FrameRecord) -> FrameRecord:
        schedule = self._schedules.setdefault(record.camera, PoseSchedule(self._skip, self._pose_fps))
        if schedule.wants(record):
            pose(self.backend, record)
            self.poses_run += 1
        self.classification.classify(self.tracking.track(record))
        if self.output is not None:
            self.output(record)
        return record

    def close(self) -> None:
        self.backend.close()
