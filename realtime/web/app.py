"""`python -m realtime serve`: upload a video, watch the analysis progress, get the annotated result.

JSON API (what the page uses too):
  POST /api/jobs                 multipart field `video` -> 201 {"id": ...}
  GET  /api/jobs/<id>            {"status": queued|running|done|failed, "progress": 0..100, "error": ...,
                                  "warning": ...}  (a warning: done, but the file was damaged part-way)
  GET  /api/jobs/<id>/events     Server-Sent Events, one JSON job state per message, until done/failed
  GET  /api/jobs/<id>/result     the annotated video (H.264 MP4 or VP8 WebM; ?download=1 to download)
  GET  /api/jobs/<id>/events.jsonl  the pipeline's events log
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from flask import Flask, Response, abort, jsonify, render_template, request, send_file
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from ..arguments import ArgumentParser
from ..config import Config, default_config_path, load_config, weights_path
from ..datasets import parse_data_arg
from ..errors import ConfigError
from ..teach.trainer import TeachSettings
from ..timeline import Timeline
from .encode import CODECS, EncoderUnavailable, result_mimetype
from .events_api import EventsSource, register_events_api
from .jobs import EVENTS_NAME, MEDIA_NAME, JobRunner, JobSettings, QueueFull, describe
from .security import LOOPBACK_NAMES, allowed_host_names, harden
from .serving import bind, serve
from .store import JobRecord
from .upload import UploadRejected, display_name, probe_video, safe_suffix

RUNNER_KEY = "realtime.jobs"
TEACH_KEY = "realtime.teach"
SSE_KEEPALIVE_S = 15.0


@dataclass(frozen=True)
class WebSettings:
    max_upload_mb: float = 500.0
    jobs: JobSettings = field(default_factory=JobSettings)
    allowed_hosts: frozenset[str] = frozenset(LOOPBACK_NAMES)  # Host names answered (see security.py)
    teach: TeachSettings = field(default_factory=TeachSettings)  # the Teach page's (with a work folder only)


def create_app(settings: WebSettings | None = None) -> Flask:
    """The Flask app with its own job runner (threads start now; stop them with close_app)."""
    settings = settings or WebSettings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(settings.max_upload_mb * 1024 * 1024)
    harden(app, settings.allowed_hosts)
    jobs = settings.jobs
    if jobs.work_dir is not None:  # models are versioned in the work folder; jobs follow the active one
        jobs = replace(jobs, models_dir=jobs.work_dir)
    app.extensions[RUNNER_KEY] = JobRunner(jobs)
    if jobs.work_dir is not None:
        add_teach(app, app.extensions[RUNNER_KEY], settings.teach)

    def runner() -> JobRunner:
        return app.extensions[RUNNER_KEY]

    def job_or_404(job_id: str) -> JobRecord:
        job = runner().get(job_id)
        if job is None:
            abort(404, description=f"no job {job_id!r} (unknown, or deleted after the retention time)")
        return job

    def job_media(job_id: str) -> EventsSource | None:
        job = runner().get(job_id)
        if job is None or job.status != "done":
            return None
        return EventsSource(runner().job_dir(job_id) / MEDIA_NAME, transient=True)

    # The episodes of a job's result, as the live view's events panel lists a run's (docs/media.md).
    register_events_api(app, job_media, prefix="/api/jobs/<job_id>/episodes", name="job_episodes")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        if exc.code == 413:
            limit = app.config["MAX_CONTENT_LENGTH"] / (1024 * 1024)
            return jsonify(error=f"the upload is larger than the server's limit of {limit:g} MB"), 413
        if request.path.startswith("/api/"):
            return jsonify(error=exc.description), exc.code or 500
        return exc

    @app.get("/")
    def index() -> ResponseReturnValue:
        return render_template("index.html", max_upload_mb=settings.max_upload_mb, teach=TEACH_KEY in app.extensions)

    @app.post("/api/jobs")
    def create_job() -> ResponseReturnValue:
        upload = request.files.get("video")
        if upload is None:
            return jsonify(error="no file in the multipart field 'video'"), 400
        job_id, input_path = runner().new_job(safe_suffix(upload.filename))
        try:
            upload.save(input_path)
            probe = probe_video(input_path)
            job = runner().enqueue(job_id, input_path, probe.frame_count, display_name(upload.filename))
        except UploadRejected as exc:
            runner().discard(job_id)
            return jsonify(error=str(exc)), exc.status
        except QueueFull as exc:
            runner().discard(job_id)
            return jsonify(error=str(exc)), 503
        except BaseException:
            runner().discard(job_id)
            raise
        return jsonify(id=job.id, **_links(job.id)), 201, {"Location": f"/api/jobs/{job.id}"}

    @app.get("/api/jobs/<job_id>")
    def job_status(job_id: str) -> ResponseReturnValue:
        job = job_or_404(job_id)
        return jsonify(**describe(job), **_links(job.id))

    @app.get("/api/jobs/<job_id>/events")
    def job_events(job_id: str) -> ResponseReturnValue:
        job_or_404(job_id)
        return Response(
            _sse_states(runner(), job_id),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def finished_files(job: JobRecord) -> tuple[Path, Path]:
        """The result video and the events log of a job that is done."""
        if not job.result_path or not job.events_path:
            abort(409, description=f"job {job.id} has no results")
        return runner().path(job.result_path), runner().path(job.events_path)

    @app.get("/api/jobs/<job_id>/result")
    def job_result(job_id: str) -> ResponseReturnValue:
        job = _finished_job(job_or_404(job_id))
        path, _ = finished_files(job)
        # conditional=True answers Range requests: browsers need them to seek in a <video>.
        return send_file(
            path,
            mimetype=result_mimetype(path),
            conditional=True,
            as_attachment=request.args.get("download") == "1",
            download_name=f"realtime-{job.id[:8]}-{path.name}",
        )

    @app.get("/api/jobs/<job_id>/events.jsonl")
    def job_event_log(job_id: str) -> ResponseReturnValue:
        job = _finished_job(job_or_404(job_id))
        return send_file(
            finished_files(job)[1],
            mimetype="application/x-ndjson",
            conditional=True,
            as_attachment=request.args.get("download") == "1",
            download_name=f"realtime-{job.id[:8]}-{EVENTS_NAME}",
        )

    @app.get("/api/jobs/<job_id>/timeline")
    def job_timeline(job_id: str) -> ResponseReturnValue:
        job = _finished_job(job_or_404(job_id))
        return jsonify(Timeline.from_events(runner().events_of(job)).to_dict())

    return app


def add_teach(app: Flask, runner: JobRunner, settings: TeachSettings) -> None:
    """The model registry (the configured weights its first version) and the Teach page, in the work folder."""
    from ..model_registry import ModelRegistry
    from ..teach.runner import TeachRunner
    from .teach_api import add_teach_routes

    assert runner.registry is not None
    registry = runner.registry
    if not registry.models():
        from ..classifier import load_checkpoint

        base = Path(runner.settings.weights) if runner.settings.weights else weights_path(runner.config)
        registry.ensure_base(base, load_checkpoint(base).labels)
    teacher = TeachRunner(registry.folder, ModelRegistry(registry.folder), settings)
    app.extensions[TEACH_KEY] = teacher
    add_teach_routes(app, teacher, teacher.registry)


def close_app(app: Flask) -> None:
    teacher = app.extensions.get(TEACH_KEY)
    if teacher is not None:
        teacher.close()
        teacher.registry.close()
    app.extensions[RUNNER_KEY].close()


def _links(job_id: str) -> dict:
    base = f"/api/jobs/{job_id}"
    return {
        "links": {
            "self": base,
            "events": f"{base}/events",
            "result": f"{base}/result",
            "events_log": f"{base}/events.jsonl",
            "timeline": f"{base}/timeline",
            "episodes": f"{base}/episodes",
        }
    }


def _finished_job(job: JobRecord) -> JobRecord:
    if job.status == "failed":
        abort(409, description=f"job {job.id} failed: {job.error}")
    if job.status != "done":
        abort(409, description=f"job {job.id} is {job.status}; wait for status done")
    return job


def _sse_states(runner: JobRunner, job_id: str) -> Iterator[str]:
    """Every state change as an SSE message, ending after the final one; comments keep proxies awake."""
    updates, inbox = runner.subscribe(job_id)
    try:
        yield "retry: 2000\n\n"
        while True:
            try:
                job = inbox.get(timeout=SSE_KEEPALIVE_S)
            except queue.Empty:
                if updates.closed:
                    return
                yield ": keep-alive\n\n"
                continue
            if job is None:  # deleted, or the server is stopping: the browser reconnects and asks again
                return
            yield f"data: {json.dumps(describe(job))}\n\n"
            if job.finished:
                return
    finally:
        updates.unsubscribe(inbox)


# --- command line ---


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m realtime serve", description="Web page and JSON API: upload a video, get it annotated."
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (repeatable); by default only localhost, loopback "
        "addresses and the --host address are answered, which stops DNS-rebinding attacks",
    )
    p.add_argument(
        "--config",
        help="the pipeline's YAML config, read and checked once at start (default: ./config.yaml, else the "
        "config.yaml beside the package, else the built-in defaults)",
    )
    p.add_argument("--weights", help="action classifier checkpoint (default: the config's)")
    p.add_argument("--max-upload-mb", type=float, default=500.0, help="largest accepted upload (default 500)")
    p.add_argument(
        "--retention",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="delete a finished job's files this long after it ended (default 3600)",
    )
    p.add_argument("--workers", type=int, default=1, help="jobs analysed at once (default 1; others queue)")
    p.add_argument("--max-queued", type=int, default=16, help="refuse uploads when this many jobs wait")
    p.add_argument("--max-frames", type=int, help="analyse at most this many frames of each upload")
    p.add_argument(
        "--work-dir",
        help="keep jobs here (a SQLite file and a folder per job), so they survive a "
        "restart; default: a temporary folder, made at the first upload and deleted "
        "when the server stops",
    )
    p.add_argument(
        "--video-codec",
        choices=CODECS,
        default="auto",
        help="result video: h264 (MP4, needs ffmpeg), vp8 (WebM, slower to write), auto (default: "
        "h264 when ffmpeg is found)",
    )
    p.add_argument(
        "--teach-data",
        action="append",
        default=[],
        metavar="KIND:PATH",
        help="with --work-dir: the data the Teach page trains on besides the taught clips (repeatable; default: "
        "the shipped model's, see weights/MODEL_CARD.md)",
    )
    return p


def settings_from(args: argparse.Namespace) -> WebSettings:
    for name in ("max_upload_mb", "retention", "workers", "max_queued"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name):g}")
    if args.max_frames is not None and args.max_frames <= 0:
        raise ConfigError(f"--max-frames must be positive, got {args.max_frames}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    # Paths the user typed are relative to where they typed them; jobs resolve nothing against the cwd.
    weights = str(Path(args.weights).resolve()) if args.weights else None
    if weights and not Path(weights).is_file():
        raise ConfigError(f"--weights {args.weights}: no such file — give the path of a classifier checkpoint")
    work_dir = str(Path(args.work_dir).resolve()) if args.work_dir else None
    jobs = JobSettings(
        config=server_config(args.config),
        weights=weights,
        workers=args.workers,
        max_queued=args.max_queued,
        retention_s=args.retention,
        max_frames=args.max_frames,
        work_dir=work_dir,
        video_codec=args.video_codec,
    )
    if args.teach_data and not work_dir:
        raise ConfigError("--teach-data needs --work-dir: taught clips and models are kept there")
    for text in args.teach_data:
        parse_data_arg(text)  # a typo fails now, not at the first training
    return WebSettings(
        max_upload_mb=args.max_upload_mb,
        jobs=jobs,
        allowed_hosts=allowed_host_names(args.host, args.allowed_host),
        teach=TeachSettings(data=tuple(args.teach_data)),
    )


def server_config(given: str | None) -> Config:
    """The config every job starts from: --config, else load_config's default file, read and checked now.

    A bad one is one line before serving, naming the file even when nobody named it on the command line.
    """
    path = Path(given).resolve() if given else default_config_path()
    try:
        return load_config(path)
    except ConfigError as exc:
        message = str(exc)
        if path is None or str(path) in message:  # already names its file
            raise
        fix = "fix it" if given else "fix it, or pass --config FILE to use another"
        raise ConfigError(f"config file {path}: {message.removeprefix('config: ')} — {fix}") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    logging.basicConfig(level=logging.INFO, format="realtime: %(message)s")
    # The port first: a busy one must fail before any job folder, store or thread exists.
    sock = bind(args.host, args.port, fix="stop the other server or choose another --port or --host")
    try:
        app = create_app(settings)
    except EncoderUnavailable as exc:
        sock.close()
        raise ConfigError(str(exc)) from None
    except BaseException:
        sock.close()
        raise
    server = serve(app, sock)
    if not _is_loopback(args.host):
        print(
            f"realtime: warning: listening on {args.host}: anyone who can reach it can upload videos", file=sys.stderr
        )
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"realtime: serving on http://{host}:{server.port}/ (Ctrl-C to stop)", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    serving = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    serving.start()
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        close_app(app)
    print("realtime: server stopped", flush=True)
    return 0
