"""A camera actor: one Ray actor process running the ordinary in-process Pipeline for its cameras.

The pipeline runs in a thread of its own, started by the constructor, so an actor that Ray
restarts after its process died (`max_restarts`) resumes its cameras by itself: a live stream is
reopened, a file starts again. Its events go to the pipeline's MQTT writer (when configured) and
into a bounded buffer that the driver empties with `next_events`, a call that blocks until events
come or its timeout passes. The actor is threaded (`max_concurrency`), so `status` and `stop`
are answered while a `next_events` call waits.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import native
from ..config import Config
from ..errors import RealtimeError
from ..logfilter import NativeLogFilter
from ..queues import BufferPolicy, EndOfStream, FrameQueue
from .board import BOARD_NAME, REPORT_INTERVAL_S
from .plan import ActorPlan, actor_config

# Events held for the driver. It empties the buffer in batches within a second, so this only
# fills if the driver is gone; then the oldest are dropped (counted) rather than memory growing.
EVENT_BUFFER = 10_000
MAX_BATCH = 500


@dataclass
class EventBatch:
    """What one `next_events` call returns: events in order, and at the end the actor's summary."""

    events: list[dict[str, Any]]
    done: bool = False
    summaries: dict[str, Any] = field(default_factory=dict)  # camera -> CameraSummary, when done
    stopped_by: str = ""
    dropped: int = 0  # events lost to a full buffer so far
    mqtt: dict[str, int] | None = None  # the pipeline's MQTT messages published and dropped, when done


# What a camera's stream events say about it, for `cluster status`.
STREAM_STATES = {"opened": "running", "reconnected": "running", "lost": "reconnecting"}


class BufferWriter:
    """An EventWriter that hands events to the driver through the actor's buffer, noting each camera's
    stream state on the way."""

    def __init__(self, buffer: FrameQueue[dict[str, Any]], stream_state: dict[str, str]) -> None:
        self.buffer = buffer
        self.stream_state = stream_state
        self._never = threading.Event()

    def send(self, event: dict[str, Any]) -> None:
        if event["type"] == "stream" and event.get("status") in STREAM_STATES:
            self.stream_state[event["camera"]] = STREAM_STATES[event["status"]]
        self.buffer.put(event, self._never)  # drop-oldest: never blocks the pipeline

    def close(self) -> None:
        pass  # the actor closes the buffer with its EndOfStream after the summary


def _log_to_stderr(actor: str) -> None:
    """The pipeline's warnings (stream lost, reconnected) as one line each; Ray forwards them to the driver."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"realtime [{actor}]: %(message)s"))
    root = logging.getLogger("realtime")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


class CameraActor:
    """The body of a camera actor (the driver wraps it with `ray.remote` and its resources)."""

    def __init__(self, plan: ActorPlan, config: Config) -> None:
        import ray

        native.configure()  # before the pipeline loads cv2 and the pose models
        # The pose models' start-up chatter kept out of the log Ray forwards to the driver; for
        # the actor's whole life (its process ends with it).
        NativeLogFilter().__enter__()
        _log_to_stderr(plan.name)
        self.plan = plan
        self.buffer: FrameQueue[dict[str, Any]] = FrameQueue(EVENT_BUFFER, BufferPolicy.DROP_OLDEST)
        # Looked up by name rather than passed in: Ray cannot promise to restore an actor whose
        # constructor arguments include a handle (it warns so, ray-project/ray#53727).
        self.board: Any = ray.get_actor(BOARD_NAME, namespace=config.cluster.namespace)
        self.pid = os.getpid()
        self.node_id: str = ray.get_runtime_context().get_node_id()
        self.node_ip: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]  # (unannotated in ray)
        starts: Any = ray.get(
            self.board.register.remote(plan.name, plan.camera_names, self.node_id, self.node_ip, self.pid)
        )
        self.restarts: int = starts - 1
        self.config: Config = actor_config(config, plan, self.restarts)
        self._lock: threading.Lock = threading.Lock()  # pipeline and stop reason, set by different threads
        self._pipeline: Any = None
        self._stop_reason: str | None = None
        self._summaries: dict[str, Any] = {}
        self._mqtt: dict[str, int] | None = None
        self._stopped_by: str = ""
        self._done: threading.Event = threading.Event()
        self._ended: bool = False
        self._state: str = "starting"
        self._stream_state: dict[str, str] = {}  # camera -> running / reconnecting, from its stream events
        self._error: str | None = None
        for camera in plan.camera_names:
            self._emit(
                camera,
                {
                    "type": "actor",
                    "status": "started",
                    "node_id": self.node_id,
                    "node_ip": self.node_ip,
                    "pid": self.pid,
                    "restarts": self.restarts,
                },
            )
            if self.restarts:
                self._emit(
                    camera,
                    {
                        "type": "stream",
                        "status": "restarted",
                        "restarts": self.restarts,
                        "node_id": self.node_id,
                        "pid": self.pid,
                    },
                )
        threading.Thread(target=self._run, name=f"pipeline-{plan.name}", daemon=True).start()
        threading.Thread(target=self._report, name=f"report-{plan.name}", daemon=True).start()

    def _emit(self, camera: str, event: dict[str, Any]) -> None:
        self.buffer.put({"type": event["type"], "camera": camera, "time": round(time.time(), 3), **event}, self._done)

    def _run(self) -> None:
        from ..pipeline import Pipeline  # here, after native.configure()

        try:
            # MQTT, when configured, is the pipeline's own writer: every actor publishes its cameras' events.
            # A stream down when the job starts is retried, as one lost later is (capture.reconnect_attempts).
            pipeline = Pipeline(
                self.config, event_writers=[BufferWriter(self.buffer, self._stream_state)], streams_wait=True
            )
        except RealtimeError as exc:
            # This camera's source (or model) is not there: its own error event, not the job's end.
            self._error, self._state = str(exc), "error"
            errors = [
                {
                    "type": "stream",
                    "camera": camera,
                    "status": "error",
                    "time": round(time.time(), 3),
                    "error": str(exc),
                }
                for camera in self.plan.camera_names
            ]
            for event in errors:
                self.buffer.put(event, self._done)
            self._publish(errors)
            self._finish({}, "error")
            return
        with self._lock:
            self._pipeline = pipeline
            if self._stop_reason is not None:  # stopped while the models were loading
                pipeline.request_stop(self._stop_reason)
        self._state = "running"
        try:
            summary = pipeline.run()
        except Exception as exc:  # a bug, not bad input: still end this camera with its error
            self._error, self._state = f"{type(exc).__name__}: {exc}", "error"
            self._finish({}, "error")
            raise
        self._error = summary.error
        self._state = "error" if summary.error else "ended"
        self._mqtt = summary.mqtt
        self._finish(summary.cameras, summary.stopped_by)

    def _publish(self, events: list[dict[str, Any]]) -> None:
        """Events from before a pipeline (and its MQTT writer) existed, to MQTT when configured: the
        systems that act on a camera's events hear that it failed too."""
        if not self.config.mqtt.host:
            return
        from ..mqtt import MqttWriter

        try:
            writer = MqttWriter(self.config.mqtt)
        except RealtimeError as exc:
            logging.getLogger("realtime").warning("MQTT: %s", exc)
            return
        for event in events:
            writer.send(event)
        writer.close()  # waits (bounded) until the broker has them

    def _finish(self, summaries: dict[str, Any], stopped_by: str) -> None:
        self._summaries, self._stopped_by = summaries, stopped_by
        self._done.set()
        self.buffer.put(EndOfStream(self._error), self._done)  # no policy drops the end marker

    def _report(self) -> None:
        """Push a snapshot to the board every REPORT_INTERVAL_S until the pipeline ends."""
        while not self._done.wait(REPORT_INTERVAL_S):
            self.board.update.remote(self.plan.name, self.pid, self.status())
        self.board.update.remote(self.plan.name, self.pid, self.status())

    # Called by the driver (and `cluster status`).

    def next_events(self, timeout_s: float) -> EventBatch:
        """Events so far, waiting up to `timeout_s` for the first; `done` once the pipeline has ended
        and every event before its end has been handed over."""
        if self._ended:
            return self._batch([], done=True)
        events: list[dict[str, Any]] = []
        item = self.buffer.get(timeout=timeout_s)
        while item is not None:
            if isinstance(item, EndOfStream):
                self._ended = True
                return self._batch(events, done=True)
            events.append(item)
            if len(events) >= MAX_BATCH:
                break
            item = self.buffer.get(timeout=0)
        return self._batch(events)

    def _batch(self, events: list[dict[str, Any]], done: bool = False) -> EventBatch:
        return EventBatch(
            events,
            done,
            self._summaries if done else {},
            self._stopped_by,
            self.buffer.dropped,
            self._mqtt if done else None,
        )

    def status(self) -> dict[str, dict]:
        with self._lock:
            pipeline = self._pipeline
        live = pipeline.status_of() if pipeline is not None else {}
        out = {}
        for camera in self.plan.camera_names:
            values = dict(live.get(camera, {}))
            state = self._stream_state.get(camera, self._state) if self._state == "running" else self._state
            values.update(
                state=state,
                error=self._error,
                node_id=self.node_id,
                node_ip=self.node_ip,
                pid=self.pid,
                restarts=self.restarts,
                events=latest_events(pipeline, camera),
            )
            out[camera] = values
        return out

    def stop(self, reason: str) -> None:
        """Ask the pipeline to stop; it finalizes its outputs and its summary follows in `next_events`."""
        with self._lock:
            self._stop_reason = reason
            if self._pipeline is not None:
                self._pipeline.request_stop(reason)


# Events per camera that `cluster status` lists.
LATEST_EVENTS = 3


def latest_events(pipeline: Any, camera: str) -> list[dict[str, Any]]:
    """The camera's newest episodes in its media index (none without media)."""
    media = getattr(pipeline, "media", None) if pipeline is not None else None
    if media is None:
        return []
    try:
        rows = media.index.events(camera=camera, limit=LATEST_EVENTS)
    except Exception:  # the index closed as the run ended: the status is still worth showing
        return []
    return [
        {
            "id": row.id,
            "label": row.label,
            "start_time": row.start_time,
            "duration_s": row.public()["duration_s"],
            "snapshot": str(media.folder / row.snapshot) if row.snapshot else None,
            "clip": str(media.folder / row.clip) if row.clip else None,
        }
        for row in rows
    ]
