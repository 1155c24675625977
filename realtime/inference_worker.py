"""Inference: pose every (skip+1)-th frame, follow people, classify their windows.

Runs between FrameQueues: a pose pool (pose threads, then the tracker in frame order) and
a classify thread (windows + LSTM). It never draws; it turns each `Frame` into a
`FrameResult` carrying the tracks and their latest predictions.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from .capture import EndOfStream, FrameQueue
from .classifier import ActionClassifier
from .features import TrackWindow
from .pose import PoseBackend
from .pose_pool import PoseEstimate, PoseJob, PoseSchedule, estimate
from .smoothing import ProbabilitySmoother
from .tracker import Tracker
from .types import Frame, FrameResult, Prediction, Track


MAX_REMEMBERED_TRACKS = 64


@dataclass
class PosedFrame:
    """Between the two steps: a frame's result before classification, and the tracks that ended."""

    result: FrameResult
    expired: list[int]


class ActionRecognizer:
    """The per-frame logic, usable without a thread (benchmarks, the web app's jobs).

    Two steps: `pose_step` (pose + tracker) and `classify_step` (windows + LSTM); `process`
    runs both in turn. The pipeline poses in a `PosePool` that calls `track_step` in frame
    order, and classifies in another thread, so the cores that pose never wait for the
    LSTM. The steps touch disjoint state (tracker vs windows and verdicts) and hand over
    only through the PosedFrame they pass along a queue.
    """

    def __init__(self, backend: PoseBackend | None, classifier: ActionClassifier | None, skip: int = 0,
                 tracker: Tracker | None = None, smoothing_s: float = 0.0) -> None:
        self.backend = backend
        self.classifier = classifier
        self.tracker = tracker or Tracker()
        self._schedule = PoseSchedule(skip)
        self._smoother = ProbabilitySmoother(smoothing_s)
        self._windows: dict[int, TrackWindow] = {}
        self._predictions: dict[int, Prediction] = {}
        self._last_tracks: list[Track] = []
        self._seq = 0
        self.poses_run = 0

    def process(self, frame: Frame) -> FrameResult:
        return self.classify_step(self.pose_step(frame))

    def pose_step(self, frame: Frame) -> PosedFrame:
        """Pose (every skip+1-th frame) and track, in the calling thread."""
        if self.backend is None:
            raise RuntimeError("this recognizer has no pose backend of its own; feed it through a PosePool")
        job = PoseJob(self._seq, frame, self._schedule.next())
        self._seq += 1
        return self.track_step(estimate(self.backend, job))

    def track_step(self, posed: PoseEstimate) -> PosedFrame:
        """Follow people from a frame's poses; frames in order (the pose pool calls this)."""
        expired: list[int] = []
        if posed.poses is not None:
            self.poses_run += 1
            tracks, expired = self.tracker.update(posed.poses, posed.frame.t_media)
            # Snapshots: the tracker updates its own Track objects in place.
            self._last_tracks = [Track(t.track_id, t.keypoints, t.scores, t.box) for t in tracks]
        return PosedFrame(FrameResult(posed.frame, self._last_tracks, posed.poses is not None, posed.pose_ms),
                          expired)

    def classify_step(self, posed: PosedFrame) -> FrameResult:
        result = posed.result
        if result.posed:
            t0 = time.perf_counter()
            for track_id in posed.expired:
                self._forget(track_id)
            if len(self._windows) > MAX_REMEMBERED_TRACKS:
                # A crowd: bound memory by forgetting everyone not in view now, before the
                # tracker's expiry would (expiries themselves always arrive: the queue is lossless).
                current = {t.track_id for t in result.tracks}
                for track_id in [i for i in self._windows if i not in current]:
                    self._forget(track_id)
            if self.classifier is not None:
                self._classify(result.tracks, result.frame.t_media)
            result.classify_ms = (time.perf_counter() - t0) * 1000
        # Frames between poses carry the last tracks with the latest verdicts.
        result.tracks = [replace(t, prediction=self._predictions.get(t.track_id)) for t in result.tracks]
        return result

    def _classify(self, tracks: list[Track], t: float) -> None:
        ready_ids, windows = [], []
        for track in tracks:
            window = self._windows.get(track.track_id)
            if window is None:
                window = self._windows[track.track_id] = TrackWindow(self.classifier.spec)
            window.add(t, track.keypoints, track.scores)
            features = window.features()
            if features is not None:
                ready_ids.append(track.track_id)
                windows.append(features)
        if windows:
            for track_id, probs in zip(ready_ids, self.classifier.predict_proba(np.stack(windows))):
                smoothed = self._smoother.update(track_id, t, probs)
                self._predictions[track_id] = self.classifier.verdict(smoothed)

    def _forget(self, track_id: int) -> None:
        self._windows.pop(track_id, None)
        self._predictions.pop(track_id, None)
        self._smoother.forget(track_id)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


class InferenceWorker(threading.Thread):
    """Moves items from `inbox` through `step` (default: the whole ActionRecognizer) into `outbox`."""

    def __init__(self, recognizer: ActionRecognizer, inbox: FrameQueue, outbox: FrameQueue,
                 stop: threading.Event, step: Callable[[Any], Any] | None = None, name: str = "inference") -> None:
        super().__init__(name=name, daemon=True)
        self.recognizer = recognizer
        self.step = step or recognizer.process
        self.inbox = inbox
        self.outbox = outbox
        self.stop = stop
        self.error: str | None = None

    def run(self) -> None:
        end = EndOfStream()
        try:
            for item in self.inbox.items(self.stop):
                if isinstance(item, EndOfStream):
                    end = item
                    break
                if not self.outbox.put(self.step(item), self.stop):
                    break
        except Exception as exc:  # report, then let the main thread finalize outputs
            self.error = f"inference failed: {type(exc).__name__}: {exc}"
            end = EndOfStream(self.error)
        finally:
            self.outbox.put(end, self.stop)
