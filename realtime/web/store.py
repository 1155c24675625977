"""The web app's jobs, kept in one SQLite file so that they outlive the server process.

One row per job: its status, progress, times, the paths of its upload and results
(relative to the work folder, so the folder can move) and its error. Every change is
one short transaction; the file is in WAL mode, so a `kill -9` loses nothing that was
committed, and readers never wait for the writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import OutputError

STATUSES = ("queued", "running", "done", "failed")
TERMINAL = ("done", "failed")
SCHEMA_VERSION = 2
# Columns added since version 1, each nullable, so an older store is brought up to date in place.
_ADDED = {2: ("filename TEXT", "warning TEXT")}

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- upload order: queued jobs run in this order
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN {STATUSES!r}),
    created_at REAL NOT NULL,               -- wall-clock seconds (time.time()): they survive restarts
    started_at REAL,
    finished_at REAL,
    frames INTEGER NOT NULL DEFAULT 0,
    frame_count INTEGER,
    fps REAL,
    input_path TEXT NOT NULL,
    result_path TEXT,
    events_path TEXT,
    error TEXT,
    notices TEXT NOT NULL DEFAULT '[]',     -- a JSON list of strings
    attempts INTEGER NOT NULL DEFAULT 0,    -- runs started; a job that kills the server is not re-run forever
    filename TEXT,                          -- the upload's name on the user's machine, for messages only
    warning TEXT                            -- a job done with only part of its video (a damaged file): why
)
"""


@dataclass(frozen=True)
class JobRecord:
    """One row of the store; the runner replaces it whole, readers never see half an update."""

    id: str
    status: str
    created_at: float
    input_path: str
    seq: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    frames: int = 0
    frame_count: int | None = None
    fps: float | None = None  # None until enough frames were timed for a meaningful rate
    result_path: str | None = None
    events_path: str | None = None
    error: str | None = None
    notices: tuple[str, ...] = ()
    attempts: int = 0
    filename: str | None = None
    warning: str | None = None  # set on a job that is done but could analyse only part of its video

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def progress(self) -> float:
        if self.status == "done":
            return 100.0
        if not self.frame_count:
            return 0.0
        # Frame counts from containers are estimates: never claim 100 before the end.
        return min(99.0, 100.0 * self.frames / self.frame_count)


_COLUMNS = tuple(f.name for f in fields(JobRecord))


class JobStore:
    """The jobs table. Thread-safe: one connection, one lock, short transactions."""

    def __init__(self, path: str | Path) -> None:
        """`path` is the SQLite file (made if missing), or ":memory:" for jobs that die with the process."""
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            # Autocommit mode: each statement commits on its own, `with self._db` groups several.
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._prepare()
        except sqlite3.Error as exc:
            raise OutputError(
                f"cannot use the job store {self.path} ({exc}) — move the file away or choose another --work-dir"
            ) from None

    def _prepare(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        has_table = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone() is not None
        if has_table and not 1 <= version <= SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"it has schema version {version}, this server writes {SCHEMA_VERSION}")
        if self.path != ":memory:":
            # WAL: a crash never leaves a half-written row, and status reads do not block the writer.
            # NORMAL sync is durable against a killed process; only a power cut can lose the last commits.
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        with self._db:  # an upgrade is all done or not at all
            self._db.execute("BEGIN")
            self._db.execute(_SCHEMA)
            for added in range(version + 1, SCHEMA_VERSION + 1) if has_table else ():
                for column in _ADDED[added]:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column}")
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def add(
        self,
        job_id: str,
        input_path: str,
        created_at: float,
        frame_count: int | None = None,
        filename: str | None = None,
    ) -> JobRecord:
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, status, created_at, input_path, frame_count, filename) "
                "VALUES (?, 'queued', ?, ?, ?, ?)",
                (job_id, created_at, input_path, frame_count, filename),
            )
            return self._get(job_id)  # type: ignore[return-value]

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._get(job_id)

    def update(self, job_id: str, **changes: Any) -> JobRecord:
        """Set some columns of one job; the whole new row."""
        unknown = set(changes) - set(_COLUMNS) | ({"id", "seq"} & set(changes))
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)}")
        if "notices" in changes:
            changes["notices"] = json.dumps(list(changes["notices"]))
        assignments = ", ".join(f"{name} = ?" for name in changes)
        with self._lock:
            cursor = self._db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*changes.values(), job_id))
            if cursor.rowcount != 1:
                raise KeyError(job_id)
            return self._get(job_id)  # type: ignore[return-value]

    def jobs(self, *statuses: str) -> list[JobRecord]:
        """Jobs in upload order, all of them or those with one of `statuses`."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM jobs"
        if statuses:
            query += f" WHERE status IN ({', '.join('?' * len(statuses))})"
        with self._lock:
            return [_record(row) for row in self._db.execute(query + " ORDER BY seq", statuses)]

    def count(self, status: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0]

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _get(self, job_id: str) -> JobRecord | None:
        row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row) if row else None


def _record(row: tuple) -> JobRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["notices"] = tuple(json.loads(values["notices"]))
    return JobRecord(**values)
