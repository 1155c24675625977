"""The running pipeline: capture thread → pose pool → classify thread → main thread, joined by queues.

The main thread owns the overlay and every sink (the window must live there). One
stop event ends everything: end of input, q/ESC, Ctrl-C, SIGTERM or --max-frames.
Whatever ends the run, the video file and the events log are finalized.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from .capture import (BufferPolicy, CaptureThread, EndOfStream, FrameQueue, SourceInfo, StreamStatus,
                      default_policy, open_source)
from .classifier import WEIGHTS_HINT, ActionClassifier
from .config import Config
from .errors import RealtimeError
from .inference_worker import ActionRecognizer, InferenceWorker
from .overlay import HudInfo, annotate
from .pose import PoseBackend, create_backend
from .pose_pool import PosePool
from .sinks import EventLog, VideoSink, WindowSink
from .stats import LatencyStats, RateMeter, StageTimes
from .types import FrameResult


# Enough samples for a steady HUD reading at 30 fps without lagging behind changes.
HUD_LATENCY_SAMPLES = 150

# Last shown label per person, for action events; pruned beyond this many people.
MAX_REMEMBERED_TRACKS = 256

_STATUS_NOTICES = {
    "lost": "stream {source} lost after {frames} frames ({reason})",
    "reconnected": "stream {source} back after {gap_s:.1f} s (attempt {attempt})",
}


class FrameSink(Protocol):
    """Anything that takes annotated frames besides the built-in sinks (e.g. the web live view)."""

    def write(self, image: np.ndarray, result: FrameResult) -> None: ...

    def close(self) -> None: ...


@dataclass
class RunSummary:
    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    fps: float = 0.0
    latency_ms_p50: float = 0.0
    latency_ms_p95: float = 0.0
    labels: dict[str, int] = field(default_factory=dict)
    stopped_by: str = "end"
    error: str | None = None

    def line(self) -> str:
        labels = ", ".join(f"{k} {v}" for k, v in sorted(self.labels.items(), key=lambda kv: -kv[1])) or "none"
        return (f"realtime: {self.frames_in} frames in, {self.frames_out} out, {self.dropped} dropped, "
                f"{self.fps:.1f} FPS, latency p50 {self.latency_ms_p50:.0f} ms p95 {self.latency_ms_p95:.0f} ms; "
                f"labels shown: {labels}")


def load_classifier(config: Config, explicit: bool, notice: Callable[[str], None]) -> ActionClassifier | None:
    """The configured classifier; without weights, poses only (unless weights were asked for by name)."""
    path = Path(config.classifier.weights)
    if not path.exists() and not explicit:
        notice(f"realtime: no action weights at {path} — showing poses only; {WEIGHTS_HINT}")
        return None
    return ActionClassifier.load(path, config.classifier.threshold)


def pose_workers(config: Config) -> int:
    """How many pose threads: as configured, or auto (0) = one per core up to 2 for MediaPipe.

    Detectron2 stays at one: on a GPU a second copy of the model buys little, and on a CPU
    one copy already uses every core.
    """
    if config.pose.workers:
        return config.pose.workers
    if config.pose.backend == "detectron2":
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def backend_options(config: Config) -> dict:
    if config.pose.backend == "detectron2":
        d2 = config.pose.detectron2
        return {"config": d2.config, "weights": d2.weights, "score_thresh": d2.score_thresh,
                "min_size_test": d2.min_size_test, "device": d2.device}
    return {}


class Pipeline:
    """Builds the stages from a Config and runs them until the stop event is set."""

    def __init__(self, config: Config, *, weights_explicit: bool = False,
                 extra_sinks: list[FrameSink] | None = None,
                 notice: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
                 source_label: str | None = None) -> None:
        self.config = config
        # What events call the source; a server passes a name that reveals none of its paths.
        self.source_label = source_label or config.source
        self.notice = notice
        self.stop = threading.Event()
        self.extra_sinks = extra_sinks or []
        # Fail fast, before any thread starts: source, then weights, then outputs.
        self.cap = self.window = self.video = self.events = None
        self.backends: list[PoseBackend] = []
        try:
            self.cap, self.info = open_source(config.source, config.capture)
            self.classifier = load_classifier(config, weights_explicit, notice)
            self.window = None if config.output.headless else WindowSink(config.output.window_title,
                                                                           config.output.fullscreen)
            self.video = VideoSink(config.output.video, self.info.fps) if config.output.video else None
            self.events = EventLog(config.output.events, config.output.flush_events)
            # Last: the slowest to build, and its native threads log while starting.
            for _ in range(pose_workers(config)):
                self.backends.append(create_backend(config.pose.backend, backend_options(config)))
        except BaseException:
            if self.cap is not None:
                self.cap.release()
            for opened in (self.window, self.video, self.events, *self.extra_sinks, *self.backends):
                if opened is not None:
                    opened.close()
            raise
        policy_name = config.capture.policy
        policy = default_policy(self.info.kind) if policy_name == "auto" else BufferPolicy(policy_name)
        # Live: every queued frame adds a frame's processing time to the latency, so hold few.
        live = policy is BufferPolicy.DROP_OLDEST
        size = config.capture.live_queue_size if live else config.capture.queue_size
        # Live frames are dropped before pose, where dropping costs nothing, and before the
        # main thread, which may be slow (a display, a disk). Every posed frame reaches the
        # classifier. The pose pool hands frames on in bursts when a later frame is posed
        # first, up to one round of its workers with their skipped frames: room for that.
        burst = len(self.backends) * (config.pose.skip + 1) - 1 if live else 0
        self.frames = FrameQueue(size, policy)
        self.posed = FrameQueue(size, BufferPolicy.LOSSLESS)
        self.results = FrameQueue(size + burst, policy)
        self.status: queue.Queue = queue.Queue()
        # No backend of its own: the pool poses, and calls the recognizer's tracker in frame order.
        self.recognizer = ActionRecognizer(None, self.classifier, smoothing_s=config.classifier.smoothing_s)
        self.capture = CaptureThread(self.cap, self.info, self.frames, self.stop, config.capture, self.status,
                                     config.max_frames)
        # Pose is the bottleneck: its threads do nothing else, and the LSTM has a thread of its own.
        self.pose_pool = PosePool(self.backends, config.pose.skip, self.frames, self.posed, self.stop,
                                  after=self.recognizer.track_step, prefetch=not live)
        self.classify_worker = InferenceWorker(self.recognizer, self.posed, self.results, self.stop,
                                               step=self.recognizer.classify_step, name="classify")
        self.summary = RunSummary()
        self.latency = LatencyStats()
        self.stage_times = StageTimes()  # per-stage cost, read by scripts/benchmark.py
        self._label_frames: Counter[str] = Counter()
        self._shown_labels: dict[int, str] = {}
        self._t0_media: float | None = None

    @property
    def source_info(self) -> SourceInfo:
        return self.info

    @property
    def dropped(self) -> int:
        return self.frames.dropped + self.posed.dropped + self.results.dropped

    def request_stop(self, reason: str) -> None:
        if not self.stop.is_set():
            self.summary.stopped_by = reason
            self.stop.set()

    def run(self) -> RunSummary:
        with self._signals():
            self.events.emit({"type": "stream", "status": "opened", "time": round(time.time(), 3),
                              "source": self.source_label, "fps": round(self.info.fps, 3), "width": self.info.width,
                              "height": self.info.height})
            t_start = time.monotonic()
            self.capture.start()
            self.pose_pool.start()
            self.classify_worker.start()
            try:
                self._consume()
            finally:
                self._finish(time.monotonic() - t_start)
        return self.summary

    def _consume(self) -> None:
        out_rate, pose_rate, latency, stages = RateMeter(), RateMeter(), self.latency, self.stage_times
        recent = LatencyStats(keep=HUD_LATENCY_SAMPLES)  # the HUD shows now, not the whole run
        while not self.stop.is_set():
            self._drain_status()
            item = self.results.get(timeout=0.1)
            if item is None:
                continue
            if isinstance(item, EndOfStream):
                self.summary.error = item.error or self.capture.error or self.pose_pool.error or self.classify_worker.error
                break
            now = time.monotonic()
            out_rate.tick(now)
            if item.posed:
                pose_rate.tick(now)
            # The HUD shows this frame's latency up to drawing (it cannot include writing itself)
            # and the p50/p95 of recent frames taken after output, as users see them.
            hud = HudInfo(out_rate.rate(), pose_rate.rate(), (now - item.frame.t_capture) * 1000,
                          self.dropped, recent.percentile(50), recent.percentile(95))
            t_start_overlay = time.perf_counter()
            image = annotate(item, hud, self.config.pose.min_score)
            t_drawn = time.perf_counter()
            self._record(item)
            if self.video is not None:
                self.video.write(image)
            for sink in self.extra_sinks:
                sink.write(image, item)
            keep_going = self.window is None or self.window.show(image)
            t_out = time.perf_counter()
            latency_ms = (time.monotonic() - item.frame.t_capture) * 1000
            latency.add(latency_ms)
            recent.add(latency_ms)
            stages.add("decode", item.frame.decode_ms)
            stages.add("pose", item.pose_ms)
            stages.add("classify", item.classify_ms)
            stages.add("overlay", (t_drawn - t_start_overlay) * 1000)
            stages.add("write", (t_out - t_drawn) * 1000)
            stages.frame_done()
            self.summary.frames_out += 1
            if not keep_going:
                self.request_stop("key")
        self._drain_status()

    def _record(self, result: FrameResult) -> None:
        """Action events when a person's label changes, and per-label frame counts."""
        if self._t0_media is None:
            self._t0_media = result.frame.t_media
        t = result.frame.t_media - self._t0_media
        shown = set()
        for track in result.tracks:
            if track.prediction is None:
                continue
            label = track.prediction.label
            shown.add(label)
            if self._shown_labels.get(track.track_id) != label:
                self._shown_labels[track.track_id] = label
                self.events.emit({"type": "action", "t": round(t, 3), "frame": result.frame.index,
                                  "track": track.track_id, "label": label,
                                  "score": round(track.prediction.score, 4)})
        self._label_frames.update(shown)
        if len(self._shown_labels) > MAX_REMEMBERED_TRACKS:  # endless runs: forget people long gone
            present = {track.track_id for track in result.tracks}
            self._shown_labels = {i: label for i, label in self._shown_labels.items() if i in present}

    def _drain_status(self) -> None:
        while True:
            try:
                status: StreamStatus = self.status.get_nowait()
            except queue.Empty:
                return
            if status.status == "ended":
                continue  # written once, at the very end
            # After "lost", windows start afresh by themselves: the tracker retires people
            # unseen for max_age_s and TrackWindow drops history across any gap longer than
            # the feature spec's max_gap_s, so no window spans missing time.
            wall = time.time() - (time.monotonic() - status.t)  # when it happened, for surveillance logs
            self.events.emit({"type": "stream", "status": status.status, "time": round(wall, 3), **status.detail})
            message = _STATUS_NOTICES.get(status.status)
            if message:
                self.notice("realtime: " + message.format(source=self.info.source, **status.detail))

    def _finish(self, elapsed: float) -> None:
        self.stop.set()
        self.capture.join(timeout=10)
        self.pose_pool.join(timeout=10)
        self.classify_worker.join(timeout=10)
        self._drain_status()
        s = self.summary
        if s.error is None:
            s.error = self.capture.error or self.pose_pool.error or self.classify_worker.error
        s.frames_in = self.capture.frames_read
        s.dropped = self.dropped
        s.fps = s.frames_out / elapsed if elapsed > 0 else 0.0
        s.latency_ms_p50, s.latency_ms_p95 = self.latency.percentile(50), self.latency.percentile(95)
        s.labels = dict(self._label_frames)
        for closer in (self.video, self.window, *self.extra_sinks):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer.close()
        self.events.emit({"type": "stream", "status": "ended", "time": round(time.time(), 3),
                          "stopped_by": s.stopped_by, **({"error": s.error} if s.error else {})})
        self.events.emit({"type": "summary", "frames_in": s.frames_in, "frames_out": s.frames_out,
                          "dropped": s.dropped, "fps": round(s.fps, 2),
                          "latency_ms_p50": round(s.latency_ms_p50, 1),
                          "latency_ms_p95": round(s.latency_ms_p95, 1), "labels": s.labels})
        self.events.close()
        with contextlib.suppress(Exception):
            self.pose_pool.close()

    @contextlib.contextmanager
    def _signals(self):
        """SIGINT and SIGTERM set the stop event (main thread only; elsewhere the caller stops us)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        signal.signal(signal.SIGINT, lambda *_: self.request_stop("interrupt"))
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop("sigterm"))
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_pipeline(config: Config, **kwargs) -> RunSummary:
    pipeline = Pipeline(config, **kwargs)
    return pipeline.run()


__all__ = ["Pipeline", "RunSummary", "run_pipeline", "RealtimeError"]
