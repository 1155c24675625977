"""The web app's JSON API through Flask's test client, running the real pipeline on real clips.

Tests marked slow run jobs through the real pipeline; the others need none.
"""

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

from conftest import REPO, count_frames, poll_until_finished, read_frames, run_cli
from realtime.types import FrameRecord
from realtime.web.app import RUNNER_KEY, WebSettings, build_parser, close_app, create_app, settings_from
from realtime.web.jobs import (
    JOBS_FOLDER,
    RERUN_NOTICE,
    STOPPING_NOTICE,
    STORE_NAME,
    JobRunner,
    JobSettings,
    ProgressSink,
)
from realtime.web.store import JobStore

JOB_TIMEOUT_S = 120
# The Teach page's stores and its clips' folder (docs/teach.md), made with a work folder.
TEACH_FILES = {f"{name}{suffix}" for name in ("models.sqlite3", "teach.sqlite3") for suffix in ("", "-wal", "-shm")} | {
    "taught"
}


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
        return client.post("/api/jobs", data={"video": (f, filename or path.name)}, content_type="multipart/form-data")


def wait_done(client, job_id: str) -> dict:
    return poll_until_finished(client, f"/api/jobs/{job_id}", JOB_TIMEOUT_S, 0.1)


def sse_messages(client, url: str) -> list[dict]:
    response = client.get(url, buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    text = "".join(chunk.decode() if isinstance(chunk, bytes) else chunk for chunk in response.response)
    return [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]


def job_dirs(app) -> list[Path]:
    root = app.extensions[RUNNER_KEY].root
    folder = root / JOBS_FOLDER if root else None
    return sorted(folder.iterdir()) if folder and folder.is_dir() else []


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
    assert messages[-1]["fps"] > 0
    assert messages[-1]["frames"] == 89 and messages[-1]["frame_count"] == 89

    state = client.get(f"/api/jobs/{job_id}").get_json()
    assert state["status"] == "done" and state["progress"] == 100 and state["error"] is None
    assert state["created"] <= state["started"] <= state["finished"]

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
    # Skeleton and box drawn, no HUD (a result is not a live run): the top strip is the clip's own.
    change = np.abs(annotated[40].astype(int) - original[40].astype(int)).max(axis=2)
    assert (change > 100).sum() > 100, "no skeleton or box found in the result"
    assert change[:14].mean() < 8, f"a HUD in the result (top strip differs by {change[:14].mean():.1f})"
    job_dir = app.extensions[RUNNER_KEY].root / JOBS_FOLDER / job_id
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

    timeline = client.get(f"/api/jobs/{job_id}/timeline").get_json()
    labelled = sorted({e["track"] for e in events if e["type"] == "action"})
    assert [row["track"] for row in timeline["rows"]] == labelled and labelled, timeline
    assert timeline["duration"] == pytest.approx(89 / 25, abs=0.05)  # the clip's own length
    assert "JUMPING_JACKS" in timeline["colours"]  # daria_jack: the action is recognised


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


def test_a_still_image_named_like_a_video_is_refused(client, app, tmp_path, weizmann_clip):
    (frame,) = read_frames(weizmann_clip, limit=1)
    still = tmp_path / "frame.png"
    assert cv2.imwrite(str(still), frame)
    renamed = tmp_path / "holiday.mp4"
    renamed.write_bytes(still.read_bytes())
    reply = upload(client, renamed)
    assert reply.status_code == 422
    error = reply.get_json()["error"]
    assert "still image" in error and "not a video" in error
    assert job_dirs(app) == []


def test_truncated_video_is_refused(client, app, tmp_path, weizmann_clip):
    cut = tmp_path / "cut.avi"
    cut.write_bytes(weizmann_clip.read_bytes()[:3000])  # the header survives, the frames do not
    reply = upload(client, cut)
    assert reply.status_code == 422
    assert reply.get_json()["error"]
    assert job_dirs(app) == []


@pytest.mark.slow
def test_a_truncated_upload_is_done_with_its_good_frames_and_a_warning(client, app, tmp_path, exercise_clip):
    cut = tmp_path / "cut.avi"
    cut.write_bytes(exercise_clip.read_bytes()[:200_000])  # 39 of its 393 frames survive
    reply = upload(client, cut, filename="my holiday.avi")
    assert reply.status_code == 201, reply.get_json()
    job_id = reply.get_json()["id"]

    messages = sse_messages(client, f"/api/jobs/{job_id}/events")  # returns only once the stream ends
    last = messages[-1]
    assert (last["status"], last["progress"], last["error"]) == ("done", 100, None), last
    frames = last["frames"]
    assert 0 < frames < last["frame_count"]
    assert last["warning"] == (
        f"video my holiday.avi ended at frame {frames} of {last['frame_count']} — the file is truncated or "
        "corrupt; frames before the damage were processed"
    )
    assert client.get(f"/api/jobs/{job_id}").get_json()["warning"] == last["warning"]
    assert str(app.extensions[RUNNER_KEY].root) not in json.dumps(messages)  # the user's name, not the server's path

    result = client.get(f"/api/jobs/{job_id}/result")
    assert result.status_code == 200 and result.mimetype == "video/mp4"
    video = tmp_path / "result.mp4"
    video.write_bytes(result.data)
    assert codec_of(video) == "h264" and count_frames(video) == frames  # finalized, every good frame in it
    events = [json.loads(line) for line in client.get(f"/api/jobs/{job_id}/events.jsonl").data.splitlines()]
    assert events[-1]["type"] == "summary" and events[-1]["frames_out"] == frames
    timeline = client.get(f"/api/jobs/{job_id}/timeline")
    assert timeline.status_code == 200 and timeline.get_json()["duration"] > 0


def test_serve_checks_the_config_in_the_working_folder_before_serving(tmp_path):
    (tmp_path / "config.yaml").write_text("pose:\n  skipp: 1\n")  # found by default: nobody named it
    proc = run_cli("serve", "--port", "0", cwd=tmp_path, env={"PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.returncode == 2 and "serving" not in proc.stdout
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"realtime: error: config file {tmp_path / 'config.yaml'}: unknown key 'pose.skipp'")
    assert "--config FILE" in line


def test_jobs_use_the_config_read_at_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("pose:\n  skip: 3\n")
    settings = settings_from(build_parser().parse_args([]))
    (tmp_path / "config.yaml").write_text("pose:\n  skipp: 1\n")  # a later edit changes no job
    runner = JobRunner(settings.jobs)
    try:
        assert runner.config.pose.skip == 3
    finally:
        runner.close()


def test_empty_and_missing_uploads_are_refused(client, tmp_path):
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    reply = upload(client, empty)
    assert reply.status_code == 400 and "empty (0 bytes)" in reply.get_json()["error"]  # as the CLI says
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
    assert job_dir.name == job_id and job_dir.parent.parent == tmp_path
    assert (job_dir / "input.avi").is_file()  # the server's name, keeping only a known video suffix
    reply = upload(client, weizmann_clip, filename="clip.avi/../../x.sh")
    assert reply.status_code == 201
    second = app.extensions[RUNNER_KEY].job_dir(reply.get_json()["id"])
    assert (second / "input").is_file()  # ".sh" is no video suffix: dropped
    for directory in job_dirs(app):
        assert {p.name for p in directory.iterdir()} <= {
            "input.avi",
            "input",
            "annotated-mjpeg.avi",
            "annotated.mp4",
            "events.jsonl",
        }
    assert {p.name for p in tmp_path.iterdir()} <= {
        JOBS_FOLDER,
        STORE_NAME,
        f"{STORE_NAME}-wal",
        f"{STORE_NAME}-shm",
        "server.lock",
        *TEACH_FILES,
    }


def test_unknown_jobs_are_404(client):
    for url in (
        "/api/jobs/0123456789abcdef0123456789abcdef",
        "/api/jobs/nope/events",
        "/api/jobs/..%2F..%2Fetc/result",
        "/api/jobs/x/events.jsonl",
    ):
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
        runner = app.extensions[RUNNER_KEY]
        job_dir = runner.root / JOBS_FOLDER / job_id
        assert runner.path(runner.get(job_id).result_path).is_file()
        deadline = time.monotonic() + 10
        while job_dir.exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # the janitor thread runs every half second here
        assert not job_dir.exists()
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
    finally:
        close_app(app)


def test_a_work_folder_keeps_the_store_and_nothing_else_before_an_upload(tmp_path):
    app = make_app(tmp_path)
    close_app(app)
    assert {p.name for p in tmp_path.iterdir()} <= {
        STORE_NAME,
        f"{STORE_NAME}-wal",
        f"{STORE_NAME}-shm",
        "server.lock",
        *TEACH_FILES,
    }
    assert STORE_NAME in {p.name for p in tmp_path.iterdir()}


def test_page_has_upload_form_and_progress(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'type="file"' in html and "<progress" in html and "<video" in html
    assert client.get("/static/app.js").status_code == 200


@pytest.mark.slow
def test_serve_command_binds_localhost_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime", "serve", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        with urllib.request.urlopen(match.group(1), timeout=10) as page:
            assert page.status == 200 and b"<progress" in page.read()
        assert list(tmp_path.iterdir()) == []  # no temporary folder until a job needs one
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert list(tmp_path.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_command_rejects_bad_options_in_one_line():
    proc = run_cli("serve", "--port", "70000", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["realtime: error: --port must be 0..65535, got 70000"]


def test_h264_without_ffmpeg_is_a_one_line_error(tmp_path):
    no_ffmpeg = {"PATH": str(tmp_path)}  # no ffmpeg anywhere on it
    proc = run_cli("serve", "--port", "0", "--video-codec", "h264", env=no_ffmpeg, timeout=60)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("realtime: error: H.264 output needs an ffmpeg binary") and "--video-codec vp8" in line


def test_progress_shows_no_rate_until_a_second_of_frames_was_timed(tmp_path):
    """Two frames 3 ms apart are no measure of speed: the stream said `fps 640.8` for them."""
    runner = JobRunner(JobSettings(work_dir=str(tmp_path), video_codec="vp8"))
    try:
        runner.store.add("a" * 32, "jobs/x/input.avi", created_at=time.time(), frame_count=100)  # never queued
        now = [100.0]
        sink = ProgressSink(runner, "a" * 32, interval_s=0.0, clock=lambda: now[0])
        record = FrameRecord("cam0", 0, 0.0, np.zeros((8, 8, 3), np.uint8))
        reported = []
        for t in (100.0, 100.003, 100.5, 101.0, 102.0):
            now[0] = t
            sink.write(record)
            job = runner.get("a" * 32)
            reported.append((job.frames, job.fps))
        assert reported[:3] == [(1, None), (2, None), (3, None)]
        assert reported[3][1] == pytest.approx(3.0) and reported[4][1] == pytest.approx(2.0)
    finally:
        runner.close()


def start_server(work: Path, *args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime", "serve", "--port", "0", "--work-dir", str(work), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    match = re.search(r"serving on (http://127\.0\.0\.1:\d+)/", line)
    if not match:
        proc.kill()
        pytest.fail("server did not start: " + line + proc.stderr.read())
    return proc, match.group(1)


def api(base: str, path: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(base + path, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post_video(base: str, path: Path) -> str:
    boundary = "realtime-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="{path.name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, reply = api(base, "/api/jobs", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 201, reply
    return json.loads(reply)["id"]


def job_state(base: str, job_id: str) -> dict:
    status, reply = api(base, f"/api/jobs/{job_id}")
    assert status == 200, reply
    return json.loads(reply)


def wait_for_state(base: str, job_id: str, ready, what: str, timeout: float = JOB_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = job_state(base, job_id)
        if ready(state):
            return state
        time.sleep(0.1)
    pytest.fail(f"job {job_id}: {what} did not happen within {timeout:g} s (last: {state})")


@pytest.mark.slow
def test_jobs_outlive_a_killed_server(tmp_path, weizmann_clip, exercise_clip):
    """kill -9 mid-job, restart on the same work folder: nothing is lost, nothing is left over."""
    work = tmp_path / "work"
    proc, base = start_server(work, "--max-frames", "150")
    try:
        finished = post_video(base, weizmann_clip)
        assert (
            wait_for_state(base, finished, lambda s: s["status"] in ("done", "failed"), "the first job")["status"]
            == "done"
        )
        interrupted = post_video(base, exercise_clip)
        queued = post_video(base, weizmann_clip)
        wait_for_state(base, interrupted, lambda s: s["status"] == "running" and s["frames"] > 0, "frames analysed")
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert job_state_in_store(work, interrupted) == "running" and job_state_in_store(work, queued) == "queued"
    orphan = work / JOBS_FOLDER / ("0" * 32)  # what an upload cut short by the kill leaves behind
    orphan.mkdir()
    (orphan / "input.avi").write_bytes(weizmann_clip.read_bytes()[:5000])

    proc, base = start_server(work, "--max-frames", "150")
    try:
        status, video = api(base, f"/api/jobs/{finished}/result")
        assert status == 200 and video[4:8] == b"ftyp"  # the finished result is still served
        assert not orphan.exists()  # swept at start
        second = wait_for_state(base, interrupted, lambda s: s["status"] in ("done", "failed"), "the re-run")
        assert second["status"] == "done", second
        assert RERUN_NOTICE in second["notices"] and second["frames"] == 150
        third = wait_for_state(base, queued, lambda s: s["status"] in ("done", "failed"), "the queued job")
        assert third["status"] == "done" and third["started"] >= second["finished"]  # still in upload order
        events = [json.loads(line) for line in api(base, f"/api/jobs/{interrupted}/events.jsonl")[1].splitlines()]
        assert next(e["status"] for e in events if e["type"] == "stream") == "opened"
        assert sum(e["type"] == "summary" for e in events) == 1  # one run's log, not two glued together
        assert sorted(p.name for p in (work / JOBS_FOLDER).iterdir()) == sorted([finished, interrupted, queued])
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def job_state_in_store(work: Path, job_id: str) -> str:
    store = JobStore(work / STORE_NAME)
    try:
        return store.get(job_id).status
    finally:
        store.close()


@pytest.mark.slow
def test_sigterm_stops_the_running_job_and_keeps_the_queue_for_the_next_start(tmp_path, weizmann_clip, exercise_clip):
    work = tmp_path / "work"
    proc, base = start_server(work, "--max-frames", "150")
    try:
        running = post_video(base, exercise_clip)
        waiting = post_video(base, weizmann_clip)
        wait_for_state(base, running, lambda s: s["status"] == "running" and s["frames"] > 0, "frames analysed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    store = JobStore(work / STORE_NAME)
    try:
        stopped = store.get(running)
        assert (stopped.status, stopped.frames, stopped.attempts) == ("queued", 0, 0)  # a stop is no failed attempt
        assert STOPPING_NOTICE in stopped.notices
        assert [job.id for job in store.jobs("queued")] == [running, waiting]
    finally:
        store.close()

    proc, base = start_server(work, "--max-frames", "150")
    try:
        for job_id in (running, waiting):
            state = wait_for_state(base, job_id, lambda s: s["status"] in ("done", "failed"), "the job")
            assert state["status"] == "done", state
            assert STOPPING_NOTICE not in state["notices"] and RERUN_NOTICE not in state["notices"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


@pytest.mark.slow
def test_a_one_frame_video_says_why_no_action_was_recognised(client, tmp_path, weizmann_clip):
    (frame,) = read_frames(weizmann_clip, limit=1)
    one = tmp_path / "one.avi"
    writer = cv2.VideoWriter(str(one), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (frame.shape[1], frame.shape[0]))
    writer.write(frame)
    writer.release()
    reply = upload(client, one)
    assert reply.status_code == 201, reply.get_json()
    state = wait_done(client, reply.get_json()["id"])
    assert state["status"] == "done" and state["frames"] == 1
    (hint,) = [n for n in state["notices"] if "no action" in n]
    assert "0.04 s long" in hint and "at least 0.62 s" in hint
