"""The driver of a cluster run: starts one actor per camera (or group), gathers their events, stops them.

It keeps one `next_events` call outstanding per actor and waits on all of them at once with
`ray.wait` (a blocking wait with a timeout, so a stop request is seen within WAIT_S), writes the
events to the JSON-lines file when asked, and ends when every actor has handed over its summary.
SIGTERM or Ctrl-C asks every actor to stop: each pipeline finalizes its own video files and
MQTT, then its last events and summary reach the driver, which prints one line per camera.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..signals import stop_on_signals
from ..sinks import EventWriter, JsonlWriter
from ..timeline import TimelineWriter
from .actor import CameraActor, EventBatch
from .board import BOARD_NAME, StatusBoard
from .plan import ActorPlan, actor_config, plan_actors
from .restarts import RestartAlignedWriter
from .session import ClusterError, check_feasible, connect, import_ray, shutdown

# How long one `next_events` call waits in the actor for the first event: short enough that an
# idle camera's call returns now and then, long enough to cost nothing (one call per camera a second).
PULL_TIMEOUT_S = 1.0
# How long the driver blocks in ray.wait before looking at its stop flag again.
WAIT_S = 0.5
# After a stop, how long an actor may take to finalize its outputs before it is killed. Stopping
# takes a few seconds (threads join with 10 s timeouts); loading models before a first frame more.
STOP_GRACE_S = 60.0
# Calls an actor answers at once: next_events (waiting), status, stop, and one spare.
ACTOR_CONCURRENCY = 4


@dataclass
class CameraOutcome:
    """How one camera's run went, as the driver saw it."""

    camera: str
    actor: str
    node_ip: str = ""
    node_id: str = ""
    restarts: int = 0
    summary: Any = None  # the pipeline's CameraSummary, once its actor ended
    error: str | None = None

    def line(self) -> str:
        where = f" on {self.node_ip} ({self.node_id[:8]})" if self.node_id else ""
        head = f"realtime: {self.camera}{where}, restarts {self.restarts}: "
        if self.summary is None:
            return head + f"no summary ({self.error or 'its actor never reported'})"
        return head + self.summary.line() + (f"; error: {self.error}" if self.error else "")


@dataclass
class JobSummary:
    cameras: dict[str, CameraOutcome] = field(default_factory=dict)
    stopped_by: str = "end"
    events_dropped: int = 0
    mqtt: dict[str, int] | None = None  # messages published and dropped, summed over the actors

    @property
    def failed(self) -> list[str]:
        return [name for name, outcome in self.cameras.items() if outcome.error]

    def lines(self) -> list[str]:
        lines = [outcome.line() for outcome in self.cameras.values()]
        lines.append(
            f"realtime: {len(self.cameras)} cameras, {len(self.failed)} with errors; stopped by "
            f"{self.stopped_by}" + (f"; {self.events_dropped} events dropped" if self.events_dropped else "")
        )
        if self.mqtt is not None:
            lines.insert(
                -1, f"realtime: MQTT: {self.mqtt['published']} messages published, {self.mqtt['dropped']} dropped"
            )
        return lines


class ClusterJob:
    """One run of every camera of a Config on a Ray cluster."""

    def __init__(
        self,
        config: Config,
        address: str | None = None,
        events: str | None = None,
        flush_events: bool = False,
        notice: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    ) -> None:
        self.config = config
        self.address = address
        self.notice = notice
        # Everything that can be checked without Ray first: the plan, the outputs.
        self.plans = plan_actors(config)
        for plan in self.plans:
            actor_config(config, plan)
        # Every camera's events meet here: the one JSON-lines file, and the timeline drawn from them.
        self.writers: list[EventWriter] = []
        if events:
            self.writers.append(JsonlWriter(events, flush_events))
        if config.output.timeline:  # one time line per camera, also across its actor's restarts
            self.writers.append(RestartAlignedWriter(TimelineWriter(config.output.timeline)))
        self.summary = JobSummary(
            cameras={camera: CameraOutcome(camera, plan.name) for plan in self.plans for camera in plan.camera_names}
        )
        self._stop_reason: str | None = None
        self._stop = threading.Event()
        self._dropped: dict[str, int] = {}

    def request_stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            self._stop.set()

    def run(self) -> JobSummary:
        ray = import_ray()
        presence = None
        try:
            if self.config.mqtt.host and self.config.mqtt.availability:
                from ..mqtt import MqttWriter

                # `<prefix>/availability` says whether the job runs: online while this driver does,
                # offline when it ends or (last will) dies. The actors publish events only.
                presence = MqttWriter(self.config.mqtt, notice=self.notice)
            local = connect(self.address, self.config.cluster.namespace, self._local_cpus())
            with stop_on_signals(self.request_stop):
                self._run(ray, local)
        finally:
            for writer in self.writers:
                writer.close()
            if presence is not None:
                presence.close()
            shutdown()
        return self.summary

    def _local_cpus(self) -> int:
        """A local cluster gets the logical CPUs every camera asks for: on one machine the cameras
        share its cores as they would in one process; Ray's counts are for placement only."""
        wanted = math.ceil(sum(plan.resources.num_cpus for plan in self.plans))
        return max(os.cpu_count() or 1, wanted)

    def _run(self, ray: Any, local: bool) -> None:
        for problem in check_feasible(self.plans, local):
            self.notice(f"realtime: warning: {problem}; it waits until such a node joins")
        namespace = self.config.cluster.namespace
        try:
            # Restarted if its node goes (its counts start afresh); camera actors look it up by name.
            board = (
                ray.remote(StatusBoard)
                .options(name=BOARD_NAME, namespace=namespace, num_cpus=0, max_restarts=-1)
                .remote()
            )
        except ValueError:  # ActorAlreadyExistsError: the name is taken
            raise ClusterError(
                f"a realtime job already runs in Ray namespace {namespace!r} on this cluster — "
                f"stop it, or set cluster.namespace"
            ) from None
        ray.get([board.expect.remote(plan.name, plan.camera_names) for plan in self.plans])
        actor_class = ray.remote(CameraActor)
        actors = {}
        for plan in self.plans:
            actors[plan.name] = actor_class.options(
                name=f"camera-{plan.name}",
                namespace=namespace,
                max_restarts=self.config.cluster.max_restarts,
                max_task_retries=-1,  # every method may run again on a restarted actor
                max_concurrency=ACTOR_CONCURRENCY,
                **plan.resources.ray_options(),
            ).remote(plan, self.config)
        self._pump(ray, actors, board)

    def _pump(self, ray: Any, actors: dict[str, Any], board: Any) -> None:
        plans = {plan.name: plan for plan in self.plans}
        pending = {actors[name].next_events.remote(PULL_TIMEOUT_S): name for name in actors}
        stop_deadline: float | None = None
        while pending:
            if self._stop.is_set() and stop_deadline is None:
                stop_deadline = time.monotonic() + STOP_GRACE_S
                self.summary.stopped_by = self._stop_reason or "stop"
                for ref, name in list(pending.items()):
                    if not any(self.summary.cameras[c].node_id for c in plans[name].camera_names):
                        # Never started (still waiting for a node): nothing to finalize.
                        ray.kill(actors[name], no_restart=True)
                        self._lost(plans[name], board, "stopped before it had started")
                        del pending[ref]
                    else:
                        actors[name].stop.remote(self.summary.stopped_by)
            ready, rest = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
            if ready and rest:  # with many cameras, take every batch that is in, not one a loop
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            for ref in ready:
                name = pending.pop(ref)
                try:
                    batch: EventBatch = ray.get(ref)
                except ray.exceptions.RayActorError as exc:  # its restarts are used up
                    self._lost(plans[name], board, f"its actor died and was not restarted ({_cause(exc)})")
                    continue
                self._take(name, batch)
                if batch.done:
                    self._ended(plans[name], batch, board)
                    ray.kill(actors[name], no_restart=True)  # outputs are final; free its resources
                else:
                    pending[actors[name].next_events.remote(PULL_TIMEOUT_S)] = name
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                for ref, name in list(pending.items()):
                    self._lost(plans[name], board, f"did not stop within {STOP_GRACE_S:.0f} s")
                    ray.kill(actors[name], no_restart=True)
                    del pending[ref]

    def _take(self, actor: str, batch: EventBatch) -> None:
        self._dropped[actor] = batch.dropped  # each actor counts its own, from its (latest) start
        self.summary.events_dropped = sum(self._dropped.values())
        for event in batch.events:
            outcome = self.summary.cameras.get(event.get("camera", ""))
            if outcome is not None and event["type"] == "actor" and event["status"] == "started":
                outcome.node_ip, outcome.node_id = event["node_ip"], event["node_id"]
                outcome.restarts = event["restarts"]
            if outcome is not None and event["type"] == "stream" and event["status"] == "error":
                outcome.error = event.get("error")
                self.notice(f"realtime: {outcome.camera}: {outcome.error}")
            for writer in self.writers:
                writer.send(event)

    def _ended(self, plan: ActorPlan, batch: EventBatch, board: Any) -> None:
        if batch.mqtt is not None:
            total = self.summary.mqtt or {"published": 0, "dropped": 0}
            self.summary.mqtt = {key: total[key] + batch.mqtt.get(key, 0) for key in total}
        for camera in plan.camera_names:
            outcome = self.summary.cameras[camera]
            outcome.summary = batch.summaries.get(camera)
            if outcome.summary is not None and outcome.summary.error:
                outcome.error = outcome.summary.error
            board.mark.remote(camera, "error" if outcome.error else "ended", outcome.error)

    def _lost(self, plan: ActorPlan, board: Any, why: str) -> None:
        """A camera that ends without its actor's summary: its own error event, the others go on."""
        for camera in plan.camera_names:
            self.summary.cameras[camera].error = why
            board.mark.remote(camera, "error", why)
            for writer in self.writers:
                writer.send(
                    {"type": "stream", "camera": camera, "status": "error", "time": round(time.time(), 3), "error": why}
                )
        self.notice(f"realtime: {'+'.join(plan.camera_names)}: {why}")


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
