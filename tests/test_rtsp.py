"""Live streams against real servers: GStreamer's RTSP server and an HTTP MJPEG server.

The RTSP server (realtime/bench/rtsp_server.py) is a separate process looping a real clip; tests
kill, freeze and restart it the way cameras fail. Everything else is the real pipeline
with the real MediaPipe model. The classifier, where one is needed, is an untrained
ActionLSTM saved in the real checkpoint format: these tests check when windows are
classified, not what the label is.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO, count_frames, read_events
from realtime.__main__ import main as cli_main
from realtime.bench.rtsp import RtspServer, free_port
from realtime.capture import open_source
from realtime.classifier import CLASSES, ActionLSTM, save_checkpoint
from realtime.config import CaptureConfig, load_config
from realtime.errors import SourceError
from realtime.features import FeatureSpec, TrackWindow
from realtime.pipeline import Pipeline, RunSummary
from realtime.tracker import Tracker
from realtime.types import FrameRecord, Poses
from rtsp_fixtures import MjpegServer, wait_for

# Short timeouts and backoff so failures show within seconds.
FAST_CAPTURE = {
    "open_timeout_ms": 3000,
    "read_timeout_ms": 2000,
    "reconnect_delay_s": 0.5,
    "reconnect_max_delay_s": 1.0,
}


@pytest.fixture
def rtsp_server(exercise_clip):
    server = RtspServer(exercise_clip, fps=25)
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def untrained_weights(tmp_path_factory) -> Path:
    """A real checkpoint of an untrained model: windows get classified, labels mean nothing."""
    spec = FeatureSpec()
    path = tmp_path_factory.mktemp("weights") / "untrained.pt"
    save_checkpoint(path, ActionLSTM(spec, len(CLASSES)), CLASSES, spec, threshold=0.0)
    return path


@dataclass
class Shown:
    t_shown: float
    t_capture: float
    tracks: dict[int, str | None]  # track id -> label, None until its window is full
    camera: str = "cam0"


@dataclass
class Recorder:
    """A Sink that remembers what was shown; `delay_s` makes it a slow consumer."""

    needs_image = False

    delay_s: float = 0.0
    rows: list[Shown] = field(default_factory=list)

    def write(self, record: FrameRecord) -> None:
        tracks = {t.track_id: (t.prediction.label if t.prediction else None) for t in record.tracks}
        self.rows.append(Shown(time.monotonic(), record.t_capture, tracks, record.camera))
        if self.delay_s:
            time.sleep(self.delay_s)

    def close(self) -> None:
        pass


class Background:
    """A Pipeline running in a thread, as an embedding program would run it."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.summary: RunSummary | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.summary = self.pipeline.run()

    def stop(self, timeout: float = 20) -> RunSummary:
        self.pipeline.request_stop("test")
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the pipeline did not stop"
        assert self.summary is not None
        return self.summary


def make_pipeline(
    source: str, tmp_path: Path, recorder: Recorder, capture: dict | None = None, weights: Path | None = None, **extra
) -> Pipeline:
    overrides = {
        "source": source,
        "output": {"headless": True, "events": str(tmp_path / "events.jsonl"), "flush_events": True},
        "capture": {**FAST_CAPTURE, **(capture or {})},
        **extra,
    }
    if weights is not None:
        overrides["classifier"] = {"weights": str(weights)}
    config = load_config(REPO / "config.yaml", overrides)
    return Pipeline(config, sinks=[recorder])


def stream_events(path: Path) -> list[dict]:
    return [e for e in read_events(path) if e["type"] == "stream"]


def _monotonic(t: float) -> float:
    """An event's wall-clock time on this process's monotonic clock."""
    return t - time.time() + time.monotonic()


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "realtime", *args]


# --- windows never span missing time (no server needed) ---


def test_track_window_starts_afresh_after_a_gap():
    spec = FeatureSpec()
    window = TrackWindow(spec)
    kp, scores = np.full((17, 2), 100.0, np.float32), np.ones(17, np.float32)
    for i in range(40):
        window.add(i / spec.rate_hz, kp, scores)
    assert window.features() is not None
    t_back = 39 / spec.rate_hz + 3.0  # a 3 s outage
    window.add(t_back, kp, scores)
    assert len(window) == 1 and window.features() is None


def test_tracker_gives_new_ids_after_an_outage():
    box = np.array([[100, 50, 200, 300]], np.float32)
    poses = Poses(np.full((1, 17, 2), 150.0), np.ones((1, 17)), box)
    tracker = Tracker()
    before, _ = tracker.update(poses, 10.0)
    after, expired = tracker.update(poses, 13.0)
    assert expired == [before[0].track_id]
    assert after[0].track_id != before[0].track_id


# --- RTSP ---


@pytest.mark.rtsp
def test_rtsp_stream_end_to_end_gives_poses_and_annotated_video(rtsp_server, tmp_path):
    recorder = Recorder()
    video = tmp_path / "out.mp4"
    # Live input drops frames while the model warms up, so run until enough were shown.
    run = Background(
        make_pipeline(
            rtsp_server.url,
            tmp_path,
            recorder,
            output={"headless": True, "video": str(video), "events": str(tmp_path / "e.jsonl")},
        )
    )
    assert wait_for(lambda: len(recorder.rows) >= 40, 30)
    summary = run.stop()
    assert summary.error is None
    assert summary.frames_in >= summary.frames_out == len(recorder.rows) >= 40
    with_people = sum(1 for row in recorder.rows if row.tracks)
    assert with_people >= 0.8 * len(recorder.rows), f"poses in only {with_people} of {len(recorder.rows)} frames"
    assert count_frames(video) == summary.frames_out
    events = read_events(tmp_path / "e.jsonl")
    assert events[0]["status"] == "opened" and events[0]["width"] == 384 and events[-1]["type"] == "summary"
    # The models load before the stream opens: the first frame shown was grabbed after they were ready,
    # not buffered while they loaded, and the HUD's latency for it is honest.
    first = next(e for e in events if e.get("status") == "first_frame")
    assert first["time"] >= first["models_loaded"]
    assert first["frame"] < 60, "the first frames shown should not be preceded by a long stale backlog"


@pytest.mark.rtsp
def test_rtsp_server_killed_and_back_after_3s_reconnects_with_fresh_windows(rtsp_server, tmp_path, untrained_weights):
    recorder = Recorder()
    run = Background(make_pipeline(rtsp_server.url, tmp_path, recorder, weights=untrained_weights))
    assert wait_for(lambda: any(label for row in recorder.rows for label in row.tracks.values()), 30), (
        "no window was classified before the outage"
    )
    rtsp_server.kill()
    t_kill = time.monotonic()
    time.sleep(3.0)
    rtsp_server.start()
    assert wait_for(
        lambda: any(label for row in recorder.rows if row.t_capture > t_kill + 3.0 for label in row.tracks.values()), 40
    ), "no window classified after the outage"
    summary = run.stop()

    events = stream_events(tmp_path / "events.jsonl")
    statuses = [e["status"] for e in events]
    assert statuses[0] == "opened" and statuses[-1] == "ended"
    lost, back = statuses.index("lost"), statuses.index("reconnected")
    assert lost < back and "reconnecting" not in statuses  # attempts go to the log, not the events
    assert events[lost]["reason"] == "read failed"
    assert 3.0 <= events[back]["gap_s"] <= 10.0
    assert summary.error is None and summary.stopped_by == "test"

    before = [row for row in recorder.rows if row.t_capture < t_kill]
    after = [row for row in recorder.rows if row.t_capture > t_kill + 3.0]
    assert after[0].t_capture - before[-1].t_capture >= 3.0
    ids_before = {i for row in before for i in row.tracks}
    ids_after = {i for row in after for i in row.tracks}
    assert ids_after and not ids_before & ids_after, "a person's history was carried across the outage"
    # A fresh window must fill with post-outage poses before anyone is classified again.
    first_label = next(row.t_capture for row in after if any(row.tracks.values()))
    assert first_label - after[0].t_capture >= FeatureSpec().duration_s - 0.1


@pytest.mark.rtsp
def test_rtsp_frozen_server_times_out_the_read_and_recovers(rtsp_server, tmp_path):
    recorder = Recorder()
    run = Background(
        make_pipeline(rtsp_server.url, tmp_path, recorder, capture={"read_timeout_ms": 1500, "open_timeout_ms": 1500})
    )
    assert wait_for(lambda: len(recorder.rows) >= 30, 30)
    rtsp_server.freeze()
    t_freeze = time.monotonic()
    events_path = tmp_path / "events.jsonl"
    assert wait_for(lambda: any(e["status"] == "lost" for e in stream_events(events_path)), 10), (
        "a hung server blocked the reader"
    )
    t_lost = time.monotonic()
    # Frozen for 10 s, as the probe did: reconnect attempts time out meanwhile, and the first one
    # after the thaw opens a connection whose first reads still fail.
    time.sleep(max(0.0, t_freeze + 10.0 - time.monotonic()))
    rtsp_server.thaw()
    t_thaw = time.monotonic()
    assert wait_for(lambda: recorder.rows[-1].t_capture > t_thaw + 1.0, 30), "frames did not come back"
    run.stop()
    events = stream_events(events_path)
    lost = next(e for e in events if e["status"] == "lost")
    assert lost["reason"] == "read timed out"
    assert t_lost - t_freeze < 1.5 + 1.0  # one read timeout, plus polling
    # `reconnected` means frames flow again: it comes after the first good frame of the new connection, so
    # never while the server is frozen, and every `lost` after one counts more frames read than the one before
    # (a connection that gave no frame is the same outage, not a second one).
    outage = [e for e in events if e["status"] in ("lost", "reconnected")]
    assert [e["status"] for e in outage[:2]] == ["lost", "reconnected"]
    assert all(_monotonic(e["time"]) > t_thaw - 0.05 for e in outage if e["status"] == "reconnected")
    frames_at_loss = [e["frames"] for e in outage if e["status"] == "lost"]
    assert frames_at_loss == sorted(set(frames_at_loss)), f"a reconnect gave no frame: {outage}"
    assert outage[1]["gap_s"] >= 10.0 - (t_lost - t_freeze) - 0.5


@pytest.mark.rtsp
def test_rtsp_server_that_never_returns_ends_the_run_cleanly(rtsp_server, tmp_path, capsys):
    config = tmp_path / "live.yaml"
    config.write_text("capture:\n  reconnect_delay_s: 0.5\n  reconnect_max_delay_s: 1.0\n")
    events, video = tmp_path / "events.jsonl", tmp_path / "out.mp4"
    killed: list[float] = []

    def kill_once_streaming() -> None:
        if wait_for(lambda: events.exists() and "opened" in events.read_text(), 60):
            time.sleep(2.0)  # frames flowing
            rtsp_server.kill()
            killed.append(time.monotonic())

    threading.Thread(target=kill_once_streaming, daemon=True).start()
    # The CLI's own entry point, in this process (a fresh interpreter costs ~10 s here).
    code = cli_main(
        [
            "--config",
            str(config),
            "--source",
            rtsp_server.url,
            "--headless",
            "--reconnect-attempts",
            "3",
            "--events",
            str(events),
            "--flush-events",
            "--output",
            str(video),
        ]
    )
    elapsed = time.monotonic() - killed[0]
    err = capsys.readouterr().err
    # The first attempt at once, then 0.5 and 1 s between three refused attempts, then finalizing.
    assert 1.4 <= elapsed <= 8.0, f"gave up {elapsed:.1f} s after the server died"
    assert code == 1
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("realtime: error: stream ")
    assert "3 reconnect attempts" in errors[0]
    log = read_events(events)
    statuses = [e["status"] for e in log if e["type"] == "stream"]
    assert "reconnecting" not in statuses and "gave_up" in statuses
    assert next(e for e in log if e.get("status") == "gave_up")["attempts"] == 3
    # Attempts go to the log on a backoff schedule (1, 2, 4, 8, ...; every one with -v).
    assert "reconnect attempt 2 failed" in err and "reconnect attempt 3 failed" not in err
    assert log[-2]["status"] == "ended" and "error" in log[-2]
    assert log[-1]["type"] == "summary" and log[-1]["frames_out"] > 0
    assert count_frames(video) == log[-1]["frames_out"]


@pytest.mark.rtsp
def test_headless_stream_runs_until_sigterm_and_events_can_be_tailed(rtsp_server, tmp_path, untrained_weights):
    events, video = tmp_path / "events.jsonl", tmp_path / "out.avi"
    proc = subprocess.Popen(
        cli(
            "--source",
            rtsp_server.url,
            "--headless",
            "--weights",
            str(untrained_weights),
            "--events",
            str(events),
            "--flush-events",
            "--output",
            str(video),
        ),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # A tail sees action events while the process is still running.
        seen = wait_for(lambda: events.exists() and '"type":"action"' in events.read_text(), 60)
        assert seen and proc.poll() is None
        time.sleep(1.0)
        assert proc.poll() is None, "a live stream must not end by itself"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "461" not in err  # TCP from the first SETUP: no failed UDP attempt first
    assert not [line for line in err.splitlines() if line.startswith("[")], "FFmpeg/OpenCV log noise on stderr"
    log = read_events(events)
    assert log[-2]["status"] == "ended" and log[-2]["stopped_by"] == "sigterm" and "error" not in log[-2]
    assert all(abs(e["time"] - time.time()) < 300 for e in log if e["type"] == "stream")  # wall clock
    assert log[-1]["type"] == "summary" and log[-1]["frames_out"] > 0 and log[-1]["latency_ms_p95"] > 0
    assert count_frames(video) == log[-1]["frames_out"]
    assert "latency p50" in out


@pytest.mark.rtsp
def test_slow_consumer_drops_oldest_and_latency_stays_bounded(rtsp_server, tmp_path):
    recorder = Recorder(delay_s=0.2)  # shows 5 frames/s of a 25 frames/s stream
    pipeline = make_pipeline(rtsp_server.url, tmp_path, recorder, capture={"queue_size": 2})
    run = Background(pipeline)
    assert wait_for(lambda: len(recorder.rows) >= 5, 30)
    capture = pipeline.cameras["cam0"].capture
    t0, frames0 = time.monotonic(), capture.frames_read
    time.sleep(6.0)
    read_rate = (capture.frames_read - frames0) / (time.monotonic() - t0)
    summary = run.stop()
    assert summary.dropped > 0 and summary.frames_in > 2 * summary.frames_out
    # The reader keeps pace with the camera, so nothing piles up in FFmpeg's buffers...
    assert read_rate >= 20, f"capture read only {read_rate:.1f} frames/s of 25"
    # ...and what is shown waited at most for the two queues and the frame in each stage.
    steady = [row.t_shown - row.t_capture for row in recorder.rows[5:]]
    bound = (2 + 2 + 2) * recorder.delay_s + 0.5
    assert max(steady) <= bound, f"latency reached {max(steady):.2f} s"


@pytest.mark.rtsp
def test_each_stream_of_several_opens_on_its_own_with_its_real_rate(exercise_clip, tmp_path):
    """A frozen server holds up only its own camera; a stream down at the start says `opened`, with its
    real rate and size, only once it is up, and its video is written at that rate; a stop while the frozen
    one is still opening ends the run cleanly."""
    frozen = RtspServer(exercise_clip, fps=25)
    late = RtspServer(exercise_clip, fps=25, port=free_port())
    try:
        frozen.start()
        frozen.freeze()  # accepts the connection, never answers: an open waits out open_timeout_ms
        recorder = Recorder()
        cameras = [
            {"name": "clip", "source": str(exercise_clip)},
            {"name": "frozen", "source": frozen.url},
            {"name": "late", "source": f"rtsp://127.0.0.1:{late.port}/clip"},
        ]
        videos, events_path = tmp_path / "videos", tmp_path / "events.jsonl"
        overrides = {
            "cameras": cameras,
            "output": {"headless": True, "video": str(videos), "events": str(events_path), "flush_events": True},
            "capture": {**FAST_CAPTURE, "pace": True},
        }
        run = Background(Pipeline(load_config(REPO / "config.yaml", overrides), sinks=[recorder]))

        def statuses(camera: str) -> list[str]:
            return [e["status"] for e in stream_events(events_path) if e["camera"] == camera]

        assert wait_for(lambda: statuses("late")[:1] == ["lost"], 30), "the refused stream was not reported"
        t_up = time.time()
        late.start()
        assert wait_for(lambda: sum(row.camera == "late" for row in recorder.rows) >= 10, 30)
        summary = run.stop()
    finally:
        frozen.close()
        late.close()
    events = stream_events(events_path)
    by_camera = {name: [e for e in events if e["camera"] == name] for name in ("clip", "frozen", "late")}
    # The clip was read at once, not after the frozen stream's open gave up (3 s, FAST_CAPTURE).
    clip_first = next(e["time"] for e in by_camera["clip"] if e["status"] == "first_frame")
    frozen_lost = next(e["time"] for e in by_camera["frozen"] if e["status"] == "lost")
    assert frozen_lost - clip_first >= 1.5, "the clip waited for the frozen stream"
    assert "opened" not in statuses("frozen") and statuses("frozen")[-1] == "ended"
    # The late stream: opened once it was up, with the server's real rate and size.
    late_statuses = statuses("late")
    assert late_statuses.count("opened") == 1 and late_statuses.index("lost") < late_statuses.index("opened")
    opened = next(e for e in by_camera["late"] if e["status"] == "opened")
    assert opened["time"] >= t_up and (opened["fps"], opened["width"], opened["height"]) == (25.0, 384, 288)
    written = cv2.VideoCapture(str(videos / "late.mp4"))
    assert written.get(cv2.CAP_PROP_FPS) == 25.0
    written.release()
    assert count_frames(videos / "late.mp4") == summary.cameras["late"].frames_out >= 10
    assert summary.stopped_by == "test" and summary.error is None
    clip = summary.cameras["clip"]
    assert clip.frames_in == clip.frames_out + clip.dropped > 0


@pytest.mark.rtsp
def test_a_lone_stream_down_at_the_start_is_waited_for_when_asked(exercise_clip, tmp_path):
    """A cluster actor's one camera (`streams_wait`): down when the job starts, it is retried and runs
    once up, where a lone stream on the command line fails at once (the test below)."""
    late = RtspServer(exercise_clip, fps=25, port=free_port())
    events_path = tmp_path / "events.jsonl"
    overrides = {
        "source": f"rtsp://127.0.0.1:{late.port}/clip",
        "output": {"headless": True, "events": str(events_path), "flush_events": True},
        "capture": FAST_CAPTURE,
    }
    recorder = Recorder()
    try:
        run = Background(Pipeline(load_config(REPO / "config.yaml", overrides), sinks=[recorder], streams_wait=True))
        statuses = lambda: [e["status"] for e in stream_events(events_path)]  # noqa: E731
        assert wait_for(lambda: statuses()[:1] == ["lost"], 30), "the refused stream was not reported"
        late.start()
        assert wait_for(lambda: len(recorder.rows) >= 10, 30), statuses()
        summary = run.stop()
    finally:
        late.close()
    assert statuses().count("opened") == 1 and statuses().index("lost") < statuses().index("opened")
    assert summary.error is None and summary.cameras["cam0"].frames_out >= 10


# --- opening failures ---


@pytest.mark.rtsp
def test_nothing_listening_fails_at_once_with_one_line(capsys):
    url = f"rtsp://127.0.0.1:{free_port()}/clip"
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="cannot open stream"):
        open_source(url, CaptureConfig(open_timeout_ms=3000))
    assert time.monotonic() - t0 < 3.0
    assert cli_main(["--source", url, "--headless"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    # Refused at once: the message must not claim a timeout was waited out.
    assert errors == [
        f"realtime: error: cannot open stream {url} (refused or not found) — check the URL and "
        f"that the server is reachable"
    ]
    assert "Traceback" not in err


@pytest.mark.rtsp
def test_server_that_accepts_but_never_answers_fails_within_the_open_timeout():
    with socket.socket() as silent:  # accepts TCP connections (the kernel does), says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/clip"
        t0 = time.monotonic()
        with pytest.raises(SourceError, match="within 1500 ms"):
            open_source(url, CaptureConfig(open_timeout_ms=1500))
        elapsed = time.monotonic() - t0
    assert 1.2 <= elapsed <= 4.0, f"open gave up after {elapsed:.1f} s"


# --- HTTP MJPEG ---


@pytest.mark.rtsp
def test_http_mjpeg_stream_is_read_and_reconnected(exercise_clip, tmp_path):
    server = MjpegServer(exercise_clip, fps=25)
    try:
        server.start()
        recorder = Recorder()
        run = Background(make_pipeline(server.url, tmp_path, recorder))
        assert wait_for(lambda: len(recorder.rows) >= 40, 30)
        server.kill()
        t_kill = time.monotonic()
        server.start()
        assert wait_for(lambda: recorder.rows[-1].t_capture > t_kill + 1.0, 30), "frames did not come back"
        summary = run.stop()
    finally:
        server.close()
    assert summary.error is None
    assert sum(1 for row in recorder.rows if row.tracks) >= 0.8 * len(recorder.rows)
    events = stream_events(tmp_path / "events.jsonl")
    assert (events[0]["width"], events[0]["height"]) == (384, 288)
    assert [e["status"] for e in events if e["status"] in ("lost", "reconnected")] == ["lost", "reconnected"]
