"""Versioned action models in a work folder: one SQLite row per model, one of them active.

`<folder>/models.sqlite3` holds each model's name, classes, created time, metrics (on
held-out people), the clips it was taught from and its checkpoint path (relative to the
folder, so the folder can move; absolute for the shipped weights, which live outside it).
Exactly one row is active; activating another, or rolling back to the one active before,
is one transaction. Running pipelines follow the active row (see model_follower.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import OutputError

REGISTRY_NAME = "models.sqlite3"
MODELS_FOLDER = "models"
BASE_NAME = "shipped"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    classes TEXT NOT NULL,                -- a JSON list, OTHER last
    created_at REAL NOT NULL,             -- wall-clock seconds
    metrics TEXT NOT NULL DEFAULT '{}',   -- JSON: per-class figures on held-out people, warnings
    clips TEXT NOT NULL DEFAULT '[]',     -- JSON list of the taught clips' ids
    checkpoint TEXT NOT NULL,             -- relative to the registry's folder, or absolute
    active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
    activated_at REAL                     -- when it last became active: what a rollback returns to
)
"""


@dataclass(frozen=True)
class ModelRecord:
    id: int
    name: str
    classes: tuple[str, ...]
    created_at: float
    checkpoint: str
    metrics: dict[str, Any] = field(default_factory=dict)
    clips: tuple[str, ...] = ()
    active: bool = False
    activated_at: float | None = None

    def describe(self) -> dict[str, Any]:
        """The API's view (no server paths)."""
        return {
            "id": self.id,
            "name": self.name,
            "classes": list(self.classes),
            "created": self.created_at,
            "metrics": self.metrics,
            "clips": list(self.clips),
            "active": self.active,
            "activated": self.activated_at,
        }


_COLUMNS = ("id", "name", "classes", "created_at", "checkpoint", "metrics", "clips", "active", "activated_at")


class UnknownModel(KeyError):
    pass


class ModelRegistry:
    """The models table of one folder. Thread-safe; several processes may read it (WAL)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).resolve()
        self.path = self.folder / REGISTRY_NAME
        self._lock = threading.Lock()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"it has schema version {version}, this version reads {SCHEMA_VERSION}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            with self._db:
                self._db.execute("BEGIN")
                self._db.execute(_SCHEMA)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as exc:
            raise OutputError(
                f"cannot use the model registry {self.path} ({exc}) — move the file away or choose another folder"
            ) from None

    def ensure_base(self, weights: str | Path, classes: tuple[str, ...]) -> ModelRecord:
        """The shipped (or configured) weights as the first version, active, when the table is empty."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if self._db.execute("SELECT COUNT(*) FROM models").fetchone()[0] == 0:
                now = time.time()
                self._db.execute(
                    "INSERT INTO models (name, classes, created_at, checkpoint, active, activated_at) "
                    "VALUES (?, ?, ?, ?, 1, ?)",
                    (BASE_NAME, json.dumps(list(classes)), now, str(Path(weights).resolve()), now),
                )
        base = self.models()[0]
        return base

    def add(
        self,
        name: str,
        classes: tuple[str, ...],
        checkpoint: str | Path,
        metrics: dict[str, Any],
        clips: tuple[str, ...] = (),
    ) -> ModelRecord:
        """A new, inactive version; `checkpoint` inside the folder is stored relative to it."""
        path = Path(checkpoint).resolve()
        stored = str(path.relative_to(self.folder)) if path.is_relative_to(self.folder) else str(path)
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO models (name, classes, created_at, checkpoint, metrics, clips) VALUES (?, ?, ?, ?, ?, ?)",
                (name, json.dumps(list(classes)), time.time(), stored, json.dumps(metrics), json.dumps(list(clips))),
            )
            return self._get(int(cursor.lastrowid or 0))

    def next_id(self) -> int:
        """The id the next added model will get (for naming its folder before it exists)."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'models'").fetchone()
            return (row[0] if row else 0) + 1

    def models(self) -> list[ModelRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM models ORDER BY id").fetchall()
        return [_record(row) for row in rows]

    def get(self, model_id: int) -> ModelRecord:
        with self._lock:
            return self._get(model_id)

    def active(self) -> ModelRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM models WHERE active = 1").fetchone()
        return _record(row) if row else None

    def activate(self, model_id: int) -> ModelRecord:
        """Make one version the active one (the others inactive), in one transaction."""
        with self._lock:
            self._get(model_id)  # raises UnknownModel
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("UPDATE models SET active = 0 WHERE active = 1")
                self._db.execute("UPDATE models SET active = 1, activated_at = ? WHERE id = ?", (time.time(), model_id))
            return self._get(model_id)

    def rollback(self) -> ModelRecord:
        """Activate the version that was active before the current one."""
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM models WHERE active = 0 AND activated_at IS NOT NULL ORDER BY activated_at DESC LIMIT 1"
            ).fetchone()
        if row is None:
            raise UnknownModel("no model was active before this one: nothing to roll back to")
        return self.activate(int(row[0]))

    def checkpoint_path(self, record: ModelRecord) -> Path:
        return self.folder / record.checkpoint  # an absolute checkpoint stays as it is

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _get(self, model_id: int) -> ModelRecord:
        row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM models WHERE id = ?", (model_id,)).fetchone()
        if row is None:
            raise UnknownModel(f"no model {model_id}")
        return _record(row)


def _record(row: tuple) -> ModelRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    return ModelRecord(
        id=int(values["id"]),
        name=values["name"],
        classes=tuple(json.loads(values["classes"])),
        created_at=float(values["created_at"]),
        checkpoint=values["checkpoint"],
        metrics=json.loads(values["metrics"]),
        clips=tuple(json.loads(values["clips"])),
        active=bool(values["active"]),
        activated_at=values["activated_at"],
    )
