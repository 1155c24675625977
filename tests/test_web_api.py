"""The web app's JSON API through Flask's test client, running the real pipeline on real clips."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.web.app import RUNNER_KEY, WebSettings, close_app, create_app
from realtime.web.jobs import JobSettings

from conftest import REPO, read_frames

JOB_TIMEOUT_S = 120


def make_app(tmp_path: Path, **jobs):
    max_upload_mb = jobs.pop("max_upload_mb", 50.0)
    settings = WebSettings(max_upload_mb=max_upload_mb, jobs=JobSettings(work_dir=str(tmp_path), **jobs))
    return create_app(settings)


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    yield app
    close_app(app)


@pytest.fixture
def client(app):
    return app.test_client()


def upload(client, path: Path, filename: str | None = None):
    with open(path, "rb") as f:
        return client.post("/api/jobs", data={"video": (f, filename or path.name)},
                           content_type="multipart/form-data")


def wait_done(client, job_id: str) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        state = client.get(f"/api/jobs/{job_id}").get_json()
        if state["status"] in ("done", "failed"):
            return state
        time.sleep(0.1)
    pytest.fail(f"job {job_id} not finished after {JOB_TIMEOUT_S} s")


def sse_messages(client, url: str) -> list[dict]:
    response = client.get(url, buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    text = "".join(chunk.decode() if isinstance(chunk, bytes) else chunk for chunk in response.response)
    return [json.loads(line[len("data: "):]) for line in text.splitlines() if line.startswith("data: ")]


def job_dirs(app) -> list[Path]:
    return [p for p in app.extensions[RUNNER_KEY].root.iterdir()]


@pytest.mark.slow
def test_upload_is_analysed_with_progress_events_and_results(client, app, weizmann_clip):
    reply = upload(client, weizmann_clip)
    assert reply.status_code == 201, reply.get_json()
    job_id = reply.get_json()["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)

    messages = sse_messages(client, f"/api/jobs/{job_id}/events")
    statuses = [m["status"] for m in messages]
    progress = [m["progress"] for m in messages]
    assert statuses[-1] == "done", messages[-1]
    assert "running" in statuses
    assert progress == sorted(progress), "progress went backwards"
    assert progress[-1] == 100
    assert any(0 < p < 100 for p in progress), "no intermediate progress was streamed"
    assert any(m["fps"] > 0 for m in messages if m["status"] == "running")
    assert messages[-1]["frames"] == 89 and messages[-1]["frame_count"] == 89

    state = client.get(f"/api/jobs/{job_id}").get_json()
    assert state["status"] == "done" and state["progress"] == 100 and state["error"] is None

    result = client.get(f"/api/jobs/{job_id}/result")
    assert result.status_code == 200 and result.mimetype == "video/mp4"  # ffmpeg is here: H.264
    assert result.data[4:8] == b"ftyp"
    video_path = app.extensions[RUNNER_KEY].root / "check.mp4"
    video_path.write_bytes(result.data)
    assert codec_of(video_path) == "h264"
    annotated = read_frames(video_path)
    original = read_frames(weizmann_clip)
    assert len(annotated) == len(original) == 89
    assert annotated[0].shape == original[0].shape
    # The HUD line is drawn across the top of every frame; below it the picture is the clip's own.
    top_diff = np.abs(annotated[40][:14].astype(int) - original[40][:14].astype(int)).mean()
    assert top_diff > 20, f"no overlay found in the result (top strip differs by {top_diff:.1f})"
    job_dir = app.extensions[RUNNER_KEY].root / job_id
    assert not (job_dir / "annotated-mjpeg.avi").exists()  # the intermediate file is gone

    ranged = client.get(f"/api/jobs/{job_id}/result", headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.data) == 100  # browsers seek with ranges

    log = client.get(f"/api/jobs/{job_id}/events.jsonl")
    assert log.status_code == 200
    events = [json.loads(line) for line in log.data.decode().splitlines()]
    assert events[0]["type"] == "stream" and events[0]["status"] == "opened"
    assert str(app.extensions[RUNNER_KEY].root) not in log.data.decode()  # no server path leaks out
    summary = [e for e in events if e["type"] == "summary"][-1]
    assert summary["frames_out"] == 89 and summary["dropped"] == 0

    download = client.get(f"/api/jobs/{job_id}/events.jsonl?download=1")
    assert "attachment" in download.headers["Content-Disposition"]


def codec_of(path: Path) -> str:
    cap = cv2.VideoCapture(str(path))
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
    cap.release()
    return fourcc.to_bytes(4, "little").decode("ascii", "replace").strip("\x00").lower()


@pytest.mark.slow
def test_vp8_results_need_no_ffmpeg(tmp_path, weizmann_clip):
    app = make_app(tmp_path, video_codec="vp8", max_frames=20)
    client = app.test_client()
    try:
        job_id = upload(client, weizmann_clip).get_json()["id"]
        assert wait_done(client, job_id)["status"] == "done"
        result = client.get(f"/api/jobs/{job_id}/result")
        assert result.mimetype == "video/webm"
        assert result.data[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM/Matroska file
        path = tmp_path / "check.webm"
        path.write_bytes(result.data)
        assert codec_of(path) == "vp80"
        assert len(read_frames(path)) == 20
    finally:
        close_app(app)


@pytest.mark.slow
def test_jobs_run_one_at_a_time_in_upload_order(tmp_path, weizmann_clip):
    app = make_app(tmp_path, max_frames=30)
    client = app.test_client()
    try:
        ids = [upload(client, weizmann_clip).get_json()["id"] for _ in range(3)]
        seen: list[tuple[str, ...]] = []
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            statuses = tuple(client.get(f"/api/jobs/{i}").get_json()["status"] for i in ids)
            if not seen or seen[-1] != statuses:
                seen.append(statuses)
            if statuses == ("done",) * 3:
                break
            if statuses[2] == "queued":
                # A job still waiting has no result yet.
                assert client.get(f"/api/jobs/{ids[2]}/result").status_code == 409
            time.sleep(0.05)
        assert seen[-1] == ("done",) * 3, seen
        for statuses in seen:
            assert statuses.count("running") <= 1, seen
            # FIFO: a later job never starts before an earlier one has finished.
            order = ["done", "running", "queued"]
            ranks = [order.index(s) for s in statuses]
            assert ranks == sorted(ranks), seen
        assert ("done", "running", "queued") in seen
    finally:
        close_app(app)


def test_non_video_upload_is_refused_with_a_message(client, app, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_bytes(b"this is plain text, not a video\n" * 200)
    reply = upload(client, fake)
    assert reply.status_code in (400, 422)
    assert "not a video" in reply.get_json()["error"]
    assert job_dirs(app) == []  # nothing of the refused upload is left


def test_truncated_video_is_refused(client, app, tmp_path, weizmann_clip):
    cut = tmp_path / "cut.avi"
    cut.write_bytes(weizmann_clip.read_bytes()[:3000])  # the header survives, the frames do not
    reply = upload(client, cut)
    assert reply.status_code == 422
    assert reply.get_json()["error"]
    assert job_dirs(app) == []


def test_empty_and_missing_uploads_are_refused(client, tmp_path):
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    reply = upload(client, empty)
    assert reply.status_code == 400 and "empty" in reply.get_json()["error"]
    reply = client.post("/api/jobs", data={"other": "x"}, content_type="multipart/form-data")
    assert reply.status_code == 400 and "video" in reply.get_json()["error"]


def test_upload_over_the_size_limit_gets_413(tmp_path, weizmann_clip):
    app = make_app(tmp_path, max_upload_mb=0.05)  # 51 kB; the clip is larger
    try:
        assert weizmann_clip.stat().st_size > 0.05 * 1024 * 1024
        reply = upload(app.test_client(), weizmann_clip)
        assert reply.status_code == 413
        assert "limit" in reply.get_json()["error"]
        assert job_dirs(app) == []
    finally:
        close_app(app)


def test_client_file_name_never_reaches_the_filesystem(client, app, tmp_path, weizmann_clip):
    hostile = "../../../../" + str(tmp_path / "escaped.avi")
    reply = upload(client, weizmann_clip, filename=hostile)
    assert reply.status_code == 201
    job_id = reply.get_json()["id"]
    assert not (tmp_path / "escaped.avi").exists()
    (job_dir,) = job_dirs(app)
    assert job_dir.name == job_id
    assert (job_dir / "input.avi").is_file()  # the server's name, keeping only a known video suffix
    reply = upload(client, weizmann_clip, filename="clip.avi/../../x.sh")
    assert reply.status_code == 201
    second = app.extensions[RUNNER_KEY].root / reply.get_json()["id"]
    assert (second / "input").is_file()  # ".sh" is no video suffix: dropped
    for directory in job_dirs(app):
        assert {p.name for p in directory.iterdir()} <= {"input.avi", "input", "annotated-mjpeg.avi", "annotated.mp4",
                                                         "events.jsonl"}
    assert [p.name for p in tmp_path.iterdir()] == [app.extensions[RUNNER_KEY].root.name]


def test_unknown_jobs_are_404(client):
    for url in ("/api/jobs/0123456789abcdef0123456789abcdef", "/api/jobs/nope/events",
                "/api/jobs/..%2F..%2Fetc/result", "/api/jobs/x/events.jsonl"):
        reply = client.get(url)
        assert reply.status_code == 404, url
        assert "error" in reply.get_json()


@pytest.mark.slow
def test_finished_jobs_are_deleted_after_the_retention_time(tmp_path, weizmann_clip):
    app = make_app(tmp_path, retention_s=1.0, max_frames=5)
    client = app.test_client()
    try:
        job_id = upload(client, weizmann_clip).get_json()["id"]
        assert wait_done(client, job_id)["status"] == "done"
        job_dir = app.extensions[RUNNER_KEY].root / job_id
        assert app.extensions[RUNNER_KEY].get(job_id).result_path.is_file()
        deadline = time.monotonic() + 10
        while job_dir.exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # the janitor thread runs every half second here
        assert not job_dir.exists()
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
    finally:
        close_app(app)


def test_closing_the_app_removes_its_work_folder(tmp_path, weizmann_clip):
    app = make_app(tmp_path)
    root = app.extensions[RUNNER_KEY].root
    assert root.parent == tmp_path and root.is_dir()
    close_app(app)
    assert not root.exists()


def test_page_has_upload_form_and_progress(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'type="file"' in html and "<progress" in html and "<video" in html
    assert client.get("/static/app.js").status_code == 200


@pytest.mark.slow
def test_serve_command_binds_localhost_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "realtime", "serve", "--port", "0", "--work-dir", str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        with urllib.request.urlopen(match.group(1), timeout=10) as page:
            assert page.status == 200 and b"<progress" in page.read()
        assert len(list(tmp_path.iterdir())) == 1  # its work folder
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert list(tmp_path.iterdir()) == []  # removed on the way out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_command_rejects_bad_options_in_one_line():
    proc = subprocess.run([sys.executable, "-m", "realtime", "serve", "--port", "70000"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["realtime: error: --port must be 0..65535, got 70000"]


def test_h264_without_ffmpeg_is_a_one_line_error(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no ffmpeg anywhere on it
    proc = subprocess.run([sys.executable, "-m", "realtime", "serve", "--port", "0", "--video-codec", "h264"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("realtime: error: H.264 output needs an ffmpeg binary") and "--video-codec vp8" in line
