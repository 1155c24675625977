"""The Teach page and its JSON API, added to the `serve` app when it has a work folder.

  GET    /teach                           the page
  GET    /api/teach/clips                 the taught clips
  POST   /api/teach/clips                 multipart: `video`, `action`, `subject`, optional `start_s`, `end_s`
  GET    /api/teach/clips/<id>/video      the clip as uploaded (for the page's player)
  DELETE /api/teach/clips/<id>
  POST   /api/teach/train                 JSON {mode: add|only_new, epochs, subset, name} -> 202 {"id": ...}
  GET    /api/teach/train/<id>            its state: status, phase, progress, error, model, metrics
  GET    /api/teach/train/<id>/events     Server-Sent Events, one state per message, until done/failed
  GET    /api/models                      every version, the active one marked
  POST   /api/models/<id>/activate        running pipelines that follow the registry switch to it
  POST   /api/models/rollback             back to the version active before
  GET    /api/models/<id>/figure.png      its scores on held-out people

Uploads follow the upload app's rules: the size limit, the decoding check, the Host and
Origin checks (security.py, installed on the whole app).
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from pathlib import Path

from flask import Flask, Response, abort, jsonify, make_response, render_template, request, send_file
from flask.typing import ResponseReturnValue

from ..datasets.labels import CLASS_NAME
from ..model_registry import MODELS_FOLDER, ModelRegistry, UnknownModel
from ..teach.runner import TeachRunner, TrainingBusy
from ..teach.store import ClipRecord
from ..teach.trainer import FIGURE_NAME, TeachRequest
from .security import CONTENT_SECURITY_POLICY
from .upload import UploadRejected, display_name, probe_video, safe_suffix

SSE_KEEPALIVE_S = 15.0
MAX_SUBJECT = 60
# A span shorter than one classifier window (1.24 s) gives no window to learn from.
MIN_SPAN_S = 1.3


def clip_fields(form: dict, duration_s: float | None) -> tuple[str, str, float | None, float | None]:
    """The action, subject and span of a clip upload, checked; raises UploadRejected (422)."""
    action = (form.get("action") or "").strip().upper()
    if not CLASS_NAME.match(action):
        raise UploadRejected(
            f"action {action!r}: name it with a letter, then letters, digits or _ (e.g. SQUAT, RAISE_HAND)", 422
        )
    subject = display_name(form.get("subject") or "", MAX_SUBJECT)
    if not subject:
        raise UploadRejected("say who is in the clip (subject): held-out people are how a model is judged", 422)
    start, end = form.get("start_s") or None, form.get("end_s") or None
    if start is None and end is None:
        return action, subject, None, None
    try:
        start_s = float(start) if start is not None else 0.0
        end_s = float(end) if end is not None else float(duration_s or 0.0)
    except ValueError:
        raise UploadRejected(f"span {start!r}..{end!r}: give start_s and end_s in seconds", 422) from None
    if duration_s:
        end_s = min(end_s, duration_s)
    if not 0 <= start_s < end_s or end_s - start_s < MIN_SPAN_S:
        raise UploadRejected(
            f"span {start_s:g}..{end_s:g} s: give a start before the end and at least {MIN_SPAN_S:g} s of the action",
            422,
        )
    return action, subject, round(start_s, 3), round(end_s, 3)


def add_teach_routes(app: Flask, teacher: TeachRunner, registry: ModelRegistry) -> None:
    root = teacher.root

    def clip_or_404(clip_id: str) -> ClipRecord:
        clip = teacher.store.clip(clip_id)
        if clip is None:
            abort(404, description=f"no clip {clip_id!r}")
        return clip

    @app.get("/teach")
    def teach_page() -> ResponseReturnValue:
        page = make_response(
            render_template("teach.html", max_upload_mb=app.config["MAX_CONTENT_LENGTH"] / (1024 * 1024))
        )
        # The page previews a chosen or recorded clip before it is uploaded: blob: URLs its own script made.
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "media-src 'self'", "media-src 'self' blob: mediastream:"
        )
        return page

    @app.get("/api/teach/clips")
    def list_clips() -> ResponseReturnValue:
        return jsonify(clips=[clip.describe() for clip in teacher.store.clips()])

    @app.post("/api/teach/clips")
    def add_clip() -> ResponseReturnValue:
        upload = request.files.get("video")
        if upload is None:
            return jsonify(error="no file in the multipart field 'video'"), 400
        clip_id, path = teacher.new_clip_path(safe_suffix(upload.filename) or ".mp4")
        try:
            upload.save(path)
            probe = probe_video(path)
            duration = probe.frame_count / probe.fps if probe.frame_count and probe.fps else None
            action, subject, start_s, end_s = clip_fields(request.form, duration)
            clip = teacher.add_clip(
                ClipRecord(
                    id=clip_id,
                    action=action,
                    subject=subject,
                    path=str(path.relative_to(root)),
                    created_at=time.time(),
                    start_s=start_s,
                    end_s=end_s,
                    duration_s=None if duration is None else round(duration, 3),
                    filename=display_name(upload.filename),
                )
            )
        except UploadRejected as exc:
            path.unlink(missing_ok=True)
            return jsonify(error=str(exc)), exc.status
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return jsonify(clip.describe()), 201

    @app.get("/api/teach/clips/<clip_id>/video")
    def clip_video(clip_id: str) -> ResponseReturnValue:
        clip = clip_or_404(clip_id)
        return send_file(root / clip.path, conditional=True)

    @app.delete("/api/teach/clips/<clip_id>")
    def delete_clip(clip_id: str) -> ResponseReturnValue:
        if not teacher.delete_clip(clip_id):
            abort(404, description=f"no clip {clip_id!r}")
        return "", 204

    @app.post("/api/teach/train")
    def train() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            return jsonify(error="send a JSON object: {mode, epochs, subset, name}"), 400
        try:
            teach_request = TeachRequest.from_json(body)
        except (TypeError, ValueError) as exc:
            return jsonify(error=str(exc)), 400
        try:
            training = teacher.start(teach_request)
        except TrainingBusy as exc:
            return jsonify(error=str(exc)), 409
        base = f"/api/teach/train/{training.id}"
        return jsonify(id=training.id, links={"self": base, "events": f"{base}/events"}), 202, {"Location": base}

    @app.get("/api/teach/train/<training_id>")
    def training_state(training_id: str) -> ResponseReturnValue:
        training = teacher.get(training_id)
        if training is None:
            abort(404, description=f"no training {training_id!r}")
        return jsonify(training.describe())

    @app.get("/api/teach/train/<training_id>/events")
    def training_events(training_id: str) -> ResponseReturnValue:
        if teacher.get(training_id) is None:
            abort(404, description=f"no training {training_id!r}")
        return Response(
            _sse(teacher, training_id),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/teach/trainings")
    def trainings() -> ResponseReturnValue:
        return jsonify(trainings=[t.describe() for t in teacher.store.trainings()])

    @app.get("/api/models")
    def models() -> ResponseReturnValue:
        return jsonify(models=[model.describe() for model in registry.models()])

    @app.post("/api/models/<int:model_id>/activate")
    def activate(model_id: int) -> ResponseReturnValue:
        try:
            return jsonify(registry.activate(model_id).describe())
        except UnknownModel:
            abort(404, description=f"no model {model_id}")

    @app.post("/api/models/rollback")
    def rollback() -> ResponseReturnValue:
        try:
            return jsonify(registry.rollback().describe())
        except UnknownModel as exc:
            return jsonify(error=str(exc.args[0])), 409

    @app.get("/api/models/<int:model_id>/figure.png")
    def figure(model_id: int) -> ResponseReturnValue:
        path = Path(root / MODELS_FOLDER / str(model_id) / FIGURE_NAME)
        if not path.is_file():
            abort(404, description=f"model {model_id} has no figure (the shipped model has none)")
        return send_file(path, mimetype="image/png", conditional=True)


def _sse(teacher: TeachRunner, training_id: str) -> Iterator[str]:
    updates, inbox = teacher.subscribe(training_id)
    try:
        yield "retry: 2000\n\n"
        while True:
            try:
                training = inbox.get(timeout=SSE_KEEPALIVE_S)
            except queue.Empty:
                if updates.closed:
                    return
                yield ": keep-alive\n\n"
                continue
            if training is None:
                return
            yield f"data: {json.dumps(training.describe())}\n\n"
            if training.finished:
                return
    finally:
        updates.unsubscribe(inbox)
