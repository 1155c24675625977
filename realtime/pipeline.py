"""The running pipeline, and the only place that wires stages together.

    capture-<camera> ─► CameraInbox ─► PoseStage ─► FrameQueue ─► classify ─► FrameQueue ─► main thread
     (FrameRecord)     (fair, per      (pose + tracking,          (windows,                 (OutputStep:
                        camera)         in frame order)            LSTM)                     overlay, sinks)

One stop event ends everything: end of input, q/ESC, Ctrl-C, SIGTERM or max_frames.
Whatever ends the run, every sink is closed (video files and events finalized) and a
summary per camera is given.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2

from .capture import (
    CaptureThread,
    SourceInfo,
    SourceKind,
    StreamStatus,
    check_file,
    classify_source,
    default_policy,
    open_source,
    unbelieved_rate,
    unopened,
)
from .classifier import WEIGHTS_HINT, ActionClassifier
from .config import CameraConfig, Config, cameras_of, weights_path
from .errors import OutputError, SourceError, WeightsError
from .inference_worker import ActionClassification, StageThread
from .output import CameraSummary, OutputStep
from .pose import PoseBackend, create_backends
from .pose_stage import PoseStage
from .queues import BufferPolicy, CameraEnd, CameraInbox, CameraQueue, EndOfStream, FrameQueue
from .recording import frame_size_problem
from .reps import RepSettings
from .signals import StopRequest, stop_on_signals
from .sinks import EventSink, EventWriter, JsonlWriter, Sink, VideoFiles, WindowSink
from .timeline import TimelineWriter
from .types import FrameRecord

if TYPE_CHECKING:
    from .media.writer import MediaSink, MediaStats
    from .mqtt import MqttWriter

log = logging.getLogger("realtime")

_STATUS_NOTICES = {
    "lost": "stream {camera} ({source}) lost after {frames} frames ({reason})",
    "reconnected": "stream {camera} ({source}) back after {gap_s:.1f} s (attempt {attempt})",
    "retrying": "stream {camera} ({source}) still down: reconnect attempt {attempt} failed",
}
# Statuses for the log, not for the events: one reconnect attempt a second per dead camera is noise.
_LOG_ONLY = {"retrying", "looped", "too_short"}


def _worth_telling(attempt: int) -> bool:
    """Reconnect attempts 1, 2, 4, 8, ... are logged at the usual level: an hour-long outage gives 12 lines."""
    return attempt & (attempt - 1) == 0


def _wall(t_monotonic: float) -> float:
    """A monotonic time as wall-clock time, for logs joined with other systems'."""
    return time.time() - (time.monotonic() - t_monotonic)


@dataclass
class RunSummary:
    """The whole run: totals over the cameras, and each camera's own figures."""

    cameras: dict[str, CameraSummary] = field(default_factory=dict)
    stopped_by: str = "end"
    error: str | None = None
    startup_s: float = 0.0  # from building the pipeline to the first frame shown
    mqtt: dict[str, int] | None = None  # messages published and dropped, when MQTT is on
    media: MediaStats | None = None  # what the media writer wrote and lost, when media is on

    def _total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.cameras.values())

    @property
    def truncated(self) -> bool:
        """The run's only failure is source files that end early: every frame before the damage was processed."""
        failed = [c for c in self.cameras.values() if c.error]
        return bool(failed) and all(c.truncated for c in failed) and self.error == failed[0].error

    @property
    def frames_in(self) -> int:
        return self._total("frames_in")

    @property
    def frames_out(self) -> int:
        return self._total("frames_out")

    @property
    def dropped(self) -> int:
        return self._total("dropped")

    @property
    def labels(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for camera in self.cameras.values():
            for label, count in camera.labels.items():
                total[label] = total.get(label, 0) + count
        return total

    def lines(self) -> list[str]:
        lines = []
        for name, c in self.cameras.items():
            prefix = f"realtime: {name}: " if len(self.cameras) > 1 else "realtime: "
            lines.append(prefix + c.line())
        if self.media is not None:
            lines.append(f"realtime: media: {self.media.line()}")
        if self.mqtt is not None:
            lines.append(f"realtime: MQTT: {self.mqtt['published']} messages published, {self.mqtt['dropped']} dropped")
        lines.append(f"realtime: started in {self.startup_s:.1f} s; stopped by {self.stopped_by}")
        return lines


def load_classifier(config: Config) -> ActionClassifier | None:
    """The configured classifier. A missing file named in the config is an error; without the
    shipped default (a broken install), poses only."""
    path = weights_path(config)
    if not path.exists() and not config.classifier.weights:
        log.warning("no action weights at %s — showing poses only; %s", path, WEIGHTS_HINT)
        return None
    if not path.exists():
        raise WeightsError(f"weights file {path} not found — {WEIGHTS_HINT}")
    return ActionClassifier.load(path, config.classifier.threshold)


def warn_if_posed_otherwise(classifier: ActionClassifier | None, backend: str) -> None:
    """Backends place joints differently: on BlazePose's poses the MoveNet-trained weights gave
    three times the false actions. Said once the backend has loaded, so a backend that fails
    to load leaves its one error line alone."""
    trained_on = (classifier.checkpoint.info or {}).get("pose") if classifier is not None else None
    if trained_on and trained_on != backend:
        log.warning(
            "the action weights were trained on %s poses and this run poses with %s: expect more false "
            "actions; `python -m realtime train --pose %s` makes weights for it",
            trained_on,
            backend,
            backend,
        )


@dataclass
class _Camera:
    config: CameraConfig
    info: SourceInfo  # rate and size 0 until a stream its capture thread opens is open
    capture: CaptureThread


def _opens_in_background(camera: CameraConfig, cameras: int, streams_wait: bool = False) -> bool:
    """Whether the camera's capture thread opens it, rather than the pipeline before the run.

    A stream of several that may reconnect: one that is slow or dead (a frozen server holds an
    open for the whole open timeout) must not hold up the others, and it is retried like a lost
    one. `streams_wait` does the same for a single stream (a cluster actor's camera, whose job
    must outlive a camera that is down when it starts). Anything else that fails to open ends the
    run at once with one line.
    """
    return (
        (cameras > 1 or streams_wait)
        and classify_source(camera.source) is SourceKind.STREAM
        and camera.reconnect_attempts != 0  # cameras_of filled in the global setting
    )


class Pipeline:
    """Builds the stages from a Config and runs them until the stop event is set.

    `sinks` and `event_writers` add outputs to the configured ones (the web live view, MQTT);
    `backends` replaces the configured pose models (a test's slow or faulty model); `stop` is
    the caller's, when a stop may be asked for before the pipeline is built (a signal at start-up);
    `streams_wait` retries a stream that is down at the start even when it is the only camera.
    """

    def __init__(
        self,
        config: Config,
        *,
        sinks: Sequence[Sink] = (),
        event_writers: Sequence[EventWriter] = (),
        backends: Sequence[PoseBackend] | None = None,
        source_label: str | None = None,
        stop: StopRequest | None = None,
        streams_wait: bool = False,
    ) -> None:
        t_built = time.monotonic()
        self.config = config
        self._stop_request = stop or StopRequest()
        self.stop = self._stop_request.event
        self.summary = RunSummary()
        self._output_faults: list[OutputError] = []  # a full disk, from the writers' threads
        self.camera_configs = cameras_of(config)
        # What events and capture errors call a source; a server passes a name that reveals none of its paths.
        self.source_label = source_label
        opened: list = [*sinks, *event_writers]
        caps: list[cv2.VideoCapture | None] = []
        self.backends: list[PoseBackend] = list(backends or [])
        try:
            # Cheap checks first, then the models, then the sources: a live stream opened before a
            # slow model load would hand over seconds-old frames in a burst.
            for camera in self.camera_configs:
                if classify_source(camera.source) is SourceKind.FILE:
                    check_file(camera.source)
            self.classifier = load_classifier(config)
            writers: list[EventWriter] = []
            if config.output.events:
                writers.append(JsonlWriter(config.output.events, config.output.flush_events, self._output_failed))
                opened.append(writers[-1])
            if config.output.timeline:
                writers.append(TimelineWriter(config.output.timeline))
                opened.append(writers[-1])
            if config.mqtt.host:
                from .mqtt import MqttWriter  # paho only when MQTT is asked for

                # Connects in the background: a broker that is down never holds up the cameras.
                self.mqtt: MqttWriter | None = MqttWriter(
                    config.mqtt, notice=lambda message: log.warning(message.removeprefix("realtime: "))
                )
                writers.append(self.mqtt)
                opened.append(writers[-1])
            else:
                self.mqtt = None
            self.events = EventSink([*writers, *event_writers])
            self.media: MediaSink | None = None
            if config.media.dir:
                from .media.writer import MediaSink

                self.media = MediaSink(
                    config.media,
                    self.events.emit,
                    on_snapshot=[self.mqtt.send_snapshot] if self.mqtt is not None else [],
                    relative_paths=source_label is not None,  # a server names none of its paths
                    hud=config.output.hud,
                )
                self.events.media = self.media
                opened.append(self.media)
            if not self.backends:
                self.backends = create_backends(config.pose)
                warn_if_posed_otherwise(self.classifier, config.pose.backend)
            opened.extend(self.backends)
            self._t_models = time.monotonic()
            self.cameras: dict[str, _Camera] = {}
            infos: dict[str, SourceInfo] = {}
            for camera in self.camera_configs:
                # Stopped already (a signal while the models loaded): nothing is opened, the run just ends.
                if self.stop.is_set() or _opens_in_background(camera, len(self.camera_configs), streams_wait):
                    cap, infos[camera.name] = None, unopened(camera.source)
                else:
                    cap, infos[camera.name] = open_source(camera.source, config.capture)
                caps.append(cap)
            own_sinks: list[Sink] = []
            self.video: VideoFiles | None = None
            if config.output.video:
                sources = {name: self.source_label or info.source for name, info in infos.items()}
                for name, info in infos.items():  # a file's size is known now: fail before the run
                    problem = frame_size_problem(info.width, info.height) if info.width and info.height else None
                    if problem:
                        raise SourceError(f"input {sources[name]} {problem}")
                self.video = VideoFiles(
                    config.output.video,
                    {n: i.fps for n, i in infos.items()},
                    hud=config.output.hud,
                    on_fault=self._output_failed,
                    sources={name: f"input {source}" for name, source in sources.items()},
                )
                own_sinks.append(self.video)
                opened.append(own_sinks[-1])
            if not config.output.headless:
                own_sinks.append(
                    WindowSink(
                        config.output.window_title, config.output.fullscreen, on_quit=lambda: self.request_stop("key")
                    )
                )
                opened.append(own_sinks[-1])
        except BaseException:
            for cap in caps:
                if cap is not None:
                    cap.release()
            for thing in opened:
                with contextlib.suppress(Exception):
                    thing.close()
            raise
        # A camera whose frames may be dropped (a live source, or a file paced like one with
        # policy drop_oldest) wants the newest frame, not every frame: it gets the live settings.
        # Every queued frame of it adds a frame's processing time to the latency, so hold few.
        policies = {name: self._policy(info.kind) for name, info in infos.items()}
        sizes = {
            name: config.capture.live_queue_size if policy is BufferPolicy.DROP_OLDEST else config.capture.queue_size
            for name, policy in policies.items()
        }
        live = any(policy is BufferPolicy.DROP_OLDEST for policy in policies.values())
        self.inbox: CameraInbox[FrameRecord] = CameraInbox({name: (sizes[name], policies[name]) for name in infos})
        self.status: queue.Queue[StreamStatus] = queue.Queue()
        for (name, info), cap, camera in zip(infos.items(), caps, self.camera_configs, strict=True):
            options = config.capture
            if camera.reconnect_attempts is not None:
                options = type(options)(**{**vars(options), "reconnect_attempts": camera.reconnect_attempts})
            thread = CaptureThread(
                cap,
                info,
                CameraQueue(self.inbox, name),
                self.stop,
                options,
                self.status,
                config.max_frames,
                camera=name,
                label=self.source_label,
                min_clip_s=self.classifier.spec.duration_s if self.classifier is not None else 0.0,
            )
            self.cameras[name] = _Camera(camera, info, thread)
        # Every posed frame reaches the classifier. Live frames are dropped before pose, where it
        # costs nothing, and, when every camera is live, before the main thread, which may be slow
        # (a display, a disk). With a file among the cameras nothing is dropped after pose: a slow
        # main thread holds the stages back and the live cameras drop in the inbox instead. The
        # pose stage hands frames on in bursts when a later frame is posed first, up to one round
        # of its models with their skipped frames, per camera: room for that.
        size = max(sizes.values())
        burst = len(self.backends) * (max(c.skip or 0 for c in self.camera_configs) + 1) - 1 if live else 0
        all_live = all(policy is BufferPolicy.DROP_OLDEST for policy in policies.values())
        self.posed: FrameQueue[FrameRecord] = FrameQueue(size * len(infos), BufferPolicy.LOSSLESS)
        self._dropped_late: Counter[str] = Counter()  # per camera, after pose
        self.results: FrameQueue[FrameRecord] = FrameQueue(
            (size + burst) * len(infos),
            BufferPolicy.DROP_OLDEST if all_live else BufferPolicy.LOSSLESS,
            on_drop=lambda record: self._dropped_late.update((record.camera,)),
        )
        self.pose_stage = PoseStage(
            self.backends, self.camera_configs, self.inbox, self.posed, self.stop, prefetch=not live
        )
        reps = RepSettings(config.reps.min_period_s, config.reps.max_period_s) if config.reps.enabled else None
        self.classification = ActionClassification(self.classifier, config.classifier.smoothing_s, reps)
        self.classify_thread = StageThread(
            "classify", self.classification.classify, self.posed, self.results, self.stop
        )
        # Media first: an episode is open before the `action` event that names its files is written.
        media_sinks: list[Sink] = [self.media] if self.media is not None else []
        self.output = OutputStep(
            [*media_sinks, self.events, *own_sinks, *sinks],
            config.pose.min_score,
            self._dropped,
            name_cameras=len(self.cameras) > 1,
        )
        self._t_built = t_built
        self._shown_first: set[str] = set()

    def _output_failed(self, error: OutputError) -> None:
        """A file output cannot go on (a full disk): the run ends, finalizing the rest, and fails."""
        self._output_faults.append(error)
        log.debug("output failed: %s", error)
        self.request_stop("output_error")

    def _policy(self, kind: SourceKind) -> BufferPolicy:
        name = self.config.capture.policy
        return default_policy(kind, self.config.capture.pace) if name == "auto" else BufferPolicy(name)

    def _dropped(self, camera: str) -> int:
        # Before pose (the inbox) or before output (a slow display); the queue between is lossless.
        return self.inbox.dropped[camera] + self._dropped_late[camera]

    @property
    def info(self) -> SourceInfo:
        """The first camera's source (most runs have one)."""
        return next(iter(self.cameras.values())).info

    def request_stop(self, reason: str) -> None:
        self._stop_request(reason)

    def _stopped_by(self, *cameras: str) -> str:
        """What ended the run (or these cameras): a stop asked for, `max_frames`, or the sources' end."""
        if self._stop_request.reason:
            return self._stop_request.reason
        captures = [self.cameras[name].capture for name in cameras or self.cameras]
        return "max_frames" if captures and all(c.reached_max_frames for c in captures) else "end"

    def status_of(self) -> dict[str, dict]:
        """A snapshot per camera (for status pages): frames read and shown, rates, the stream's state."""
        out = {}
        for name, camera in self.cameras.items():
            m = self.output.meter(name)
            out[name] = {
                "frames_in": camera.capture.frames_read,
                "frames_out": m.frames_out,
                "fps": round(m.out_rate.rate(), 2),
                "pose_fps": round(m.pose_rate.rate(), 2),
                "alive": camera.capture.is_alive(),
            }
        return out

    def run(self) -> RunSummary:
        with stop_on_signals(self.request_stop):
            # Each camera's `opened` comes from its capture thread once it is open, with its real rate and size.
            self._t_started = time.monotonic()
            for camera in self.cameras.values():
                camera.capture.start()
            self.pose_stage.start()
            self.classify_thread.start()
            try:
                self._consume()
            finally:
                self._finish()
        return self.summary

    def _consume(self) -> None:
        while not self.stop.is_set():
            # Stream events are logged while no frame comes, too: that is when a stream is lost.
            self._drain_status()
            item = self.results.get(timeout=0.1)
            if item is None:
                continue
            if isinstance(item, CameraEnd):  # that camera's last frame has been shown
                self._camera_done(item.camera, item.error)
                continue
            if isinstance(item, EndOfStream):
                self.summary.error = item.error
                break
            self._show(item)
        self._drain_status()

    def _show(self, item: FrameRecord) -> None:
        if self.summary.startup_s == 0.0:
            self.summary.startup_s = time.monotonic() - self._t_built
        if item.camera not in self._shown_first:
            self._shown_first.add(item.camera)
            self._drain_status()  # the camera's `opened` (sent before its first frame) comes first
            # The first frame is newer than the models (they load before the source opens).
            self.events.emit(
                item.camera,
                {
                    "type": "stream",
                    "status": "first_frame",
                    "frame": item.index,
                    "time": round(_wall(item.t_capture), 3),
                    "models_loaded": round(_wall(self._t_models), 3),
                },
            )
        self.output(item)

    def _camera_done(self, name: str, error: str | None) -> None:
        """A camera's `ended` and `summary` events, once: when its last frame was shown, or at the end."""
        if name in self.summary.cameras:
            return
        camera = self.cameras[name]
        camera.capture.join(timeout=10)
        self._drain_status()  # its last stream events (lost, gave_up) come before its end
        frames_in, meter = camera.capture.frames_read, self.output.meter(name)
        dropped = self._dropped(name)
        if self._stop_request.reason is not None:
            # Frames between the stages when the stop came are never shown: dropped, so that in = out + dropped.
            dropped = max(dropped, frames_in - meter.frames_out)
        summary = meter.summary(frames_in, dropped, time.monotonic() - self._t_started)
        summary.error = camera.capture.error or error
        if self.media is not None:  # its episodes end (and its clips close) before its `ended` event
            self.media.camera_ended(name)
        summary.truncated = camera.capture.truncated
        self.summary.cameras[name] = summary
        self.events.emit(
            name,
            {
                "type": "stream",
                "status": "ended",
                "time": round(time.time(), 3),
                "stopped_by": self._stopped_by(name),
                **({"error": summary.error} if summary.error else {}),
            },
        )
        self.events.emit(name, {**summary.event(), "startup_s": round(self.summary.startup_s, 3)})

    def _drain_status(self) -> None:
        while True:
            try:
                status = self.status.get_nowait()
            except queue.Empty:
                return
            if status.status == "ended":
                continue  # written once, at the very end
            if status.status == "opened" and status.info is not None:
                self._opened(status.camera, status.info)
            if status.status not in _LOG_ONLY:
                event = {"type": "stream", "status": status.status, "time": round(_wall(status.t), 3)}
                if status.status == "opened":
                    event["source"] = self.source_label or self.cameras[status.camera].info.source
                self.events.emit(status.camera, {**event, **status.detail})
            if status.status == "lost":
                # Nobody is seen on a stream that is down: its people leave now, not when (or if) it is
                # back. Windows start afresh by themselves after the gap: the tracker retires people
                # unseen for max_age_s and TrackWindow drops history across gaps over max_gap_s.
                self.events.retire(status.camera, status.t, max(0, status.detail.get("frames", 0) - 1))
                if self.media is not None:
                    self.media.camera_lost(status.camera, status.t)
            self._log_status(status)

    def _opened(self, name: str, info: SourceInfo) -> None:
        self.cameras[name].info = info
        warning = unbelieved_rate(self.source_label or info.source, info)
        if warning:
            log.warning(warning)
        if self.video is not None:
            self.video.set_fps(name, info.fps)

    def _log_status(self, status: StreamStatus) -> None:
        source = self.cameras[status.camera].info.source
        if status.status in ("looped", "too_short"):
            log.warning("camera %s: %s", status.camera, status.note)
            return
        if status.note is not None:  # not reachable at the start
            log.warning("camera %s: %s; retrying in the background", status.camera, status.note)
            return
        message = _STATUS_NOTICES.get(status.status)
        if message is None:
            return
        text = message.format(camera=status.camera, source=source, **status.detail)
        if status.status == "retrying" and not _worth_telling(status.detail["attempt"]):
            log.debug(text)
        else:
            log.warning(text)

    def _finish(self) -> None:
        self.stop.set()
        for camera in self.cameras.values():
            camera.capture.join(timeout=10)
        self.pose_stage.join(timeout=10)
        self.classify_thread.join(timeout=10)
        # Frames already posed when a stop came: shown and written too, so nothing in flight is lost.
        while (item := self.results.get(timeout=0)) is not None:
            if isinstance(item, CameraEnd):
                self._camera_done(item.camera, item.error)
            elif not isinstance(item, EndOfStream):
                self._show(item)
        self._drain_status()
        s = self.summary
        # A failed stage ends every camera; a camera's own failure (its source) ends only itself.
        shared_error = s.error or self.pose_stage.error or self.classify_thread.error
        for name in self.cameras:
            self._camera_done(name, shared_error)
        s.cameras = {name: s.cameras[name] for name in self.cameras}  # in the config's order
        s.error = shared_error or next((c.error for c in s.cameras.values() if c.error), None)
        for sink in self.output.sinks:
            try:
                sink.close()
            except Exception as exc:  # the others still get finalized
                log.error("closing %s failed: %s", type(sink).__name__, exc)
        if self._output_faults:  # what was lost first, in one line: a disk fills for every file on it
            s.error = "; ".join(dict.fromkeys(str(fault) for fault in self._output_faults))
        s.stopped_by = self._stopped_by()
        if self.media is not None:
            s.media = self.media.stats
        if self.mqtt is not None:
            stats = self.mqtt.stats
            s.mqtt = {"published": stats.published, "dropped": stats.dropped}
            # The cameras ran, but whoever waits on the broker heard nothing: the run must not look fine.
            s.error = s.error or self.mqtt.never_reached()
        with contextlib.suppress(Exception):
            self.pose_stage.close()
