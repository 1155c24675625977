"""The media folder's index: one SQLite table of events, and retention.

One row per episode, written when it starts and completed as its files are written. Paths are
relative to the media folder (so the folder can move, or be shared by a cluster's machines).
A file is listed only once it is whole; `bytes` is what the event's files take, for `max_gb`.
WAL mode as the web job store: a killed process loses nothing committed, readers never wait.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import OutputError

INDEX_NAME = "index.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    track INTEGER NOT NULL,
    label TEXT NOT NULL,
    start_time REAL NOT NULL,    -- wall-clock seconds (time.time()); retention and listing go by it
    end_time REAL,               -- NULL while the episode goes on
    t_start REAL NOT NULL,       -- seconds since the camera's first frame, as the events' t
    t_end REAL,
    best_score REAL NOT NULL,
    box TEXT,                    -- JSON [x1, y1, x2, y2] of the person on the snapshot's frame
    snapshot TEXT,               -- relative to the media folder; NULL until one is written whole
    clip TEXT,
    clip_t_start REAL,           -- the seconds the clip spans, on the same clock
    clip_t_end REAL,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (start_time);
"""


@dataclass(frozen=True)
class EventRow:
    id: str
    camera: str
    track: int
    label: str
    start_time: float
    end_time: float | None
    t_start: float
    t_end: float | None
    best_score: float
    box: str | None
    snapshot: str | None
    clip: str | None
    clip_t_start: float | None
    clip_t_end: float | None
    bytes: int

    def public(self) -> dict[str, Any]:
        """As the JSON API gives it."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["box"] = json.loads(self.box) if self.box else None
        out["duration_s"] = None if self.t_end is None else round(self.t_end - self.t_start, 3)
        return out


_COLUMNS = tuple(f.name for f in fields(EventRow))


class MediaIndex:
    """The events table. Thread-safe: one connection, one lock, short statements."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / INDEX_NAME
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"it has schema version {version}, this program writes {SCHEMA_VERSION}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            if version == 0:  # only a new index is written to here: a full disk must not stop a restart
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise OutputError(
                f"cannot use the media index {self.path} ({exc}) — move the file away or choose another --media folder"
            ) from None

    # --- writing (the media writer's thread) ---

    def add(self, row: dict[str, Any]) -> None:
        names = ", ".join(row)
        with self._lock:
            self._db.execute(f"INSERT INTO events ({names}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))

    def update(self, event_id: str, **changes: Any) -> None:
        unknown = set(changes) - set(_COLUMNS) | ({"id"} & set(changes))
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in changes)
        with self._lock:
            self._db.execute(f"UPDATE events SET {assignments} WHERE id = ?", (*changes.values(), event_id))

    def delete(self, event_id: str) -> None:
        """The row and the files it lists."""
        row = self.get(event_id)
        if row is None:
            return
        for name in (row.snapshot, row.clip):
            if name:
                (self.folder / name).unlink(missing_ok=True)
        with self._lock:
            self._db.execute("DELETE FROM events WHERE id = ?", (event_id,))

    # --- reading (any thread) ---

    def get(self, event_id: str) -> EventRow | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM events WHERE id = ?", (event_id,)).fetchone()
        return EventRow(*row) if row else None

    def events(
        self,
        camera: str | None = None,
        label: str | None = None,
        after: float | None = None,
        before: float | None = None,
        limit: int = 100,
        oldest_first: bool = False,
    ) -> list[EventRow]:
        """Events newest first (by start time), filtered; `after`/`before` are wall-clock seconds."""
        where: list[str] = []
        args: list[Any] = []
        for clause, value in (
            ("camera = ?", camera),
            ("label = ?", label),
            ("start_time > ?", after),
            ("start_time < ?", before),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        query = f"SELECT {', '.join(_COLUMNS)} FROM events"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += f" ORDER BY start_time {'ASC' if oldest_first else 'DESC'} LIMIT ?"
        with self._lock:
            return [EventRow(*row) for row in self._db.execute(query, (*args, limit))]

    def cameras_and_labels(self) -> tuple[list[str], list[str]]:
        with self._lock:
            cameras = [r[0] for r in self._db.execute("SELECT DISTINCT camera FROM events ORDER BY camera")]
            labels = [r[0] for r in self._db.execute("SELECT DISTINCT label FROM events ORDER BY label")]
        return cameras, labels

    def total_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM events").fetchone()[0])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # --- upkeep ---

    def enforce_retention(self, retain_days: float, max_bytes: float, now: float | None = None) -> list[str]:
        """Delete the oldest events: those started more than `retain_days` ago, then more until the
        events' files take at most `max_bytes` (0 = no limit on either). Open episodes are kept."""
        now = time.time() if now is None else now
        deleted: list[str] = []
        if retain_days > 0:
            for row in self.events(before=now - retain_days * 86400, limit=1_000_000, oldest_first=True):
                if row.end_time is not None:
                    self.delete(row.id)
                    deleted.append(row.id)
        if max_bytes > 0:
            total = self.total_bytes()
            for row in self.events(limit=1_000_000, oldest_first=True):
                if total <= max_bytes:
                    break
                if row.end_time is None:
                    continue
                self.delete(row.id)
                deleted.append(row.id)
                total -= row.bytes
        return deleted

    def recover(self, now: float | None = None) -> tuple[int, int]:
        """At start-up: episodes a killed run left open are ended, listed files that are gone are
        unlisted, and media files no event owns are removed. Returns (events kept, files removed)."""
        now = time.time() if now is None else now
        owned: set[str] = set()
        for row in self.events(limit=1_000_000):
            changes: dict[str, Any] = {}
            if row.end_time is None:
                changes["end_time"] = now
            for column in ("snapshot", "clip"):
                name = getattr(row, column)
                if name and not (self.folder / name).is_file():
                    changes[column] = None
                elif name:
                    owned.add(name)
            if changes:
                self.update(row.id, **changes)
        removed = 0
        for path in self.folder.rglob("*"):
            if not path.is_file() or path.suffix not in (".jpg", ".mp4", ".part"):
                continue
            if path.relative_to(self.folder).as_posix() not in owned:
                path.unlink(missing_ok=True)
                removed += 1
        return self.count(), removed

    def close(self) -> None:
        with self._lock:
            self._db.close()
