"""The taught clips and the training runs, in one SQLite file of the work folder.

A clip row says where its video is (relative to the work folder), its action, its
subject (validation holds out whole people) and an optional span of the clip that holds
the action. A training row follows one run: queued, running (with a phase and progress),
done (with the model it made) or failed (with why). Like the jobs store (web/store.py),
every change is one short transaction in WAL mode, so a killed server loses nothing it
committed, and a run it was in the middle of is found as `running` at the next start.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import OutputError

STORE_NAME = "teach.sqlite3"
TRAINING_STATUSES = ("queued", "running", "done", "failed")

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS clips (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    path TEXT NOT NULL,            -- relative to the work folder
    start_s REAL,                  -- the span holding the action; NULL: the whole clip
    end_s REAL,
    duration_s REAL,
    filename TEXT,                 -- the name on the user's machine, for display only
    created_at REAL NOT NULL
)""",
    f"""
CREATE TABLE IF NOT EXISTS trainings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN {TRAINING_STATUSES!r}),
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    request TEXT NOT NULL DEFAULT '{{}}',  -- JSON: mode, epochs, name, subset
    phase TEXT,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    model_id INTEGER,
    metrics TEXT                           -- JSON, when done
)""",
)


@dataclass(frozen=True)
class ClipRecord:
    id: str
    action: str
    subject: str
    path: str
    created_at: float
    start_s: float | None = None
    end_s: float | None = None
    duration_s: float | None = None
    filename: str | None = None
    seq: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "subject": self.subject,
            "span": None if self.start_s is None else [self.start_s, self.end_s],
            "duration": self.duration_s,
            "filename": self.filename,
            "created": self.created_at,
        }


@dataclass(frozen=True)
class TrainingRecord:
    id: str
    status: str
    created_at: float
    request: dict
    started_at: float | None = None
    finished_at: float | None = None
    phase: str | None = None
    progress: float = 0.0
    error: str | None = None
    model_id: int | None = None
    metrics: dict | None = None
    seq: int = 0

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "phase": self.phase,
            "progress": round(self.progress, 1),
            "error": self.error,
            "model": self.model_id,
            "metrics": self.metrics,
            "request": self.request,
            "created": self.created_at,
            "started": self.started_at,
            "finished": self.finished_at,
        }


_CLIP_COLUMNS = tuple(f.name for f in fields(ClipRecord))
_TRAINING_COLUMNS = tuple(f.name for f in fields(TrainingRecord))


class TeachStore:
    """Clips and trainings. Thread-safe: one connection, one lock, short transactions."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            with self._db:
                self._db.execute("BEGIN")
                for statement in _SCHEMA:
                    self._db.execute(statement)
        except sqlite3.Error as exc:
            raise OutputError(
                f"cannot use the teach store {self.path} ({exc}) — move the file away or choose another --work-dir"
            ) from None

    # --- clips ---

    def add_clip(self, clip: ClipRecord) -> ClipRecord:
        values = {name: getattr(clip, name) for name in _CLIP_COLUMNS if name != "seq"}
        with self._lock:
            self._db.execute(
                f"INSERT INTO clips ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                tuple(values.values()),
            )
            return self._clip(clip.id)  # type: ignore[return-value]

    def clips(self) -> list[ClipRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_CLIP_COLUMNS)} FROM clips ORDER BY seq").fetchall()
        return [ClipRecord(**dict(zip(_CLIP_COLUMNS, row, strict=True))) for row in rows]

    def clip(self, clip_id: str) -> ClipRecord | None:
        with self._lock:
            return self._clip(clip_id)

    def delete_clip(self, clip_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM clips WHERE id = ?", (clip_id,))

    def _clip(self, clip_id: str) -> ClipRecord | None:
        row = self._db.execute(f"SELECT {', '.join(_CLIP_COLUMNS)} FROM clips WHERE id = ?", (clip_id,)).fetchone()
        return ClipRecord(**dict(zip(_CLIP_COLUMNS, row, strict=True))) if row else None

    # --- trainings ---

    def add_training(self, training_id: str, created_at: float, request: dict) -> TrainingRecord:
        with self._lock:
            self._db.execute(
                "INSERT INTO trainings (id, status, created_at, request) VALUES (?, 'queued', ?, ?)",
                (training_id, created_at, json.dumps(request)),
            )
            return self._training(training_id)  # type: ignore[return-value]

    def update_training(self, training_id: str, **changes: Any) -> TrainingRecord:
        unknown = set(changes) - set(_TRAINING_COLUMNS) | ({"id", "seq"} & set(changes))
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)}")
        for name in ("request", "metrics"):
            if name in changes and changes[name] is not None:
                changes[name] = json.dumps(changes[name])
        assignments = ", ".join(f"{name} = ?" for name in changes)
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE trainings SET {assignments} WHERE id = ?", (*changes.values(), training_id)
            )
            if cursor.rowcount != 1:
                raise KeyError(training_id)
            return self._training(training_id)  # type: ignore[return-value]

    def training(self, training_id: str) -> TrainingRecord | None:
        with self._lock:
            return self._training(training_id)

    def trainings(self, *statuses: str) -> list[TrainingRecord]:
        query = f"SELECT {', '.join(_TRAINING_COLUMNS)} FROM trainings"
        if statuses:
            query += f" WHERE status IN ({', '.join('?' * len(statuses))})"
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq", statuses).fetchall()
        return [_training_record(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _training(self, training_id: str) -> TrainingRecord | None:
        row = self._db.execute(
            f"SELECT {', '.join(_TRAINING_COLUMNS)} FROM trainings WHERE id = ?", (training_id,)
        ).fetchone()
        return _training_record(row) if row else None


def _training_record(row: tuple) -> TrainingRecord:
    values = dict(zip(_TRAINING_COLUMNS, row, strict=True))
    values["request"] = json.loads(values["request"])
    values["metrics"] = json.loads(values["metrics"]) if values["metrics"] else None
    return TrainingRecord(**values)
