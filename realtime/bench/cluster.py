"""What running the cameras under Ray costs, measured on this machine (issue 16's closing figures).

    python -m realtime.bench.cluster [--cameras 3] [--seconds 60] [--warmup 25] [--kills 3] [--json out.json]

1. The same cameras twice: in one process (`python -m realtime --config cams.yaml`) and on a
   one-node Ray cluster started here (`python -m realtime cluster --config cams.yaml --address`),
   one actor per camera. The cameras are real Weizmann clips (jack, wave2, wave1, ...) looped and
   scaled to --size, read at their 25 fps (`capture.pace`), posed at 10 Hz (`pose_fps`), one pose
   model per camera (the one process: a pool of N; each actor: its own), headless, events only. After
   --warmup s, CPU seconds of every process involved are read from /proc over --seconds: the one
   process; or the driver, the
   camera actors and Ray's own daemons (GCS, raylet, agents). FPS and pose rate per camera come
   from each run's summary.
2. Restart: --kills times, SIGKILL to one camera actor's process; the time until Ray has started
   its successor (its `actor started` event), until its stream is open again (`opened`), and until
   its frames flow again (its `status()` shows frames from the new process, polled every 0.1 s).

Not a test: it reports, it asserts nothing. Other processes' load hits both runs; the load
average is printed with each.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import yaml

from ..datasets import default_root
from .ray_cluster import REPO, LocalRayCluster, ray_env

if TYPE_CHECKING:
    from ray.actor import ActorHandle

DATASETS = default_root()
CLIPS = [
    "jack/daria_jack",
    "wave2/daria_wave2",
    "wave1/daria_wave1",
    "pjump/daria_pjump",
    "jack/denis_jack",
    "wave2/denis_wave2",
    "wave1/denis_wave1",
    "pjump/denis_pjump",
]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def make_clip(src: Path, dst: Path, seconds: float, size: tuple[int, int]) -> str:
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while (read := cap.read())[0]:
        frames.append(cv2.resize(read[1], size, interpolation=cv2.INTER_LINEAR))
    cap.release()
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    for i in range(int(seconds * fps)):
        writer.write(frames[i % len(frames)])
    writer.release()
    return str(dst)


def write_config(path: Path, sources: list[str], pose_workers: int) -> Path:
    config = {
        "cameras": [{"name": f"cam{i}", "source": source} for i, source in enumerate(sources)],
        "pose_fps": 10,
        "capture": {"pace": True},
        "pose": {"workers": pose_workers},
        "output": {"headless": True},
        "cluster": {"num_cpus": 0.5, "max_restarts": 10},
    }
    path.write_text(yaml.safe_dump(config))
    return path


class Window:
    """CPU seconds per group of processes and frames per camera, between two readings."""

    def __init__(self, pids: Callable[[], dict[int, str]], status: Callable[[], dict]) -> None:
        self.pids, self.status = pids, status  # callables: {pid: group}, {camera: status row}
        self.pose_rates: dict[str, list[float]] = {}

    def measure(self, seconds: float, samples: int = 6) -> dict:
        before = {pid: cpu_seconds(pid) for pid in self.pids()}
        status0, t0 = self.status(), time.monotonic()
        for _ in range(samples):  # the pose rate is a 2 s running rate: average a few readings
            time.sleep(seconds / samples)
            for camera, row in self.status().items():
                self.pose_rates.setdefault(camera, []).append(row.get("pose_fps", 0.0))
        status1, elapsed = self.status(), time.monotonic() - t0
        cpu: dict[str, float] = {}
        # Per process: one that started inside the window counts from 0; one that ended is left out.
        for pid, group in self.pids().items():
            cpu[group] = cpu.get(group, 0.0) + (cpu_seconds(pid) - before.get(pid, 0.0)) / elapsed
        cpu = {group: round(value, 3) for group, value in cpu.items()}
        rss: dict[str, float] = {}
        for pid, group in self.pids().items():
            rss[group] = rss.get(group, 0.0) + rss_mb(pid)
        cameras = {
            camera: {
                "fps": round((status1[camera]["frames_out"] - status0[camera]["frames_out"]) / elapsed, 2),
                "pose_fps": round(statistics.mean(self.pose_rates[camera]), 2),
            }
            for camera in status1
        }
        return {
            "cpu_s_per_s": cpu,
            "rss_mb": {group: round(mb) for group, mb in rss.items()},
            "cameras": cameras,
            "load": round(os.getloadavg()[0], 2),
            "seconds": round(elapsed, 1),
        }


def one_process(config: Path, warmup: float, seconds: float) -> dict:
    """The cameras in one `Pipeline` in a child process that reports its status on stdout when asked."""
    child = subprocess.Popen(
        [sys.executable, "-m", "realtime.bench.cluster", "--single-run", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ray_env(),
        cwd=REPO,
    )
    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout

    def status() -> dict:
        stdin.write("status\n")
        stdin.flush()
        return json.loads(stdout.readline())

    time.sleep(warmup)
    result = Window(lambda: {child.pid: "process"}, status).measure(seconds)
    stdin.close()  # the child stops its pipeline
    child.wait(timeout=120)
    return result


def single_run(config_path: str) -> int:
    """The child of `one_process`: run the pipeline; answer each `status` line on stdin with one JSON line."""
    from realtime import native

    native.configure()
    from realtime.config import load_config
    from realtime.pipeline import Pipeline

    pipeline = Pipeline(load_config(config_path))
    worker = threading.Thread(target=pipeline.run, daemon=True)
    worker.start()
    for _line in sys.stdin:
        print(json.dumps(pipeline.status_of()), flush=True)
    pipeline.request_stop("end")
    worker.join(timeout=60)
    return 0


def under_ray(
    cluster: LocalRayCluster, config: Path, cameras: int, warmup: float, seconds: float, kills: int, events: Path
) -> dict:
    import ray

    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "realtime",
            "cluster",
            "--config",
            str(config),
            "--address",
            cluster.address,
            "--events",
            str(events),
            "--flush-events",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ray_env(),
        cwd=REPO,
    )
    os.environ.update({key: value for key, value in ray_env().items() if key.startswith("RAY_")})
    ray.init(address=cluster.address, namespace="realtime", logging_level=logging.ERROR, log_to_driver=False)
    time.sleep(warmup)
    actors = {f"cam{i}": ray.get_actor(f"camera-cam{i}") for i in range(cameras)}

    def groups() -> dict[int, str]:
        found = {
            pid: ("actors" if title(pid).startswith("ray::CameraActor") else "ray daemons") for pid in cluster.pids()
        }
        found[driver.pid] = "driver"
        return found

    def status() -> dict:
        rows = ray.get([actor.status.remote() for actor in actors.values()], timeout=60)
        return {camera: row[camera] for camera, row in zip(actors, rows, strict=True)}

    result = Window(groups, status).measure(seconds)
    result["restarts"] = [kill_and_time(actors["cam0"], "cam0", events) for _ in range(kills)]
    driver.send_signal(signal.SIGTERM)
    driver.wait(timeout=120)
    ray.shutdown()
    return result


def kill_and_time(actor: ActorHandle, camera: str, events: Path) -> dict[str, float]:
    """SIGKILL one camera actor; seconds until its successor started, opened its stream, showed frames."""
    import ray

    old = ray.get(actor.status.remote())[camera]
    seen = len(events.read_text().splitlines())
    t_kill_wall, t_kill = time.time(), time.monotonic()
    os.kill(old["pid"], signal.SIGKILL)
    while True:  # a status call waits while the actor is down, and is re-sent to its successor
        now = ray.get(actor.status.remote(), timeout=120)[camera]
        if now["pid"] != old["pid"] and now.get("frames_out", 0) > 0:
            t_frames = time.monotonic() - t_kill
            break
        time.sleep(0.1)
    new = [json.loads(line) for line in events.read_text().splitlines()[seen:]]
    started = next(e["time"] for e in new if e["camera"] == camera and e["type"] == "actor")
    opened = next(e["time"] for e in new if e["camera"] == camera and e.get("status") == "opened")
    return {
        "actor_started_s": round(started - t_kill_wall, 2),
        "stream_opened_s": round(opened - t_kill_wall, 2),
        "frames_flowing_s": round(t_frames, 2),
    }


def summarize(run: dict) -> dict:
    """Totals, and the cost per camera: as measured, and per shown frame scaled to 25 fps (the load
    here often keeps cameras below their 25 fps; the cost of a frame does not depend on it)."""
    cpu = sum(run["cpu_s_per_s"].values())
    fps = sum(c["fps"] for c in run["cameras"].values())
    n = len(run["cameras"])
    return {
        **run,
        "cpu_s_per_s_total": round(cpu, 3),
        "per_camera": round(cpu / n, 3),
        "cpu_ms_per_frame": round(1000 * cpu / fps, 2) if fps else None,
        "per_camera_at_25fps": round(25 * cpu / fps, 3) if fps else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=25.0, help="start-up left out of the window")
    parser.add_argument("--kills", type=int, default=3, help="actor kills to time the restart")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--single-run", metavar="CONFIG", help=argparse.SUPPRESS)  # one_process's child
    args = parser.parse_args()
    if args.single_run:
        return single_run(args.single_run)
    width, height = (int(v) for v in args.size.split("x"))
    size = (width, height)
    folder = Path(tempfile.mkdtemp(prefix="bench_cluster_"))
    cluster = LocalRayCluster()
    try:
        clip_seconds = args.warmup + args.seconds + args.kills * 40 + 60
        sources = [
            make_clip(
                DATASETS / "weizmann" / f"{CLIPS[i % len(CLIPS)]}.avi", folder / f"cam{i}.avi", clip_seconds, size
            )
            for i in range(args.cameras)
        ]
        # The same pose models either way: one per camera (in the one process, a pool of them).
        single_config = write_config(folder / "one.yaml", sources, pose_workers=args.cameras)
        cluster_config = write_config(folder / "cluster.yaml", sources, pose_workers=1)
        print(f"{args.cameras} cameras, {args.size} at 25 fps, pose 10 Hz, {args.seconds:.0f} s window", flush=True)
        single = one_process(single_config, args.warmup, args.seconds)
        print("one process:", json.dumps(single), flush=True)
        cluster.start_head(num_cpus=2)
        ray_run = under_ray(
            cluster, cluster_config, args.cameras, args.warmup, args.seconds, args.kills, folder / "events.jsonl"
        )
        print("under Ray:", json.dumps(ray_run), flush=True)
    finally:
        cluster.stop()
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
    report = {
        "cameras": args.cameras,
        "size": args.size,
        "one_process": summarize(single),
        "ray": summarize(ray_run),
        "restarts": ray_run["restarts"],
    }
    if ray_run["restarts"]:
        report["restart_median"] = {
            key: statistics.median(r[key] for r in ray_run["restarts"]) for key in ray_run["restarts"][0]
        }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
