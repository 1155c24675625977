"""Cameras on a real Ray cluster: two Ray nodes on 127.0.0.1, three cameras, one driver.

The cluster (tests/ray_fixtures.py) is a head with 2 CPUs and an `edge` node with no CPU and the
custom resource {"edge": 1}, started with `ray start` like a real deployment. The job runs the
real command `python -m realtime cluster --address ...` with two real Weizmann clips (looped by
the test so they outlast it, read at their frame rate) and a live RTSP stream from the real
GStreamer server; the RTSP camera asks for `edge`, the clips for CPU. The real pose model and the
shipped classifier run in the actors.

A fourth camera points at an RTSP port where nothing listens: it must end with its own error
while the others run.

One job serves the cluster tests, in order: its events and placement, then one camera actor
killed and restarted, then that camera's stream lost and back, then SIGTERM to the driver. A
module fixture keeps the file within CI's time budget (one cluster and one actor start-up
instead of four). The first tests need no cluster: the placement plan and the one-line errors.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import yaml

from conftest import REPO, count_frames, read_events, run_cli
from mqtt_fixtures import Broker, Subscriber, retained
from ray_fixtures import LocalRayCluster, nodes_by_resource, ray_env
from realtime.bench.clips import read_frames, write_looped
from realtime.cluster.plan import Resources, actor_config, plan_actors
from realtime.cluster.restarts import RestartAligner
from realtime.config import load_config
from realtime.errors import ConfigError
from rtsp_fixtures import RtspServer, free_port, wait_for


def on_cluster(test):
    """The tests that start Ray (and an RTSP server); the plan and error tests need neither."""
    for mark in (pytest.mark.cluster, pytest.mark.rtsp, pytest.mark.slow):
        test = mark(test)
    return test


EXPECTED = {"jack": "JUMPING_JACKS", "wave": "WAVING_2HANDS", "door": "WAVING_1HAND"}
LOOP_SECONDS = 150  # longer than the module runs, so the clips are still playing at SIGTERM


def loop_clip(src: Path, dst: Path, seconds: float) -> Path:
    """The real clip repeated to `seconds` long, at the clip's own rate (the benchmark's writer)."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    frames = read_frames(src)
    write_looped(dst, frames, int(seconds * fps), fps)
    return dst


def write_config(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cameras_group_by_what_they_ask_for_and_actors_ask_for_the_sum(tmp_path):
    config = load_config(
        write_config(
            tmp_path,
            {
                "cameras": [{"name": n, "source": f"rtsp://cam/{n}"} for n in ("a", "b", "c", "gpu1", "gpu2")],
                "cluster": {
                    "cameras_per_actor": 2,
                    "num_cpus": 0.5,
                    "resources": {"site": 1},
                    "placement": {
                        "gpu1": {"num_gpus": 0.5, "resources": {"gpu_site": 1}},
                        "gpu2": {"num_gpus": 0.5, "resources": {"gpu_site": 1}},
                    },
                },
            },
        )
    )
    plans = plan_actors(config)
    assert [plan.name for plan in plans] == ["a+b", "c", "gpu1+gpu2"]
    assert plans[0].resources == Resources(1.0, 0.0, (("site", 2.0),))
    assert plans[1].resources == Resources(0.5, 0.0, (("site", 1.0),))
    # A GPU camera never shares an actor (nor a node) with a CPU camera.
    assert plans[2].resources == Resources(1.0, 1.0, (("gpu_site", 2.0), ("site", 2.0)))
    assert plans[2].resources.ray_options() == {
        "num_cpus": 1.0,
        "num_gpus": 1.0,
        "resources": {"gpu_site": 2.0, "site": 2.0},
    }


def test_each_actor_runs_only_its_cameras_headless_into_its_own_video_files(tmp_path):
    config = load_config(
        write_config(
            tmp_path,
            {
                "cameras": [{"name": "a", "source": "rtsp://cam/a"}, {"name": "b", "source": "rtsp://cam/b"}],
                "output": {"video": str(tmp_path / "videos"), "events": str(tmp_path / "e.jsonl")},
            },
        )
    )
    first = plan_actors(config)[0]
    own = actor_config(config, first)
    assert [c.name for c in own.cameras] == ["a"] and own.output.headless and own.output.events is None
    assert own.output.video == str(tmp_path / "videos" / "a.mp4")
    # A restarted actor does not overwrite what its predecessor left.
    assert actor_config(config, first, restart=2).output.video == str(tmp_path / "videos" / "a.restart2.mp4")


def test_each_actor_keeps_its_media_in_its_own_folder_and_status_lists_its_events(tmp_path):
    from realtime.cluster.status import format_table

    config = load_config(
        write_config(
            tmp_path,
            {
                "cameras": [{"name": "a", "source": "rtsp://cam/a"}, {"name": "b", "source": "rtsp://cam/b"}],
                "media": {"dir": str(tmp_path / "media")},
            },
        )
    )
    assert [actor_config(config, plan).media.dir for plan in plan_actors(config)] == [
        str(tmp_path / "media" / "a"),
        str(tmp_path / "media" / "b"),
    ]
    row = {"camera": "a", "node_ip": "", "node_id": "", "state": "running", "fps": 25.0, "pose_fps": 10.0,
           "frames_out": 9, "restarts": 0, "pid": 1, "events": [
               {"label": "BOXING", "start_time": 0.0, "duration_s": 4.25, "clip": "/m/a/a/x.mp4"},
               {"label": "WAVING_2HANDS", "start_time": 60.0, "duration_s": None, "clip": None}]}  # fmt: skip
    assert format_table([row]).splitlines()[-1] == (
        "a: latest events: BOXING 1970-01-01 00:00:00 UTC (4.2 s) /m/a/a/x.mp4; "
        "WAVING_2HANDS 1970-01-01 00:01:00 UTC (going on)"
    )


def test_placement_of_a_camera_that_does_not_exist_is_a_config_error(tmp_path):
    config = load_config(
        write_config(
            tmp_path,
            {
                "cameras": [{"name": "door", "source": "rtsp://cam/door"}],
                "cluster": {"placement": {"dor": {"num_gpus": 1}}},
            },
        )
    )
    with pytest.raises(ConfigError, match=r"cluster\.placement names dor"):
        plan_actors(config)


def test_a_restarted_camera_continues_on_the_timeline_after_its_first_run():
    """A restarted actor's pipeline counts t and track ids from zero again; the timeline gets them on
    the camera's one time line, and the dead run's people leave at the restart."""
    aligner = RestartAligner()
    events = [
        {"type": "stream", "camera": "door", "status": "opened", "time": 100.0},
        {"type": "action", "camera": "door", "t": 1.0, "frame": 25, "track": 1, "label": "WAVING_1HAND"},
        {"type": "action", "camera": "hall", "t": 2.0, "frame": 50, "track": 1, "label": "BOXING"},
        {"type": "stream", "camera": "door", "status": "restarted", "time": 110.0, "restarts": 1},
        {"type": "stream", "camera": "door", "status": "opened", "time": 112.0},
        {"type": "action", "camera": "door", "t": 0.5, "frame": 12, "track": 1, "label": "WAVING_1HAND"},
    ]
    out = [e for event in events for e in aligner.align(event)]
    door = [(e["type"], e.get("status"), e.get("t"), e.get("track")) for e in out if e["camera"] == "door"]
    assert door == [
        ("stream", "opened", None, None),
        ("action", None, 1.0, 1),
        ("person", "left", 10.0, 1),
        ("stream", "restarted", None, None),
        ("stream", "opened", None, None),
        ("action", None, 12.5, 2),
    ]
    assert [(e["t"], e["track"]) for e in out if e["camera"] == "hall"] == [(2.0, 1)]  # not restarted: as is


def test_an_address_where_no_cluster_listens_is_one_line_and_quick(tmp_path):
    result = run_cli(
        "cluster", "--source", "door=rtsp://127.0.0.1:1/x", "--address", f"127.0.0.1:{free_port()}", timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "nothing answers at 127.0.0.1:" in result.stderr


@pytest.fixture(scope="module")
def ray_cluster():
    cluster = LocalRayCluster()
    try:
        cluster.start_head(num_cpus=2)
        cluster.add_node(num_cpus=0, resources={"edge": 1})
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def mqtt_broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("broker"))
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture(scope="module")
def mqtt_received(mqtt_broker):
    """Everything the actors publish, recorded from before the job starts."""
    subscriber = Subscriber(mqtt_broker.port, "realtime/#", persistent=False)
    yield subscriber
    subscriber.close()


@pytest.fixture(scope="module")
def door_stream(datasets):
    server = RtspServer(datasets / "weizmann" / "wave1" / "daria_wave1.avi", fps=25)
    server.start()
    yield server
    server.close()


class Job:
    """The driver process and where it writes."""

    def __init__(self, folder: Path, address: str, process: subprocess.Popen) -> None:
        self.folder, self.address, self.process = folder, address, process
        self.events_path = folder / "events.jsonl"
        self.video_dir = folder / "video"

    def events(self) -> list[dict]:
        return read_events(self.events_path) if self.events_path.exists() else []

    def status(self) -> dict[str, dict]:
        out = subprocess.run(
            [sys.executable, "-m", "realtime", "cluster", "status", "--address", self.address, "--json"],
            capture_output=True,
            text=True,
            env=ray_env(),
            cwd=REPO,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        return {row["camera"]: row for row in json.loads(out.stdout.strip().splitlines()[-1])}

    def log(self) -> str:
        return (self.folder / "driver.err").read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def job(ray_cluster, door_stream, mqtt_broker, mqtt_received, datasets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster_job")
    weizmann = datasets / "weizmann"
    config = {
        "cameras": [
            {
                "name": "jack",
                "source": str(loop_clip(weizmann / "jack" / "daria_jack.avi", folder / "jack.mp4", LOOP_SECONDS)),
            },
            {
                "name": "wave",
                "source": str(loop_clip(weizmann / "wave2" / "daria_wave2.avi", folder / "wave.mp4", LOOP_SECONDS)),
            },
            {"name": "door", "source": door_stream.url},
            # Nothing listens there, and it may not reconnect: an error at once (a stream that may is
            # retried from the start, as a lost one is: tests/test_rtsp.py).
            {"name": "gone", "source": f"rtsp://127.0.0.1:{free_port()}/gone", "reconnect_attempts": 0},
        ],
        "pose_fps": 10,
        "capture": {"pace": True},
        "pose": {"workers": 1},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_broker.port},
        "media": {"dir": str(folder / "media"), "pre_s": 1.0, "post_s": 1.0},
        "cluster": {
            "num_cpus": 0.5,
            "max_restarts": 2,
            "placement": {"door": {"num_cpus": 0, "resources": {"edge": 1}}},
        },
    }
    (folder / "cams.yaml").write_text(yaml.safe_dump(config))
    with open(folder / "driver.out", "w") as out, open(folder / "driver.err", "w") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "realtime",
                "cluster",
                "--config",
                str(folder / "cams.yaml"),
                "--address",
                ray_cluster.address,
                "--events",
                str(folder / "events.jsonl"),
                "--flush-events",
                "--output",
                str(folder / "video"),
                "--timeline",
                str(folder / "timeline.png"),
            ],
            stdout=out,
            stderr=err,
            env=ray_env(),
            cwd=REPO,
        )
    running = Job(folder, ray_cluster.address, process)
    yield running
    if process.poll() is None:  # a test failed before the SIGTERM test
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def labelled(events: list[dict], camera: str, label: str, after: int = 0) -> bool:
    return any(e["type"] == "action" and e["camera"] == camera and e["label"] == label for e in events[after:])


def failed(events: list[dict], camera: str) -> list[dict]:
    return [e for e in events if e["camera"] == camera and e["type"] == "stream" and e["status"] == "error"]


@on_cluster
def test_every_camera_runs_where_its_resources_say_and_its_labels_arrive(job, ray_cluster, mqtt_received):
    arrived = wait_for(
        lambda: (
            all(labelled(job.events(), camera, label) for camera, label in EXPECTED.items())
            and failed(job.events(), "gone")
        ),
        timeout=150,
        interval=0.5,
    )
    assert arrived, (
        f"labels so far: {[(e['camera'], e['label']) for e in job.events() if e['type'] == 'action']}\n{job.log()}"
    )
    roles = nodes_by_resource(ray_cluster.address)
    assert sorted(roles.values()) == ["edge", "head"]
    started = {e["camera"]: e for e in job.events() if e["type"] == "actor" and e["status"] == "started"}
    assert roles[started["door"]["node_id"]] == "edge"  # the only camera asking for `edge`
    assert roles[started["jack"]["node_id"]] == roles[started["wave"]["node_id"]] == "head"  # the CPUs are there
    # The camera with no stream ended with its own error, one line naming the stream.
    assert "cannot open stream rtsp://127.0.0.1:" in failed(job.events(), "gone")[0]["error"]
    # Each actor publishes its own cameras' events on the many-cameras topics.
    for camera, label in EXPECTED.items():
        assert mqtt_received.wait_until(
            lambda messages, camera=camera, label=label: any(
                m.topic == f"realtime/{camera}/action" and m.json()["label"] == label for m in messages
            ),
            timeout=30,
        )
    assert any("cannot open stream" in m.json().get("error", "") for m in mqtt_received.on("realtime/gone/stream"))
    status = job.status()
    assert set(status) == {*EXPECTED, "gone"}
    assert status["gone"]["state"] == "error" and "cannot open stream" in status["gone"]["error"]
    for camera in EXPECTED:
        row = status[camera]
        assert row["node_id"] == started[camera]["node_id"] and row["pid"] == started[camera]["pid"]
        assert row["state"] == "running" and row["frames_out"] > 0
    # Each actor keeps its cameras' media in its own folder, and the status lists the newest events.
    assert wait_for(lambda: bool(job.status()["jack"]["events"]), timeout=30, interval=1.0)
    latest = job.status()["jack"]["events"][0]
    assert latest["label"] == "JUMPING_JACKS" and latest["snapshot"].startswith(str(job.folder / "media" / "jack"))
    assert Path(latest["snapshot"]).is_file()
    # The job stays online though the camera `gone` has ended: availability is the driver's.
    assert {m.payload for m in mqtt_received.on("realtime/availability")} == {"online"}


@on_cluster
def test_killed_camera_actor_restarts_and_resumes_while_the_others_run(job):
    before = job.status()
    pid = before["door"]["pid"]
    # The pid is the Ray worker process that runs the door actor (Ray names it after the actor class).
    assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::CameraActor")
    seen = len(job.events())
    os.kill(pid, signal.SIGKILL)

    def resumed() -> bool:
        events = job.events()[seen:]
        restarted = [
            i
            for i, e in enumerate(events)
            if e["camera"] == "door" and e["type"] == "stream" and e["status"] == "restarted"
        ]
        return bool(restarted) and labelled(events, "door", EXPECTED["door"], after=restarted[0])

    assert wait_for(resumed, timeout=120, interval=0.5), job.log()
    after = job.status()
    assert after["door"]["restarts"] == 1 and after["door"]["pid"] != pid and after["door"]["state"] == "running"
    for camera in ("jack", "wave"):  # never stopped: same process, frames kept coming, no restart
        assert after[camera]["pid"] == before[camera]["pid"] and after[camera]["restarts"] == 0
        assert after[camera]["frames_out"] > before[camera]["frames_out"]
        assert after[camera]["state"] == "running"
    others = [e for e in job.events()[seen:] if e["camera"] in ("jack", "wave") and e["type"] in ("stream", "actor")]
    assert others == [], others
    # What the killed actor recorded before the kill plays (its restart writes door.restart1.mp4).
    assert count_frames(job.video_dir / "door.mp4") > 0


@on_cluster
def test_status_follows_a_camera_whose_stream_is_lost_and_back(job, door_stream):
    door_stream.kill()  # the camera, not the actor, goes away
    assert wait_for(lambda: job.status()["door"]["state"] == "reconnecting", timeout=60, interval=1.0), job.log()
    seen = len(job.events())
    door_stream.start()
    assert wait_for(
        lambda: any(e["camera"] == "door" and e.get("status") == "reconnected" for e in job.events()[seen:]),
        timeout=60,
        interval=0.5,
    ), job.log()
    assert wait_for(lambda: job.status()["door"]["state"] == "running", timeout=30, interval=1.0)
    assert job.status()["door"]["restarts"] == 1  # the same actor reconnected; nothing restarted


@on_cluster
def test_sigterm_to_the_driver_stops_every_camera_with_finalized_outputs(job, mqtt_broker, mqtt_received):
    job.process.send_signal(signal.SIGTERM)
    # Exit 1: one camera (gone) ended with an error; every other camera was stopped cleanly.
    assert job.process.wait(timeout=120) == 1, job.log()
    lines = (job.folder / "driver.out").read_text().splitlines()
    assert "4 cameras, 1 with errors; stopped by sigterm" in lines[-1]
    assert any(line.startswith("realtime: gone on ") and "cannot open stream" in line for line in lines), lines
    # Each camera's line counts its people as a one-process run's does (one person loops in `jack`).
    assert any(line.startswith("realtime: jack on ") and "people max 1, mean " in line for line in lines), lines
    events = job.events()
    for camera, label in EXPECTED.items():
        mine = [e for e in events if e["camera"] == camera]
        ended = [e for e in mine if e["type"] == "stream" and e["status"] == "ended"]
        assert ended and ended[-1]["stopped_by"] == "sigterm"
        summary = [e for e in mine if e["type"] == "summary"][-1]
        assert summary["labels"].get(label, 0) > 0
        # The video its (last) actor wrote is complete: it decodes, every shown frame is in it.
        video = job.video_dir / (f"{camera}.restart1.mp4" if camera == "door" else f"{camera}.mp4")
        assert count_frames(video) == summary["frames_out"] > 0
        assert any(line.startswith(f"realtime: {camera} on ") for line in lines), lines
    # The driver drew every camera's events into one timeline.
    assert cv2.imread(str(job.folder / "timeline.png")) is not None
    # Offline once the job ends, and not before: neither the ended camera nor the killed actor said so.
    assert retained(mqtt_broker.port, "realtime/availability").payload == "offline"
    said = [m.payload for m in mqtt_received.on("realtime/availability")]
    assert said[-1] == "offline" and "offline" not in said[:-1], said
