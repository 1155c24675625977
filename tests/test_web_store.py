"""The web app's job store (a real SQLite file) and what a new server does with a dead one's jobs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from realtime.errors import OutputError
from realtime.web.jobs import (
    JOBS_FOLDER,
    LOCK_NAME,
    MAX_ATTEMPTS,
    RERUN_NOTICE,
    STORE_NAME,
    JobRunner,
    JobSettings,
    recover,
)
from realtime.web.store import JobStore


def test_jobs_survive_reopening_the_file_in_upload_order(tmp_path):
    path = tmp_path / STORE_NAME
    store = JobStore(path)
    for i, job_id in enumerate(("c" * 32, "a" * 32, "b" * 32)):
        store.add(job_id, f"jobs/{job_id}/input.avi", created_at=1000.0 + i, frame_count=89)
    store.update("a" * 32, status="running", started_at=1010.0, frames=40, fps=25.5, attempts=1, notices=("one", "two"))
    store.close()

    reopened = JobStore(path)
    assert [job.id for job in reopened.jobs()] == ["c" * 32, "a" * 32, "b" * 32]
    assert [job.id for job in reopened.jobs("queued")] == ["c" * 32, "b" * 32]
    job = reopened.get("a" * 32)
    assert (job.status, job.frames, job.fps, job.attempts, job.notices) == ("running", 40, 25.5, 1, ("one", "two"))
    assert job.progress == pytest.approx(100 * 40 / 89)
    assert reopened.count("queued") == 2
    reopened.delete("c" * 32)
    assert reopened.get("c" * 32) is None
    with pytest.raises(KeyError):
        reopened.update("c" * 32, status="done")
    with pytest.raises(sqlite3.IntegrityError):  # the schema refuses a status nobody handles
        reopened.update("a" * 32, status="paused")
    reopened.close()


def test_a_commit_survives_kill_9_of_the_writer(tmp_path):
    """The row written just before a SIGKILL is there for the next process (WAL, synchronous=NORMAL)."""
    path = tmp_path / STORE_NAME
    script = (
        "import os, signal, sys; from realtime.web.store import JobStore; s = JobStore(sys.argv[1]); "
        "s.add('f' * 32, 'jobs/x/input', 1.0); s.update('f' * 32, status='running', frames=7); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)], check=False, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert proc.returncode == -9
    job = JobStore(path).get("f" * 32)
    assert job is not None and (job.status, job.frames) == ("running", 7)


def test_a_foreign_or_corrupt_store_is_a_one_line_error(tmp_path):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutputError, match=r"cannot use the job store .* choose another --work-dir"):
        JobStore(junk)
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE jobs (x)")
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(OutputError, match="schema version 7"):
        JobStore(other)


# The jobs table as the first servers wrote it (schema version 1), before `filename` and `warning`.
VERSION_1_TABLE = """
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, frames INTEGER NOT NULL DEFAULT 0,
    frame_count INTEGER, fps REAL, input_path TEXT NOT NULL, result_path TEXT, events_path TEXT, error TEXT,
    notices TEXT NOT NULL DEFAULT '[]', attempts INTEGER NOT NULL DEFAULT 0
)
"""


def test_a_version_1_store_is_upgraded_in_place_and_keeps_its_jobs(tmp_path):
    path = tmp_path / STORE_NAME
    with sqlite3.connect(path) as db:
        db.execute(VERSION_1_TABLE)
        db.execute(
            "INSERT INTO jobs (id, status, created_at, input_path) VALUES (?, 'done', 1.0, 'jobs/x/input.avi')",
            ("d" * 32,),
        )
        db.execute("PRAGMA user_version = 1")
    store = JobStore(path)
    old = store.get("d" * 32)
    assert old is not None and (old.status, old.filename, old.warning) == ("done", None, None)
    store.add("e" * 32, "jobs/e/input.mp4", created_at=2.0, filename="clip.mp4")
    store.update("e" * 32, status="done", warning="cut short")
    store.close()
    reopened = JobStore(path)
    assert (reopened.get("e" * 32).filename, reopened.get("e" * 32).warning) == ("clip.mp4", "cut short")
    reopened.close()


def make_job(
    store: JobStore,
    root: Path,
    job_id: str,
    status: str,
    *,
    upload: bool = True,
    results: bool = False,
    finished_at: float | None = None,
    attempts: int = 0,
) -> None:
    folder = root / JOBS_FOLDER / job_id
    folder.mkdir(parents=True)
    if upload:
        (folder / "input.avi").write_bytes(b"video")
    store.add(job_id, f"{JOBS_FOLDER}/{job_id}/input.avi", created_at=time.time())
    changes: dict = {"status": status, "attempts": attempts}
    if results:
        (folder / "annotated.mp4").write_bytes(b"mp4")
        (folder / "events.jsonl").write_text("{}\n")
        changes.update(
            result_path=f"{JOBS_FOLDER}/{job_id}/annotated.mp4", events_path=f"{JOBS_FOLDER}/{job_id}/events.jsonl"
        )
    if finished_at is not None:
        changes["finished_at"] = finished_at
    store.update(job_id, **changes)


def test_recovery_reruns_interrupted_jobs_keeps_the_queue_and_results_and_sweeps_orphans(tmp_path):
    root, now = tmp_path, time.time()
    store = JobStore(root / STORE_NAME)
    ids = {name: name[0] * 32 for name in ("done", "expired", "running", "queued", "gone", "looping", "missing")}
    make_job(store, root, ids["done"], "done", results=True, finished_at=now - 10)
    make_job(store, root, ids["expired"], "done", results=True, finished_at=now - 7200)
    make_job(store, root, ids["running"], "running", attempts=1)
    make_job(store, root, ids["queued"], "queued")
    make_job(store, root, ids["gone"], "queued", upload=False)
    make_job(store, root, ids["looping"], "running", attempts=MAX_ATTEMPTS)
    make_job(store, root, ids["missing"], "done", finished_at=now - 10)  # its results were deleted by hand
    orphan = root / JOBS_FOLDER / ("0" * 32)
    orphan.mkdir()
    (orphan / "input.mp4").write_bytes(b"an upload cut short by a crash")
    (root / "mine.txt").write_text("the user's own file beside the store")

    recovery = recover(store, root, retention_s=3600, now=now)

    assert recovery.to_run == [ids["running"], ids["queued"]]  # upload order; the interrupted one first
    assert recovery.rerun == [ids["running"]]
    assert set(recovery.failed) == {ids["gone"], ids["looping"], ids["missing"]}
    assert recovery.expired == [ids["expired"]]
    assert recovery.orphans == ["0" * 32]
    assert store.get(ids["running"]).status == "queued" and RERUN_NOTICE in store.get(ids["running"]).notices
    assert "upload the video again" in store.get(ids["gone"]).error
    assert f"{MAX_ATTEMPTS} times" in store.get(ids["looping"]).error
    assert "deleted outside the server" in store.get(ids["missing"]).error
    assert store.get(ids["done"]).status == "done" and store.get(ids["expired"]) is None
    assert not orphan.exists() and not (root / JOBS_FOLDER / ids["expired"]).exists()
    assert (root / JOBS_FOLDER / ids["done"] / "annotated.mp4").is_file()
    assert (root / "mine.txt").is_file()  # only job folders are ever swept
    # Failed jobs are kept for the retention time too, so their error can be read.
    assert all(store.get(i).finished_at == now for i in recovery.failed)


def test_a_second_server_on_the_same_work_folder_is_refused(tmp_path):
    first = JobRunner(JobSettings(work_dir=str(tmp_path), video_codec="vp8"))
    try:
        with pytest.raises(OutputError, match="another server is using --work-dir"):
            JobRunner(JobSettings(work_dir=str(tmp_path), video_codec="vp8"))
    finally:
        first.close()
    JobRunner(JobSettings(work_dir=str(tmp_path), video_codec="vp8")).close()  # free again once closed
    names = {p.name for p in tmp_path.iterdir()}
    assert {LOCK_NAME, STORE_NAME} <= names <= {LOCK_NAME, STORE_NAME, f"{STORE_NAME}-wal", f"{STORE_NAME}-shm"}


def test_a_server_without_a_work_folder_makes_none_until_an_upload(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    runner = JobRunner(JobSettings(video_codec="vp8"))
    try:
        assert runner.root is None and list(tmp_path.iterdir()) == []
        job_id, input_path = runner.new_job(".avi")
        assert runner.root is not None and runner.root.parent == tmp_path
        assert input_path.parent.name == job_id
    finally:
        runner.close()
    assert list(tmp_path.iterdir()) == []  # the temporary folder goes with the server
