"""The classify stage: each person's window of poses, smoothed class probabilities, the LSTM.

It never draws and never poses: it takes `FrameRecord`s whose `tracks` the pose stage
filled in and sets each track's `prediction` and, with repetition counting on, `reps`
(realtime/reps.py, fed the same samples on the same clock). All ready windows of a frame go to the
classifier in one batch. `ClassifyWorker` runs it in a thread of its own, so the cores
that pose never wait for the LSTM.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import numpy as np

from .classifier import ActionClassifier
from .features import TrackWindow
from .queues import CameraEnd, EndOfStream, FrameQueue
from .reps import RepCounter, RepSettings
from .smoothing import ProbabilitySmoother
from .types import FrameRecord, Prediction, RepCount, Track

# Windows kept per camera before everyone not in view now is forgotten early. The tracker's
# expiries free windows as people leave; this bounds memory in a crowd that keeps changing.
MAX_WINDOWS_PER_CAMERA = 64

PersonKey = tuple[str, int]  # (camera, track id)


class ActionClassification:
    """Windows, smoothing and verdicts for every person of every camera; records in order per camera."""

    def __init__(
        self, classifier: ActionClassifier | None, smoothing_s: float = 0.0, reps: RepSettings | None = None
    ) -> None:
        self.classifier = classifier
        self._smoothing_s = smoothing_s
        self._smoother = ProbabilitySmoother(smoothing_s)
        self._windows: dict[PersonKey, TrackWindow] = {}
        self._predictions: dict[PersonKey, Prediction] = {}
        self.rep_settings = reps  # None: no counting
        self._counters: dict[PersonKey, RepCounter] = {}
        # A model handed over by another thread, taken before the next frame: never mid-batch.
        self._incoming: queue.Queue[ActionClassifier] = queue.Queue(maxsize=1)
        self.switches = 0

    def switch(self, classifier: ActionClassifier) -> None:
        """From any thread: classify with `classifier` from the next frame on; the newest hand-over wins."""
        while True:
            try:
                self._incoming.put_nowait(classifier)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._incoming.get_nowait()

    def _take_incoming(self) -> None:
        try:
            new = self._incoming.get_nowait()
        except queue.Empty:
            return
        old, self.classifier = self.classifier, new
        self.switches += 1
        if old is not None and old.spec != new.spec:
            # The pose history stays; only the windows cut from it change shape.
            self._windows = {key: window.with_spec(new.spec) for key, window in self._windows.items()}
        if old is None or old.labels != new.labels:
            # Smoothed probabilities are per class: another class list starts them afresh.
            self._smoother = ProbabilitySmoother(self._smoothing_s)
        # Verdicts of the old model are not shown under the new one's name.
        self._predictions.clear()

    def classify(self, record: FrameRecord) -> FrameRecord:
        camera = record.camera
        self._take_incoming()
        if record.posed:
            t0 = time.perf_counter()
            for track_id in record.expired:
                self._forget((camera, track_id))
            mine = [key for key in {*self._windows, *self._counters} if key[0] == camera]
            if len(mine) > MAX_WINDOWS_PER_CAMERA:
                current = {(camera, t.track_id) for t in record.tracks}
                for key in mine:
                    if key not in current:
                        self._forget(key)
            if self.classifier is not None:
                self._classify(self.classifier, camera, record.tracks, record.t_media)
            if self.rep_settings is not None:
                self._count(camera, record.tracks, record.t_media)
            record.classify_ms = (time.perf_counter() - t0) * 1000
        # Frames between poses carry the last tracks with the latest verdicts and counts.
        keys = [(camera, t.track_id) for t in record.tracks]
        record.tracks = [
            replace(t, prediction=self._predictions.get(key), reps=self._rep_count(key))
            for t, key in zip(record.tracks, keys, strict=True)
        ]
        return record

    def _count(self, camera: str, tracks: list[Track], t: float) -> None:
        assert self.rep_settings is not None
        # A newly named action takes over the repetitions of the window it was named from.
        carry_s = self.classifier.spec.duration_s if self.classifier is not None else 0.0
        for track in tracks:
            key = (camera, track.track_id)
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = RepCounter(self.rep_settings, carry_s)
            counter.add(t, track.keypoints, track.scores)
            prediction = self._predictions.get(key)
            counter.set_label(prediction.label if prediction is not None else None, t)

    def _rep_count(self, key: PersonKey) -> RepCount | None:
        counter = self._counters.get(key)
        return counter.count if counter is not None else None

    def _classify(self, classifier: ActionClassifier, camera: str, tracks: list[Track], t: float) -> None:
        ready: list[PersonKey] = []
        windows = []
        for track in tracks:
            key = (camera, track.track_id)
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = TrackWindow(classifier.spec)
            window.add(t, track.keypoints, track.scores)
            features = window.features()  # None until a full window with enough of the body seen
            if features is not None:
                ready.append(key)
                windows.append(features)
        if windows:
            for key, probs in zip(ready, classifier.predict_proba(np.stack(windows)), strict=True):
                smoothed = self._smoother.update(key, t, probs)
                self._predictions[key] = classifier.verdict(smoothed)

    def _forget(self, key: PersonKey) -> None:
        self._windows.pop(key, None)
        self._predictions.pop(key, None)
        self._counters.pop(key, None)
        self._smoother.forget(key)


T = TypeVar("T")


class StageThread(threading.Thread):
    """Moves items from `inbox` through `step` into `outbox` until the end or `stop`; a camera's end passes."""

    def __init__(
        self, name: str, step: Callable[[T], T], inbox: FrameQueue[T], outbox: FrameQueue[T], stop: threading.Event
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.step = step
        self.inbox = inbox
        self.outbox = outbox
        self.stop = stop
        self.error: str | None = None

    def run(self) -> None:
        end = EndOfStream()
        try:
            for item in self.inbox.items(self.stop):
                if isinstance(item, CameraEnd):
                    self.outbox.put(item, self.stop)
                    continue
                if isinstance(item, EndOfStream):
                    end = item
                    break
                if not self.outbox.put(self.step(item), self.stop):
                    break
        except Exception as exc:  # report, then let the main thread finalize outputs
            self.error = f"{self.name} failed: {type(exc).__name__}: {exc}"
            end = EndOfStream(self.error)
        finally:
            self.outbox.put(end, self.stop)
