"""Offline analysis jobs: a FIFO queue, worker threads running the real pipeline, a janitor.

Each job lives in its own server-made temporary folder (input, annotated video, events)
and is deleted `retention_s` after it finished. Progress leaves the pipeline through a
FrameSink and reaches web clients through a Broadcaster, never by waiting on them.
"""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..config import load_config
from ..errors import RealtimeError
from ..stats import RateMeter
from ..types import FrameResult
from .broadcast import Broadcaster
from .encode import EncoderUnavailable, ResultFormat, choose_format, finish_result

log = logging.getLogger("realtime.web")

EVENTS_NAME = "events.jsonl"
TERMINAL = ("done", "failed")


@dataclass(frozen=True)
class JobSettings:
    config_path: str | None = None  # the pipeline's YAML config (None: ./config.yaml if present)
    weights: str | None = None  # classifier checkpoint; None: the config's
    workers: int = 1  # jobs run at once
    max_queued: int = 16  # more waiting jobs than this are refused
    retention_s: float = 3600.0  # a finished job's files live this long
    max_frames: int | None = None  # analyse at most this many frames of an upload
    work_dir: str | None = None  # parent of the per-job folders (None: the system temp dir)
    video_codec: str = "auto"  # h264 (via ffmpeg) | vp8 | auto (h264 when ffmpeg is found)


@dataclass(frozen=True)
class JobState:
    """One consistent snapshot; the runner replaces it whole, readers never see half an update."""

    status: str = "queued"  # queued | running | done | failed
    frames: int = 0
    frame_count: int | None = None
    fps: float = 0.0
    error: str | None = None
    notices: tuple[str, ...] = ()

    @property
    def progress(self) -> float:
        if self.status == "done":
            return 100.0
        if not self.frame_count:
            return 0.0
        # Frame counts from containers are estimates: never claim 100 before the end.
        return min(99.0, 100.0 * self.frames / self.frame_count)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


@dataclass
class Job:
    id: str
    directory: Path
    input_path: Path
    result_format: ResultFormat
    created: float = field(default_factory=time.time)
    state: JobState = field(default_factory=JobState)
    finished_at: float | None = None  # monotonic
    updates: Broadcaster[JobState] = field(default_factory=Broadcaster)

    @property
    def result_path(self) -> Path:
        return self.directory / self.result_format.result_name

    @property
    def events_path(self) -> Path:
        return self.directory / EVENTS_NAME

    def set_state(self, **changes) -> JobState:
        self.state = replace(self.state, **changes)
        if self.state.finished and self.finished_at is None:
            self.finished_at = time.monotonic()
        self.updates.publish(self.state)
        return self.state

    def describe(self, state: JobState | None = None) -> dict:
        """The API's view of the job, as of `state` (default: now)."""
        s = state or self.state
        return {"id": self.id, "status": s.status, "progress": round(s.progress, 1), "frames": s.frames,
                "frame_count": s.frame_count, "fps": round(s.fps, 1), "error": s.error,
                "notices": list(s.notices)}


class ProgressSink:
    """A pipeline FrameSink that publishes frames done and frames/s, at most every `interval_s`."""

    def __init__(self, job: Job, interval_s: float = 0.25) -> None:
        self.job = job
        self.interval_s = interval_s
        self.rate = RateMeter()
        self.frames = 0
        self._last_publish = 0.0

    def write(self, image: np.ndarray, result: FrameResult) -> None:
        now = time.monotonic()
        self.frames += 1
        self.rate.tick(now)
        if now - self._last_publish >= self.interval_s:
            self._last_publish = now
            self.job.set_state(frames=self.frames, fps=self.rate.rate())

    def close(self) -> None:
        self.job.set_state(frames=self.frames, fps=self.rate.rate())


class QueueFull(Exception):
    pass


class JobRunner:
    """Owns every job: creation, the FIFO queue, the worker threads and the clean-up."""

    def __init__(self, settings: JobSettings | None = None) -> None:
        self.settings = settings or JobSettings()
        self.result_format = choose_format(self.settings.video_codec)  # raises EncoderUnavailable
        self.root = Path(tempfile.mkdtemp(prefix="realtime-web-", dir=self.settings.work_dir))
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()  # guards _jobs only
        self._pending: queue.Queue[Job | None] = queue.Queue()
        self._stop = threading.Event()
        self._running_stops: dict[str, threading.Event] = {}  # job id -> that pipeline's stop event
        self._threads = [threading.Thread(target=self._work, name=f"job-worker-{i}", daemon=True)
                         for i in range(max(1, self.settings.workers))]
        self._threads.append(threading.Thread(target=self._sweep, name="job-janitor", daemon=True))
        for thread in self._threads:
            thread.start()

    # --- creating and finding jobs (web request threads) ---

    def new_job(self, suffix: str = "") -> Job:
        """A job folder with a server-chosen name; the caller saves the upload to job.input_path."""
        job_id = uuid.uuid4().hex
        directory = self.root / job_id
        directory.mkdir(mode=0o700)
        return Job(id=job_id, directory=directory, input_path=directory / f"input{suffix}",
                   result_format=self.result_format)

    def enqueue(self, job: Job) -> None:
        with self._lock:
            waiting = sum(1 for j in self._jobs.values() if j.state.status == "queued")
            if waiting >= self.settings.max_queued:
                raise QueueFull(f"{waiting} jobs are already waiting — try again later")
            self._jobs[job.id] = job
        job.set_state(status="queued")
        self._pending.put(job)

    def discard(self, job: Job) -> None:
        shutil.rmtree(job.directory, ignore_errors=True)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    # --- running (worker threads) ---

    def _work(self) -> None:
        while not self._stop.is_set():
            job = self._pending.get()
            if job is None:
                return
            try:
                self._run(job)
            except Exception as exc:  # a bug must not kill the worker and strand the queue
                log.exception("job %s crashed", job.id)
                job.set_state(status="failed", error=f"internal error: {type(exc).__name__}: {exc}")

    def _run(self, job: Job) -> None:
        from ..pipeline import Pipeline  # heavy (torch, MediaPipe): only when a job runs

        if self._stop.is_set():
            job.set_state(status="failed", error="the server is shutting down")
            return
        notices: list[str] = []
        overrides = {
            "source": str(job.input_path),
            "max_frames": self.settings.max_frames,
            "capture": {"pace": False, "policy": "lossless"},
            "output": {"headless": True, "fullscreen": False, "video": str(job.directory / job.result_format.pipeline_name),
                       "events": str(job.events_path)},
        }
        if self.settings.weights:
            overrides["classifier"] = {"weights": self.settings.weights}
        try:
            config = load_config(self.settings.config_path, overrides)
            sink = ProgressSink(job)
            pipeline = Pipeline(config, weights_explicit=self.settings.weights is not None, extra_sinks=[sink],
                                notice=lambda text: notices.append(text.removeprefix("realtime: ")),
                                source_label=job.input_path.name)
        except RealtimeError as exc:
            job.set_state(status="failed", error=str(exc), notices=tuple(notices))
            return
        count = pipeline.source_info.frame_count
        if count and self.settings.max_frames:
            count = min(count, self.settings.max_frames)
        job.set_state(status="running", frame_count=count, notices=tuple(notices))
        self._running_stops[job.id] = pipeline.stop
        try:
            if self._stop.is_set():
                pipeline.request_stop("shutdown")
            summary = pipeline.run()
        finally:
            self._running_stops.pop(job.id, None)
        if self._stop.is_set():
            job.set_state(status="failed", error="the server shut down during the analysis")
        elif summary.error:
            job.set_state(status="failed", error=summary.error)
        elif summary.frames_out == 0:
            job.set_state(status="failed", error="no frame of the video could be decoded")
        else:
            try:
                finish_result(job.result_format, job.directory)
            except EncoderUnavailable as exc:
                job.set_state(status="failed", error=str(exc))
                return
            job.set_state(status="done", frames=summary.frames_out, fps=summary.fps)
        log.info("job %s %s: %s", job.id, job.state.status, summary.line())

    # --- clean-up ---

    def _sweep(self) -> None:
        interval = min(60.0, max(0.5, self.settings.retention_s / 4))
        while not self._stop.wait(interval):
            self.sweep()

    def sweep(self, now: float | None = None) -> list[str]:
        """Delete the jobs that finished more than retention_s ago; their ids."""
        now = time.monotonic() if now is None else now
        with self._lock:
            expired = [j for j in self._jobs.values()
                       if j.finished_at is not None and now - j.finished_at >= self.settings.retention_s]
            for job in expired:
                del self._jobs[job.id]
        for job in expired:
            job.updates.close()
            shutil.rmtree(job.directory, ignore_errors=True)
        return [job.id for job in expired]

    def close(self, timeout: float = 30.0) -> None:
        """Stop the running pipelines, end the threads, delete every job's files."""
        self._stop.set()
        for stop in list(self._running_stops.values()):
            stop.set()
        for _ in self._threads:
            self._pending.put(None)
        for thread in self._threads:
            thread.join(timeout=timeout)
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for job in jobs:
            if not job.state.finished:
                job.set_state(status="failed", error="the server shut down")
            job.updates.close()
        shutil.rmtree(self.root, ignore_errors=True)
