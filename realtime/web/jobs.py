"""Offline analysis jobs: kept in SQLite, run in upload order by worker threads, cleaned up by a janitor.

Each job has a folder `<work dir>/jobs/<id>/` (upload, annotated video, events) and a
row in `<work dir>/jobs.sqlite3`. With a work folder given, jobs survive the server: at
start, finished jobs stay downloadable until their retention ends, a job that was running
runs again from its stored upload, queued jobs run in order, and folders no job owns are
deleted. A stop (SIGTERM) ends the running job and puts it back in the queue for the next
start. Without one, jobs live in a temporary folder made at the first upload and deleted
when the server stops.

Progress leaves the pipeline through a Sink and reaches web clients through a
Broadcaster per job, never by waiting on them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..capture import MIN_LOOPED_SHARE
from ..config import Config, load_config, with_overrides
from ..errors import OutputError, RealtimeError
from ..features import FeatureSpec
from ..model_registry import ModelRegistry
from ..timeline import Timeline
from ..types import FrameRecord
from .broadcast import Broadcaster
from .encode import EncoderUnavailable, choose_format, find_ffmpeg, finish_result
from .store import JobRecord, JobStore

if TYPE_CHECKING:
    from ..pipeline import RunSummary

log = logging.getLogger("realtime.web")

STORE_NAME = "jobs.sqlite3"
LOCK_NAME = "server.lock"
JOBS_FOLDER = "jobs"
EVENTS_NAME = "events.jsonl"
# A job whose run was cut short by the server dying this many times is failed, not re-run again:
# it may be what kills the server (memory, a decoder crash).
MAX_ATTEMPTS = 2
# A rate from a shorter span is noise: two frames 3 ms apart would read as 300 frames/s.
MIN_RATE_SPAN_S = 1.0

RERUN_NOTICE = "analysed again from the start: the server stopped during the first attempt"
STOPPING_NOTICE = "the server stopped; this job runs again when it restarts"


@dataclass(frozen=True)
class JobSettings:
    config: Config | None = None  # what every job starts from, loaded once; None: load_config's default file
    weights: str | None = None  # classifier checkpoint; None: the config's
    workers: int = 1  # jobs run at once
    max_queued: int = 16  # more waiting jobs than this are refused
    retention_s: float = 3600.0  # a finished job's files live this long
    max_frames: int | None = None  # analyse at most this many frames of an upload
    work_dir: str | None = None  # jobs survive restarts here; None: a temporary folder, deleted at stop
    video_codec: str = "auto"  # h264 (via ffmpeg) | vp8 | auto (h264 when ffmpeg is found)
    models_dir: str | None = None  # jobs use this registry's active model and follow its activations


MEDIA_NAME = "media"  # a job's episodes: snapshots, clips and their index


def describe(job: JobRecord) -> dict[str, Any]:
    """The API's view of a job."""
    return {
        "id": job.id,
        "status": job.status,
        "progress": round(job.progress, 1),
        "frames": job.frames,
        "frame_count": job.frame_count,
        "fps": None if job.fps is None else round(job.fps, 1),
        "error": job.error,
        "warning": job.warning,
        "filename": job.filename,
        "notices": list(job.notices),
        "created": job.created_at,
        "started": job.started_at,
        "finished": job.finished_at,
    }


class ProgressSink:
    """A pipeline Sink that reports frames done and frames/s, at most every `interval_s`."""

    needs_image = False

    def __init__(
        self, runner: JobRunner, job_id: str, interval_s: float = 0.25, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.runner = runner
        self.job_id = job_id
        self.interval_s = interval_s
        self.clock = clock
        self.frames = 0
        self._t_first: float | None = None
        self._last_report = 0.0

    def write(self, record: FrameRecord) -> None:
        now = self.clock()
        self.frames += 1
        if self._t_first is None:
            self._t_first = now
        if now - self._last_report >= self.interval_s:
            self._last_report = now
            self.runner.report(self.job_id, frames=self.frames, fps=self.rate(now))

    def rate(self, now: float) -> float | None:
        """Frames/s since the first frame; None until that is long enough to mean something."""
        if self._t_first is None or now - self._t_first < MIN_RATE_SPAN_S:
            return None
        return (self.frames - 1) / (now - self._t_first)

    def close(self) -> None:
        self.runner.report(self.job_id, frames=self.frames, fps=self.rate(self.clock()))


class QueueFull(Exception):
    pass


def no_action_hint(timeline: Timeline, window_s: float) -> str | None:
    """Why a finished job shows no action, when it shows none."""
    if timeline.rows:
        return None
    if timeline.duration < MIN_LOOPED_SHARE * window_s:
        return (
            f"no action could be recognised: the video is {timeline.duration:.2f} s long, and an action needs "
            f"at least {MIN_LOOPED_SHARE * window_s:.2f} s of a person moving (a clip shorter than "
            f"{window_s:.2f} s is played again until it is that long)"
        )
    return "no action was recognised: nobody was followed long enough (is a whole person in view?)"


def read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a crash: the rest still counts
                continue
    return events


class JobRunner:
    """Owns every job: creation, the queue, the worker threads, recovery at start and clean-up."""

    def __init__(self, settings: JobSettings | None = None) -> None:
        self.settings = settings or JobSettings()
        # Read once, before any job: a bad file fails here, not in every job; later edits change nothing.
        self.config = self.settings.config if self.settings.config is not None else load_config(None)
        self.result_format = choose_format(self.settings.video_codec)  # raises EncoderUnavailable
        work_dir = self.settings.work_dir
        self.durable = work_dir is not None
        self._root: Path | None = None
        self._lock_fd: int | None = None
        if work_dir is not None:
            self._root = Path(work_dir).resolve()
            self._lock_fd = _lock_work_dir(self._root)
            try:
                self.store = JobStore(self._root / STORE_NAME)
            except BaseException:
                os.close(self._lock_fd)
                raise
        else:
            self.store = JobStore(":memory:")  # made on demand: no temporary folder until a job needs one
        self._lock = threading.Lock()  # a store write and its broadcast happen together; guards the dicts below
        self._updates: dict[str, Broadcaster[JobRecord]] = {}
        self._running: dict[str, Any] = {}  # job id -> its Pipeline, to stop it
        self._pending: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        if self._root is not None:
            recovery = recover(self.store, self._root, self.settings.retention_s)
            if recovery.changed:
                log.info("%s", recovery.line())
            for job_id in recovery.to_run:
                self._pending.put(job_id)
        self.registry = ModelRegistry(self.settings.models_dir) if self.settings.models_dir else None
        self._threads = [
            threading.Thread(target=self._work, name=f"job-worker-{i}", daemon=True)
            for i in range(max(1, self.settings.workers))
        ]
        self._threads.append(threading.Thread(target=self._sweep_loop, name="job-janitor", daemon=True))
        for thread in self._threads:
            thread.start()

    # --- where things are ---

    @property
    def root(self) -> Path | None:
        """The work folder; None until the first upload when it is a temporary one."""
        return self._root

    def job_dir(self, job_id: str) -> Path:
        return self._ensure_root() / JOBS_FOLDER / job_id

    def path(self, relative: str) -> Path:
        return self._ensure_root() / relative

    def _ensure_root(self) -> Path:
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="realtime-web-"))
            return self._root

    # --- creating and finding jobs (web request threads) ---

    def new_job(self, suffix: str = "") -> tuple[str, Path]:
        """A job id and the path to save its upload at, in a fresh folder with a server-chosen name."""
        job_id = uuid.uuid4().hex
        directory = self.job_dir(job_id)
        directory.parent.mkdir(mode=0o700, exist_ok=True)
        directory.mkdir(mode=0o700)
        return job_id, directory / f"input{suffix}"

    def enqueue(
        self, job_id: str, input_path: Path, frame_count: int | None = None, filename: str | None = None
    ) -> JobRecord:
        """Queue an upload; `frame_count` is the container's (an estimate), for the progress bar;
        `filename` is what its user calls it, for messages."""
        relative = self._relative(input_path)
        if frame_count and self.settings.max_frames:
            frame_count = min(frame_count, self.settings.max_frames)
        with self._lock:
            waiting = self.store.count("queued")
            if waiting >= self.settings.max_queued:
                raise QueueFull(f"{waiting} jobs are already waiting — try again later")
            record = self.store.add(job_id, relative, time.time(), frame_count, filename)
        self._pending.put(job_id)
        return record

    def discard(self, job_id: str) -> None:
        """Forget an upload that never became a job."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def get(self, job_id: str) -> JobRecord | None:
        return self.store.get(job_id)

    def subscribe(self, job_id: str) -> tuple[Broadcaster[JobRecord], queue.Queue]:
        """A one-slot inbox of the job's states, primed with the current one."""
        with self._lock:
            updates = self._updates.get(job_id)
            if updates is None:
                updates = Broadcaster()
                current = self.store.get(job_id)
                if current is None:  # gone (swept): the inbox says so at once, and nothing is kept
                    updates.close()
                else:
                    self._updates[job_id] = updates
                    updates.publish(current)
            return updates, updates.subscribe()

    def events_of(self, job: JobRecord) -> list[dict[str, Any]]:
        return read_events(self.path(job.events_path)) if job.events_path else []

    # --- state changes (worker threads) ---

    def report(self, job_id: str, **changes: Any) -> JobRecord:
        """Store a change and tell the job's followers, as one step."""
        with self._lock:
            record = self.store.update(job_id, **changes)
            updates = self._updates.get(job_id)
            if updates is not None:
                updates.publish(record)
        return record

    def _finish(self, job_id: str, status: str, **changes: Any) -> JobRecord:
        return self.report(job_id, status=status, finished_at=time.time(), **changes)

    # --- running (worker threads) ---

    def _work(self) -> None:
        while not self._stop.is_set():
            job_id = self._pending.get()
            if job_id is None or self._stop.is_set():
                return  # a job still queued stays queued in the store, for the next start
            try:
                self._run(job_id)
            except Exception as exc:  # a bug must not kill the worker and strand the queue
                log.exception("job %s crashed", job_id)
                self._finish(job_id, "failed", error=f"internal error: {type(exc).__name__}: {exc}")

    def _run(self, job_id: str) -> None:
        # Heavy (torch, pose models): imported only when a job runs.
        from ..model_follower import ModelFollower
        from ..pipeline import Pipeline

        job = self.store.get(job_id)
        if job is None or job.status != "queued":
            return
        directory = self.job_dir(job_id)
        for leftover in (EVENTS_NAME, self.result_format.pipeline_name, self.result_format.result_name):
            (directory / leftover).unlink(missing_ok=True)  # of an interrupted attempt
        job = self.report(
            job_id,
            status="running",
            started_at=time.time(),
            attempts=job.attempts + 1,
            frames=0,
            fps=None,
            warning=None,
            notices=tuple(n for n in job.notices if n != STOPPING_NOTICE),
        )
        try:
            config = with_overrides(self.config, self._overrides(job, directory))
            # Events and errors name the upload as its user knows it, never by a server path.
            pipeline = Pipeline(
                config, sinks=[ProgressSink(self, job_id)], event_writers=[], source_label=self._label(job)
            )
        except RealtimeError as exc:
            self._finish(job_id, "failed", error=self._public(job, str(exc)))
            return
        with self._lock:
            self._running[job_id] = pipeline
        if self.registry is not None:
            follower = ModelFollower(self.registry, pipeline.classification.switch, pipeline.stop)
            follower.poll()  # the events name the model from the first one
            follower.start()
        try:
            if self._stop.is_set():
                pipeline.request_stop("shutdown")
            summary = pipeline.run()
        finally:
            with self._lock:
                self._running.pop(job_id, None)
        if self._stop.is_set():  # the server is stopping: the job waits for the next start
            self.report(
                job_id,
                status="queued",
                started_at=None,
                attempts=job.attempts - 1,
                frames=0,
                fps=None,
                notices=(*job.notices, STOPPING_NOTICE),
            )  # `job` is as it started: no notice twice
            log.info("job %s stopped with the server; it stays queued", job_id)
            return
        done = self._settle(job, directory, summary)
        log.info(
            "job %s %s: %s", job_id, done.status, "; ".join(line.removeprefix("realtime: ") for line in summary.lines())
        )

    def _overrides(self, job: JobRecord, directory: Path) -> dict[str, Any]:
        """The job's changes to the server's config: its upload in, its folder out, as fast as it goes."""
        overrides: dict[str, Any] = {
            "source": str(self.path(job.input_path)),
            "max_frames": self.settings.max_frames,
            "capture": {"pace": False, "policy": "lossless"},
            "output": {
                "headless": True,
                "fullscreen": False,
                "video": str(directory / self.result_format.pipeline_name),
                "events": str(directory / EVENTS_NAME),
            },
        }
        if self.settings.weights:
            overrides["classifier"] = {"weights": self.settings.weights}
        # Each job's episodes, as the live view lists them (docs/media.md); the job's own retention
        # deletes its folder, so the media's is off. Clips need ffmpeg; without it, snapshots only.
        overrides["media"] = {
            "dir": str(directory / MEDIA_NAME),
            "retain_days": 0,
            "max_gb": 0,
            "clips": self.config.media.clips and find_ffmpeg() is not None,
        }
        if self.registry is not None and (active := self.registry.active()) is not None:
            overrides["classifier"] = {"weights": str(self.registry.checkpoint_path(active))}
        return overrides

    def _label(self, job: JobRecord) -> str:
        return job.filename or Path(job.input_path).name

    def _public(self, job: JobRecord, message: str) -> str:
        """A message fit for the browser: the upload's server path, if a message names it, becomes its name."""
        return message.replace(str(self.path(job.input_path)), self._label(job))

    def _settle(self, job: JobRecord, directory: Path, summary: RunSummary) -> JobRecord:
        """Done (with a warning when the file was damaged part-way) or failed; the browser-playable result made."""
        if summary.frames_out == 0:
            error = summary.error or "no frame of the video could be decoded"
            return self._finish(job.id, "failed", error=self._public(job, error))
        if summary.error and not summary.truncated:
            return self._finish(job.id, "failed", error=self._public(job, summary.error))
        # A damaged file's good frames were all analysed and written: the user gets them, and why they stop.
        warning = self._public(job, summary.error) if summary.error else None
        try:
            finish_result(self.result_format, directory)
        except EncoderUnavailable as exc:
            return self._finish(job.id, "failed", error=str(exc))
        events_path = directory / EVENTS_NAME
        hint = no_action_hint(Timeline.from_events(read_events(events_path)), FeatureSpec().duration_s)
        fps = max((camera.fps for camera in summary.cameras.values()), default=0.0)  # a job has one camera
        return self._finish(
            job.id,
            "done",
            frames=summary.frames_out,
            fps=fps,
            notices=(*job.notices, hint) if hint else job.notices,
            warning=warning,
            result_path=self._relative(directory / self.result_format.result_name),
            events_path=self._relative(events_path),
        )

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self._ensure_root()))

    # --- clean-up ---

    def _sweep_loop(self) -> None:
        interval = min(60.0, max(0.5, self.settings.retention_s / 4))
        while not self._stop.wait(interval):
            self.sweep()

    def sweep(self, now: float | None = None) -> list[str]:
        """Delete the jobs that finished more than retention_s ago; their ids."""
        if self._root is None:
            return []
        expired = delete_expired(self.store, self._root, self.settings.retention_s, now)
        with self._lock:
            closing = [self._updates.pop(job_id) for job_id in expired if job_id in self._updates]
        for updates in closing:
            updates.close()
        return expired

    def close(self, timeout: float = 30.0) -> None:
        """Stop the running pipelines and the threads; a temporary work folder is deleted.

        With a work folder, a job cut short goes back to the queue, and queued jobs stay
        queued: the next start runs them.
        """
        self._stop.set()
        with self._lock:
            running = list(self._running.values())
        for pipeline in running:
            pipeline.request_stop("shutdown")
        for _ in self._threads:
            self._pending.put(None)
        for thread in self._threads:
            thread.join(timeout=timeout)
        with self._lock:
            updates = list(self._updates.values())
            self._updates.clear()
        for broadcaster in updates:
            broadcaster.close()
        self.store.close()
        if self.registry is not None:
            self.registry.close()
        if not self.durable and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock


def _lock_work_dir(root: Path) -> int:
    """Hold the work folder for this process (a file descriptor with a flock, released when closed).

    Two servers on one folder would run each other's jobs and sweep each other's files.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise OutputError(f"cannot use --work-dir {root} ({exc.strerror}) — choose a writable folder") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputError(f"another server is using --work-dir {root} — stop it or choose another folder") from None
    return fd


# --- what a previous server left behind ---


@dataclass
class Recovery:
    """What `recover` did: ids of the jobs run again, failed, deleted; folders deleted; the queue to run."""

    rerun: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    to_run: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.rerun or self.failed or self.expired or self.orphans or self.to_run)

    def line(self) -> str:
        return (
            f"jobs from the last run: {len(self.to_run)} to run ({len(self.rerun)} interrupted, run again), "
            f"{len(self.failed)} failed, {len(self.expired)} past retention deleted, {len(self.orphans)} "
            f"folder(s) no job owns deleted"
        )


def recover(store: JobStore, root: Path, retention_s: float, now: float | None = None) -> Recovery:
    """Settle the jobs of a server that stopped (or died) with this work folder, before any job runs.

    Interrupted jobs go back to the queue if their upload is still there (not after
    MAX_ATTEMPTS); queued jobs keep their order; finished jobs stay until their retention
    ends; job folders that no job owns are deleted.
    """
    now = time.time() if now is None else now
    done = Recovery()

    def fail(job: JobRecord, error: str) -> None:
        store.update(job.id, status="failed", finished_at=now, error=error)
        done.failed.append(job.id)

    for job in store.jobs("queued", "running"):
        if not (root / job.input_path).is_file():
            fail(job, "the server stopped before this job ended and its upload is gone — upload the video again")
        elif job.status == "running" and job.attempts >= MAX_ATTEMPTS:
            fail(
                job,
                f"the server stopped during this analysis {job.attempts} times — the video may be too long "
                f"or too large for this server",
            )
        elif job.status == "running":
            notices = (*(n for n in job.notices if n != RERUN_NOTICE), RERUN_NOTICE)
            store.update(job.id, status="queued", started_at=None, frames=0, fps=None, notices=notices)
            done.rerun.append(job.id)
    for job in store.jobs("done"):
        if not all(name and (root / name).is_file() for name in (job.result_path, job.events_path)):
            fail(job, "its result files were deleted outside the server")
    done.expired = delete_expired(store, root, retention_s, now)
    owned = {job.id for job in store.jobs()}
    folder = root / JOBS_FOLDER
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name in owned:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        done.orphans.append(path.name)
    done.to_run = [job.id for job in store.jobs("queued")]
    return done


def delete_expired(store: JobStore, root: Path, retention_s: float, now: float | None = None) -> list[str]:
    """Delete the jobs (rows and folders) that finished `retention_s` or more ago; their ids."""
    now = time.time() if now is None else now
    expired = [
        job.id
        for job in store.jobs("done", "failed")
        if job.finished_at is not None and now - job.finished_at >= retention_s
    ]
    for job_id in expired:
        store.delete(job_id)
        shutil.rmtree(root / JOBS_FOLDER / job_id, ignore_errors=True)
    return expired
