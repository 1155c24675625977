"""The media folder's events over HTTP, for the live view's events panel and other tools.

  GET /api/events?camera=&label=&after=&before=&limit=   newest first; after/before in wall-clock seconds
  GET /api/events/<id>                                  one event
  GET /api/events/<id>/snapshot.jpg                     its snapshot
  GET /api/events/<id>/clip.mp4                         its clip (H.264; range requests, so browsers seek)

The index is opened on first use with its own connection: it is read while the media writer writes.
The upload server gives each job's the same routes under `/api/jobs/<job_id>/episodes`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Response, jsonify, request, send_file
from flask.typing import ResponseReturnValue

from ..errors import OutputError
from ..media.index import INDEX_NAME, EventRow, MediaIndex

MAX_LIMIT = 1000


class EventsSource:
    """A media folder's index, opened when first asked for (the folder may not exist yet)."""

    def __init__(self, folder: Path | None, transient: bool = False) -> None:
        """`transient`: closed after each request (a job's folder, which its retention may delete)."""
        self.folder = Path(folder) if folder else None
        self.transient = transient
        self._index: MediaIndex | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def index(self) -> MediaIndex | None:
        with self._lock:
            if self._index is None and self.folder is not None and (self.folder / INDEX_NAME).is_file():
                try:
                    self._index = MediaIndex(self.folder)
                except OutputError:
                    return None
            return self._index

    def close(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None


def _number(name: str) -> float | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds since 1970 (UTC), got {value!r}") from None


def register_events_api(
    app: Flask,
    source: Callable[..., EventsSource | None],
    prefix: str = "/api/events",
    name: str = "events",
) -> None:
    """Add the routes to `app` under `prefix`; `source(**url_values)` gives the folder's events (None:
    none kept here), e.g. `source(job_id=...)` for a prefix with `<job_id>`."""

    def problem(text: str, status: int) -> Response:
        response = jsonify({"error": text})
        response.status_code = status
        return response

    def find(event_id: str, values: dict) -> tuple[EventRow | None, Path | None, Response | None]:
        events = source(**values)
        index = events.index() if events is not None else None
        if events is None or index is None or events.folder is None:
            return None, None, problem("no media is kept here — run with --media DIR", 404)
        try:
            row = index.get(event_id)
        except sqlite3.Error as exc:
            return None, None, problem(f"the media index cannot be read ({exc})", 503)
        finally:
            if events.transient:
                events.close()
        if row is None:
            return None, None, problem(f"no event {event_id!r}", 404)
        return row, events.folder, None

    def list_events(**values: str) -> ResponseReturnValue:
        events = source(**values)
        try:
            return listing(events)
        finally:
            if events is not None and events.transient:
                events.close()

    def listing(events: EventsSource | None) -> ResponseReturnValue:
        index = events.index() if events is not None else None
        if index is None:
            return jsonify({"events": [], "cameras": [], "labels": []})
        try:
            after, before = _number("after"), _number("before")
            limit = int(request.args.get("limit") or 100)
        except ValueError as exc:
            return problem(str(exc) if "seconds" in str(exc) else "limit must be a whole number", 400)
        if limit < 1:
            return problem(f"limit must be at least 1 (and at most {MAX_LIMIT}; more is cut to {MAX_LIMIT})", 400)
        limit = min(MAX_LIMIT, limit)
        try:
            rows = index.events(
                request.args.get("camera") or None, request.args.get("label") or None, after, before, limit
            )
            cameras, labels = index.cameras_and_labels()
        except sqlite3.Error as exc:
            return problem(f"the media index cannot be read ({exc})", 503)
        return jsonify({"events": [row.public() for row in rows], "cameras": cameras, "labels": labels})

    def one_event(event_id: str, **values: str) -> ResponseReturnValue:
        row, _, error = find(event_id, values)
        return error or jsonify(row.public() if row else {})

    def media_file(event_id: str, values: dict, column: str, mimetype: str) -> ResponseReturnValue:
        row, folder, error = find(event_id, values)
        if error is not None:
            return error
        assert row is not None and folder is not None
        name = getattr(row, column)
        path = (folder / name).resolve() if name else None
        if path is None or not path.is_file() or folder.resolve() not in path.parents:
            return problem(f"event {event_id} has no {column} (yet)", 404)
        return send_file(path, mimetype=mimetype, conditional=True, max_age=3600)

    def snapshot(event_id: str, **values: str) -> ResponseReturnValue:
        return media_file(event_id, values, "snapshot", "image/jpeg")

    def clip(event_id: str, **values: str) -> ResponseReturnValue:
        return media_file(event_id, values, "clip", "video/mp4")

    app.add_url_rule(prefix, f"{name}_list", list_events, methods=["GET"])
    app.add_url_rule(f"{prefix}/<event_id>", f"{name}_one", one_event, methods=["GET"])
    app.add_url_rule(f"{prefix}/<event_id>/snapshot.jpg", f"{name}_snapshot", snapshot, methods=["GET"])
    app.add_url_rule(f"{prefix}/<event_id>/clip.mp4", f"{name}_clip", clip, methods=["GET"])
