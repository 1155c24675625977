"""Several cameras in one process, events over MQTT: a clip and a live RTSP stream, a real mosquitto."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO, count_frames, read_events, run_cli
from mqtt_fixtures import Broker, Subscriber, broker_fixture, retained  # noqa: F401 (broker_fixture is `broker`)
from realtime.bench.rtsp import RtspServer
from realtime.config import load_config
from realtime.pipeline import Pipeline, RunSummary
from rtsp_fixtures import free_port, wait_for

pytestmark = pytest.mark.slow


def labels_on(subscriber: Subscriber, topic: str) -> set[str]:
    return {m.json()["label"] for m in subscriber.on(topic)}


@pytest.mark.rtsp
@pytest.mark.mqtt
def test_a_clip_and_a_live_stream_publish_their_own_labels(tmp_path, datasets, broker):
    """Two cameras share the pose models; each one's labels arrive on its own topics, its state is
    retained, and the process says `offline` as it leaves."""
    stream = RtspServer(datasets / "weizmann" / "wave2" / "ido_wave2.avi", fps=25, size=(360, 288))
    stream.start()
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - name: gym\n    source: {datasets / 'weizmann' / 'jack' / 'daria_jack.avi'}\n"
        "    pose_fps: 0\n"  # no cap (several cameras get 10 a second by default)
        f"  - name: hall\n    source: {stream.url}\n    pose_fps: 10\n"
        "capture:\n  pace: true\n"
    )
    subscriber = Subscriber(broker.port, "realtime/#")
    events, videos = tmp_path / "events.jsonl", tmp_path / "videos"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "realtime",
            "--config",
            str(config),
            "--headless",
            "--mqtt",
            f"mqtt://127.0.0.1:{broker.port}",
            "--events",
            str(events),
            "--output",
            str(videos),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert subscriber.wait_until(
            lambda m: (
                any(x.topic == "realtime/hall/action" for x in m) and any(x.topic == "realtime/gym/summary" for x in m)
            ),
            timeout=120,
        ), f"labels did not arrive: {[m.topic for m in subscriber.messages]}"
        time.sleep(2)  # a little more of the stream
        # Retained while running: who is in view on the stream camera now.
        live_state = retained(broker.port, "realtime/hall/state").json()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        stream.close()
    assert proc.returncode == 0, stderr
    assert labels_on(subscriber, "realtime/gym/action") == {"JUMPING_JACKS"}
    assert "WAVING_2HANDS" in labels_on(subscriber, "realtime/hall/action")
    assert not labels_on(subscriber, "realtime/hall/action") & {"JUMPING_JACKS", "JUMPING"}
    # The stream camera was capped at 10 poses a second; the clip, uncapped, was posed at its full 25 fps.
    summaries = {m.json()["camera"]: m.json() for m in subscriber.messages if m.topic.endswith("/summary")}
    assert summaries["gym"]["pose_fps"] > summaries["hall"]["pose_fps"]
    assert summaries["hall"]["pose_fps"] <= 10.5
    assert [p["label"] for p in live_state["people"]] == ["WAVING_2HANDS"]
    # After the run: nobody in view of a stream that is over, and the process is offline.
    assert retained(broker.port, "realtime/hall/state").json()["people"] == []
    assert retained(broker.port, "realtime/availability").payload == "offline"
    # The same events in the file, and one video per camera.
    in_file = read_events(events)
    assert {e["camera"] for e in in_file} == {"gym", "hall"}
    file_summaries = {e["camera"]: e for e in in_file if e["type"] == "summary"}
    gym, hall = file_summaries["gym"], file_summaries["hall"]
    # Paced (capture.pace), the file is read like a camera and may drop on a busy machine; every
    # frame is shown or counted as dropped.
    assert gym["frames_in"] == 89 and gym["frames_out"] + gym["dropped"] == 89 and gym["frames_out"] > 0
    assert count_frames(videos / "gym.mp4") == gym["frames_out"]
    assert count_frames(videos / "hall.mp4") == hall["frames_out"] > 0
    assert "MQTT: " in stdout and " 0 dropped" in stdout
    subscriber.close()


def test_a_camera_down_from_the_start_does_not_keep_the_others_dark(tmp_path, datasets, random_weights):
    """With several cameras, a stream nobody answers is retried in the background; the clip runs to its
    end, and the dead camera ends with its own error once its retries are spent."""
    clip = datasets / "weizmann" / "jack" / "daria_jack.avi"
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - name: gym\n    source: {clip}\n"
        f"  - name: door\n    source: rtsp://127.0.0.1:{free_port()}/none\n    reconnect_attempts: 2\n"
    )
    events, videos = tmp_path / "events.jsonl", tmp_path / "videos"
    proc = run_cli(
        "--config",
        str(config),
        "--headless",
        "--weights",
        str(random_weights),
        "--events",
        str(events),
        "--output",
        str(videos),
        timeout=120,
    )
    assert proc.returncode == 1  # the run reports the dead camera...
    assert "camera door:" in proc.stderr and "retrying in the background" in proc.stderr
    assert "not back after 2 reconnect attempts" in proc.stderr.strip().splitlines()[-1]
    summaries = {e["camera"]: e for e in read_events(events) if e["type"] == "summary"}
    gym = summaries["gym"]  # ...but the clip ran through, every frame shown or counted as dropped
    assert gym["frames_in"] == 89 and gym["frames_out"] + gym["dropped"] == 89
    assert count_frames(videos / "gym.mp4") == gym["frames_out"] > 0
    assert summaries["door"]["frames_in"] == 0 and "reconnect attempts" in summaries["door"]["error"]
    ended = {e["camera"]: e for e in read_events(events) if e.get("status") == "ended"}
    assert "error" not in ended["gym"] and "reconnect attempts" in ended["door"]["error"]


@pytest.mark.rtsp
@pytest.mark.mqtt
def test_a_lost_stream_retires_its_people_and_retries_without_an_event_each_time(
    tmp_path, exercise_clip, random_weights, broker
):
    """When a stream is lost, its people leave then (a `left` each, an empty retained state), not when it
    is back; its reconnect attempts go to the log, not to the events or the broker."""
    server = RtspServer(exercise_clip, fps=25)
    server.start()
    subscriber = Subscriber(broker.port, "realtime/#")
    events_path = tmp_path / "events.jsonl"
    overrides = {
        "source": server.url,
        "classifier": {"weights": str(random_weights)},
        "output": {"headless": True, "events": str(events_path), "flush_events": True},
        "capture": {"open_timeout_ms": 2000, "read_timeout_ms": 2000, "reconnect_delay_s": 0.2},
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
    }
    pipeline = Pipeline(load_config(REPO / "config.yaml", overrides))
    summaries: list[RunSummary] = []
    running = threading.Thread(target=lambda: summaries.append(pipeline.run()), daemon=True)
    running.start()

    def people_now() -> list | None:
        states = subscriber.on("realtime/cam0/state")
        return states[-1].json()["people"] if states else None

    try:
        assert subscriber.wait_until(lambda m: bool(people_now()), 60), "nobody was labelled before the loss"
        server.kill()
        assert wait_for(lambda: any(e.get("status") == "lost" for e in read_events(events_path)), 20)
        assert subscriber.wait_until(lambda m: people_now() == [], 10), "the state still shows people"
        time.sleep(2.0)  # down for a while: attempts every 0.2-1 s
        assert retained(broker.port, "realtime/cam0/state").json()["people"] == []
    finally:
        pipeline.request_stop("test")
        running.join(20)
        server.close()
        subscriber.close()
    assert not running.is_alive() and summaries
    log = read_events(events_path)
    lost = next(i for i, e in enumerate(log) if e.get("status") == "lost")
    labelled = {e["track"] for e in log[:lost] if e["type"] == "action"}
    left = [e for e in log if e["type"] == "person"]
    # Everyone labelled before the loss left once, right after it; frames still in flight named nobody again.
    assert labelled and sorted(e["track"] for e in left) == sorted(labelled)
    assert all(lost < log.index(e) <= lost + len(labelled) for e in left)
    assert not [e for e in log[lost:] if e["type"] == "action"]
    statuses = [e["status"] for e in log if e["type"] == "stream"]
    assert statuses.count("lost") == 1 and not {"reconnecting", "retrying"} & set(statuses)
    published = {m.json()["status"] for m in subscriber.on("realtime/cam0/stream")}
    assert published == {"opened", "first_frame", "lost", "ended"}
    assert {m.json()["track"] for m in subscriber.on("realtime/cam0/person")} == labelled
    summary = summaries[0].cameras["cam0"]
    assert summary.tracks >= len(labelled) and summary.frames_in == summary.frames_out + summary.dropped
