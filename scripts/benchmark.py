"""Benchmark: the threaded pipeline against the article's serial loop, side by side (issue 6).

Both designs run in this one process on the same input, with the same pose backend,
classifier, drawing and video writer. The serial loop has one pose model, as the article
did; the pipeline has pose.workers of them (auto: two on two cores), posing in parallel.
Runs alternate (serial, threaded, threaded, serial, ...) so that load from other
processes hits both alike; every run prints the load average it met. Measured per skip
(0, 1, 4): throughput, time per frame of each stage (decode, pose, features + classify,
overlay, write), the threaded/serial ratio and the limit ratio (threaded FPS x the
slowest stage's time per frame, a stage run by N threads counting 1/N of its time;
1.0 = as fast as the slowest stage allows). Live mode reads the clip at its native rate
with drop-oldest queues, like a camera, for capture-to-output latency and dropped
frames. Then peak RSS of `python -m realtime` itself, and the LSTM's time per batch of
windows.

    python scripts/benchmark.py                 # about 5 minutes; writes docs/benchmark.{md,png}
    python scripts/benchmark.py --quick --json out.json --markdown /tmp/b.md --plot /tmp/b.png

Without --weights a randomly initialised checkpoint of the right shape is used: the
cost of the LSTM does not depend on its weights, only the labels shown do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from realtime.capture import open_source  # noqa: E402
from realtime.classifier import CLASSES, ActionClassifier, ActionLSTM, save_checkpoint  # noqa: E402
from realtime.config import Config, load_config  # noqa: E402
from realtime.errors import RealtimeError, SourceError  # noqa: E402
from realtime.features import FeatureSpec, TrackWindow  # noqa: E402
from realtime.inference_worker import ActionRecognizer  # noqa: E402
from realtime.overlay import HudInfo, annotate  # noqa: E402
from realtime.pipeline import Pipeline, backend_options  # noqa: E402
from realtime.pose import create_backend  # noqa: E402
from realtime.sinks import VideoSink  # noqa: E402
from realtime.stats import RateMeter, StageTimes  # noqa: E402
from realtime.types import Frame  # noqa: E402

DATASETS = Path(os.environ.get("REALTIME_DATASETS", REPO.parent / "shared" / "datasets"))
DEFAULT_CLIP = DATASETS / "videos" / "exercise.avi"
STAGES = ("decode", "pose", "classify", "overlay", "write")
STAGE_TITLES = {"decode": "decode", "pose": "pose", "classify": "features + classify", "overlay": "overlay",
                "write": "write"}
SKIPS = (0, 1, 4)
LSTM_BATCHES = (1, 4, 8)
TARGETS = {"threaded_fps": 30.0, "speedup": 1.25, "limit_ratio": 0.9, "latency_ms_p95": 100.0,
           "lstm_ms_per_batch": 1.0}


def log(message: str) -> None:
    print(message, flush=True)


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# ---------------------------------------------------------------------------- input

def make_clip(source: Path, path: Path, seconds: float, size: tuple[int, int] = (640, 480),
              fps: float = 30.0) -> int:
    """Upscale a real clip and loop it into a `seconds`-long file at `fps` (mp4v, as files usually are).

    Source frames are written one for one, so a 10 fps recording plays faster than life;
    what matters here is the cost per frame of real images of a moving person.
    """
    cap = cv2.VideoCapture(str(source))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))
    cap.release()
    if not frames:
        raise SourceError(f"cannot decode {source} to build the benchmark clip — pass a video with --source")
    total = max(1, round(seconds * fps))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(total):
        writer.write(frames[i % len(frames)])
    writer.release()
    return total


def random_weights(path: Path) -> None:
    """A checkpoint of the real shape with random weights: same cost, meaningless labels."""
    import torch

    torch.manual_seed(0)
    spec = FeatureSpec()
    save_checkpoint(path, ActionLSTM(spec.dim, len(CLASSES)), CLASSES, spec,
                    info={"note": "random initialisation, for benchmarking only"})


# ---------------------------------------------------------------------------- measuring

class PeakRss:
    """Samples this process's resident memory every 50 ms while a run goes on."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss", daemon=True)
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _read(self) -> float:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page / 2**20
        except (OSError, ValueError, IndexError):  # not Linux: the process-wide peak instead
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_mb = max(self.peak_mb, self._read())

    def __enter__(self) -> PeakRss:
        self.peak_mb = self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._read())


@dataclass
class RunResult:
    mode: str  # serial | threaded | live
    skip: int
    frames_in: int
    frames_out: int
    seconds: float
    stage_ms: dict[str, float]
    latency_ms: np.ndarray = field(repr=False)
    dropped: int = 0
    peak_rss_mb: float = 0.0
    load: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU time of the whole process (all threads, native ones too) during the run
    pose_workers: int = 1  # threads sharing the pose stage

    @property
    def stage_capacity_ms(self) -> dict[str, float]:
        """Time per frame each stage needs, given its threads: pose's time is shared by its workers."""
        return {k: v / (self.pose_workers if k == "pose" else 1) for k, v in self.stage_ms.items()}

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    @property
    def cores_used(self) -> float:
        """CPU time over wall time: above 1 only if a second core was free to use."""
        return self.cpu_s / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_frame(self) -> float:
        return self.cpu_s * 1000 / self.frames_out if self.frames_out else 0.0

    @property
    def limit_stage(self) -> str:
        capacity = self.stage_capacity_ms
        return max(capacity, key=capacity.get)

    @property
    def limit_ratio(self) -> float:
        """1.0 = frames come out as fast as the slowest stage alone could produce them."""
        return self.fps * self.stage_capacity_ms[self.limit_stage] / 1000

    def to_json(self) -> dict:
        return {"mode": self.mode, "skip": self.skip, "frames_in": self.frames_in, "frames_out": self.frames_out,
                "seconds": round(self.seconds, 3), "fps": round(self.fps, 2),
                "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
                "limit_stage": self.limit_stage, "limit_ratio": round(self.limit_ratio, 3),
                "latency_ms_p50": _pct(self.latency_ms, 50), "latency_ms_p95": _pct(self.latency_ms, 95),
                "dropped": self.dropped, "peak_rss_mb": round(self.peak_rss_mb, 1), "load_average": self.load,
                "pose_workers": self.pose_workers,
                "cpu_ms_per_frame": round(self.cpu_ms_per_frame, 2), "cores_used": round(self.cores_used, 2)}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(samples: np.ndarray, q: float) -> float:
    return round(float(np.percentile(samples, q)), 2) if len(samples) else 0.0


def base_config(clip: Path, weights: Path, skip: int, output: Path, pose_workers: int = 0) -> Config:
    config = load_config(None)  # the project's defaults (config.yaml), then the benchmark's settings
    config.source = str(clip)
    config.pose.skip = skip
    config.pose.workers = pose_workers or config.pose.workers
    config.classifier.weights = str(weights)
    config.output.headless = True
    config.output.video = str(output)
    config.output.events = None
    return config


def run_serial(clip: Path, weights: Path, skip: int, output: Path, max_frames: int | None = None) -> RunResult:
    """The article's loop in one thread: read, pose, append to the window, LSTM, draw, write."""
    config = base_config(clip, weights, skip, output)
    cap, info = open_source(config.source, config.capture)
    recognizer = ActionRecognizer(create_backend(config.pose.backend, backend_options(config)),
                                  ActionClassifier.load(weights), skip)
    sink = VideoSink(output, info.fps)
    stages, out_rate, pose_rate = StageTimes(), RateMeter(), RateMeter()
    latency: list[float] = []
    load = load_average()
    try:
        with PeakRss() as rss:
            t_start, cpu_start = time.perf_counter(), cpu_seconds()
            index = 0
            while max_frames is None or index < max_frames:
                t0 = time.perf_counter()
                ok, image = cap.read()
                t_grab = time.monotonic()
                t1 = time.perf_counter()
                if not ok:
                    break
                frame = Frame(index, t_grab, image, t_source=index / info.fps, decode_ms=(t1 - t0) * 1000)
                index += 1
                result = recognizer.process(frame)
                now = time.monotonic()
                out_rate.tick(now)
                if result.posed:
                    pose_rate.tick(now)
                hud = HudInfo(out_rate.rate(), pose_rate.rate(), (now - t_grab) * 1000, 0)
                t2 = time.perf_counter()
                drawn = annotate(result, hud, config.pose.min_score)
                t3 = time.perf_counter()
                sink.write(drawn)
                t4 = time.perf_counter()
                latency.append((time.monotonic() - t_grab) * 1000)
                for stage, ms in (("decode", frame.decode_ms), ("pose", result.pose_ms),
                                  ("classify", result.classify_ms), ("overlay", (t3 - t2) * 1000),
                                  ("write", (t4 - t3) * 1000)):
                    stages.add(stage, ms)
                stages.frame_done()
            seconds, cpu_s = time.perf_counter() - t_start, cpu_seconds() - cpu_start
    finally:
        sink.close()
        cap.release()
        recognizer.close()
    return RunResult("serial", skip, index, stages.frames, seconds, stages.per_frame_ms(),
                     np.asarray(latency), 0, rss.peak_mb, load, cpu_s)


def run_threaded(clip: Path, weights: Path, skip: int, output: Path, live: bool = False,
                 max_frames: int | None = None, pose_workers: int = 0) -> RunResult:
    """realtime.pipeline.Pipeline, headless, writing the annotated video; `live` paces the file like a camera."""
    config = base_config(clip, weights, skip, output, pose_workers)
    config.max_frames = max_frames
    if live:
        config.capture.pace = True
        config.capture.policy = "drop_oldest"
    pipeline = Pipeline(config, weights_explicit=True, notice=lambda message: None)
    load = load_average()
    with PeakRss() as rss:
        cpu_start = cpu_seconds()
        summary = pipeline.run()
        cpu_s = cpu_seconds() - cpu_start
    if summary.error:
        raise RealtimeError(f"threaded run failed: {summary.error}")
    return RunResult("live" if live else "threaded", skip, summary.frames_in, summary.frames_out,
                     summary.frames_out / summary.fps if summary.fps else 0.0,
                     pipeline.stage_times.per_frame_ms(), pipeline.latency.values(), summary.dropped,
                     rss.peak_mb, load, cpu_s, len(pipeline.pose_pool.workers))


def cli_peak_rss(clip: Path, weights: Path, output: Path, max_frames: int, pose_workers: int = 0) -> dict:
    """Peak RSS of `python -m realtime` as a user runs it (a fresh process, nothing else loaded).

    Read from the child's own VmHWM while it runs: getrusage's children figure would also
    count the moment the child was still a fork of this large process.
    """
    events, log_path = output.with_suffix(".jsonl"), output.with_suffix(".log")
    with open(log_path, "w") as log_file:  # a file, not a pipe: a full pipe would stall the child
        command = [sys.executable, "-m", "realtime", "--source", str(clip), "--weights", str(weights), "--headless",
                   "--output", str(output), "--events", str(events), "--max-frames", str(max_frames),
                   "--pose-workers", str(pose_workers)]
        proc = subprocess.Popen(command, cwd=REPO, stdout=log_file, stderr=log_file)
        peak_kb = 0
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
    if proc.returncode != 0:
        last = log_path.read_text().strip().splitlines()[-1:]
        raise RealtimeError(f"python -m realtime failed: {last}")
    summary = [json.loads(line) for line in events.read_text().splitlines() if '"summary"' in line][-1]
    return {"peak_rss_mb": round(peak_kb / 1024, 1), "fps": summary["fps"], "frames_out": summary["frames_out"]}


def lstm_ms_per_batch(weights: Path, repeats: int) -> tuple[dict[str, float], float]:
    """The classifier's predict() on B windows at once (what the worker calls per frame), median ms;
    and the features of one live window (TrackWindow.features), median ms."""
    classifier = ActionClassifier.load(weights)
    spec = classifier.spec
    rng = np.random.default_rng(0)
    times: dict[str, float] = {}
    for batch in LSTM_BATCHES:
        windows = rng.standard_normal((batch, spec.window, spec.dim)).astype(np.float32)
        for _ in range(10):
            classifier.predict(windows)
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            classifier.predict(windows)
            samples.append((time.perf_counter() - t0) * 1000)
        times[str(batch)] = round(statistics.median(samples), 3)
    window = TrackWindow(spec)
    base = rng.uniform(100, 400, (17, 2)).astype(np.float32)
    for i in range(60):  # two seconds of a person at 30 fps
        window.add(i / 30, base + rng.normal(0, 3, (17, 2)).astype(np.float32), np.full(17, 0.9, np.float32))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        window.features()
        samples.append((time.perf_counter() - t0) * 1000)
    return times, round(statistics.median(samples), 3)


def available_cores(seconds: float = 1.0) -> float:
    """How many cores this process can get right now: one busy thread per CPU, CPU time over wall time.

    On a shared machine this is what the threaded design has to work with; below ~1.2 it
    cannot beat the serial loop whatever it does.
    """
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)  # each probe thread keeps to itself; OpenCV releases the GIL while it blurs
    image = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    end = time.perf_counter() + seconds

    def spin() -> None:
        while time.perf_counter() < end:
            cv2.GaussianBlur(image, (15, 15), 0)

    threads = [threading.Thread(target=spin) for _ in range(os.cpu_count() or 1)]
    cpu_start, wall_start = cpu_seconds(), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cv2.setNumThreads(previous)
    return round((cpu_seconds() - cpu_start) / (time.perf_counter() - wall_start), 2)


# ---------------------------------------------------------------------------- summarising

def summarise(runs: list[RunResult], skip: int) -> dict:
    serial = [r for r in runs if r.mode == "serial" and r.skip == skip]
    threaded = [r for r in runs if r.mode == "threaded" and r.skip == skip]
    # Ratios per adjacent pair: both runs of a pair met the same load.
    ratios = [t.fps / s.fps for s, t in zip(serial, threaded) if s.fps > 0]

    def mean_stages(group: list[RunResult]) -> dict[str, float]:
        return {k: round(statistics.fmean(r.stage_ms.get(k, 0.0) for r in group), 3) for k in STAGES}

    stage_ms = mean_stages(threaded)
    workers = threaded[0].pose_workers
    slowest = max(threaded[0].stage_capacity_ms, key=threaded[0].stage_capacity_ms.get)
    serial_ms = mean_stages(serial)
    # Amdahl for this design: its threads share the serial loop's work as capture (decode),
    # pose (split over its workers), classify (features + LSTM) and main (overlay + write);
    # the busiest one bounds it, and so do the cores: all the work over all of them.
    total = sum(serial_ms.values())
    busiest = max(serial_ms["decode"], serial_ms["pose"] / workers, serial_ms["classify"],
                  serial_ms["overlay"] + serial_ms["write"], total / (os.cpu_count() or 1))
    slowest_serial = max(serial_ms["pose"] / workers, *(v for k, v in serial_ms.items() if k != "pose"))
    return {
        "threaded_fps": round(statistics.median(r.fps for r in threaded), 2),
        "serial_fps": round(statistics.median(r.fps for r in serial), 2),
        "speedup": round(statistics.median(ratios), 3) if ratios else 0.0,
        "speedup_ceiling": round(total / busiest, 3) if busiest > 0 else 0.0,
        "pose_workers": workers,
        "limit_ratio": round(statistics.median(r.limit_ratio for r in threaded), 3),
        "limit_stage": slowest,
        # Stricter: against the slowest stage's cost when it had the machine to itself (serial run).
        "limit_ratio_serial_stages": round(statistics.median(r.fps for r in threaded) * slowest_serial / 1000, 3),
        "stage_ms": stage_ms,
        "serial_stage_ms": serial_ms,
        "frames": threaded[0].frames_out,
        "serial_frames": serial[0].frames_out,
        "threaded_latency_ms_p50": _pct(np.concatenate([r.latency_ms for r in threaded]), 50),
        "threaded_latency_ms_p95": _pct(np.concatenate([r.latency_ms for r in threaded]), 95),
        "threaded_cores_used": round(statistics.median(r.cores_used for r in threaded), 2),
        "serial_cores_used": round(statistics.median(r.cores_used for r in serial), 2),
        "threaded_cpu_ms_per_frame": round(statistics.median(r.cpu_ms_per_frame for r in threaded), 2),
        "serial_cpu_ms_per_frame": round(statistics.median(r.cpu_ms_per_frame for r in serial), 2),
        "threaded_peak_rss_mb": round(max(r.peak_rss_mb for r in threaded), 1),
        "serial_peak_rss_mb": round(max(r.peak_rss_mb for r in serial), 1),
    }


def report(runs: list[RunResult], lstm: dict[str, float], features_ms: float, cli: dict, meta: dict) -> dict:
    by_skip = {str(skip): summarise(runs, skip) for skip in meta["skips"]}
    top = dict(by_skip[str(meta["skips"][0])])
    live = [r for r in runs if r.mode == "live"]
    live_latency = np.concatenate([r.latency_ms for r in live]) if live else np.zeros(0)
    top.update({
        "latency_ms_p50": _pct(live_latency, 50),
        "latency_ms_p95": _pct(live_latency, 95),
        "dropped": sum(r.dropped for r in live),
        "live": {"frames_in": sum(r.frames_in for r in live), "frames_out": sum(r.frames_out for r in live),
                 "dropped": sum(r.dropped for r in live),
                 "fps": round(statistics.median(r.fps for r in live), 2) if live else 0.0,
                 "latency_ms_p50": _pct(live_latency, 50), "latency_ms_p95": _pct(live_latency, 95),
                 "latency_ms_max": round(float(live_latency.max()), 2) if len(live_latency) else 0.0},
        "peak_rss_mb": cli["peak_rss_mb"],
        "cli": cli,
        "lstm_ms_per_batch": lstm,
        "features_ms_per_window": features_ms,
        "by_skip": by_skip,
        **meta,
        "runs": [r.to_json() for r in runs],
    })
    top["targets"] = {key: {"target": value, "measured": _target_value(top, key), "met": _met(top, key, value)}
                      for key, value in TARGETS.items()}
    return top


def _target_value(result: dict, key: str) -> float:
    return max(result["lstm_ms_per_batch"].values()) if key == "lstm_ms_per_batch" else result[key]


def _met(result: dict, key: str, target: float) -> bool:
    value = _target_value(result, key)
    return value <= target if key in ("latency_ms_p95", "lstm_ms_per_batch") else value >= target


def markdown(result: dict) -> str:
    load = result["load_average"]
    lines = [
        "# Benchmark: threaded pipeline vs the article's serial loop",
        "",
        f"Generated by `scripts/benchmark.py` on {result['date']}: {result['machine']}. "
        f"Input: {result['input']}. Pose backend: {result['backend']}. Classifier: {result['weights']}. "
        f"{result['rounds']} alternating round(s) per setting; FPS is the median over rounds, stage times "
        f"the mean. Load average (1 min) {load['min']}-{load['max']} during runs "
        f"(start {load['start']}, end {load['end']}); the machine is shared, so compare columns within a row. "
        f"Cores this process could get (two busy threads, CPU time over wall time): "
        f"{result['available_cores']['start']} at the start, {result['available_cores']['end']} at the end.",
        "",
        "Reproduce:",
        "",
        "```",
        result["command"],
        "```",
        "",
        "## Throughput (file input, lossless queues)",
        "",
        "| skip | serial FPS | threaded FPS | threaded / serial | ceiling | limit ratio (slowest stage; "
        "against its serial cost) | "
        + " | ".join(f"{STAGE_TITLES[s]} ms" for s in STAGES) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(STAGES),
    ]
    for skip, row in result["by_skip"].items():
        stages = " | ".join(f"{row['stage_ms'][s]:.2f}" for s in STAGES)
        lines.append(f"| {skip} | {row['serial_fps']:.1f} | {row['threaded_fps']:.1f} | {row['speedup']:.2f}x | "
                     f"{row['speedup_ceiling']:.2f}x | {row['limit_ratio']:.2f} ({row['limit_stage']}; "
                     f"{row['limit_ratio_serial_stages']:.2f}) | {stages} |")
    lines += [
        "",
        "Stage times are per output frame, measured inside the threaded run (with skip, the pose time is "
        "spread over the frames it serves; it is one pose thread's time per frame, and the pose stage runs "
        f"{result['by_skip'][str(result['skips'][0])]['pose_workers']} such threads, so the limit ratio counts "
        "pose at that fraction of it). *Ceiling* is the most this design could gain over the serial loop: "
        "the serial per-frame total over the larger of the busiest thread's share (capture: decode; each "
        "pose thread: pose over the pose threads; classify: features + LSTM; main: overlay + write) and "
        "the total spread over all cores. The serial loop's own stage times:",
        "",
        "| skip | " + " | ".join(f"{STAGE_TITLES[s]} ms" for s in STAGES) + " |",
        "|---|" + "---|" * len(STAGES),
    ]
    for skip, row in result["by_skip"].items():
        lines.append(f"| {skip} | " + " | ".join(f"{row['serial_stage_ms'][s]:.2f}" for s in STAGES) + " |")
    lines += [
        "",
        "CPU time of the whole process per frame, and cores used (CPU time over wall time). The threaded "
        "design can only beat the serial loop when it gets more than one core; on a machine whose other "
        "core is busy with other work, both get about one.",
        "",
        "| skip | serial CPU ms/frame | threaded CPU ms/frame | serial cores used | threaded cores used |",
        "|---|---|---|---|---|",
    ]
    for skip, row in result["by_skip"].items():
        lines.append(f"| {skip} | {row['serial_cpu_ms_per_frame']:.1f} | {row['threaded_cpu_ms_per_frame']:.1f} | "
                     f"{row['serial_cores_used']:.2f} | {row['threaded_cores_used']:.2f} |")
    live, lstm = result["live"], result["lstm_ms_per_batch"]
    lines += [
        "",
        "## Live mode (file paced at its native 30 fps, drop-oldest queues, skip 0)",
        "",
        "| capture-to-output latency p50 | p95 | max | dropped | output FPS |",
        "|---|---|---|---|---|",
        f"| {live['latency_ms_p50']:.0f} ms | {live['latency_ms_p95']:.0f} ms | {live['latency_ms_max']:.0f} ms | "
        f"{live['dropped']} of {live['frames_in']} | {live['fps']:.1f} |",
        "",
        "## Memory and the classifier",
        "",
        f"- Peak RSS of `python -m realtime` (skip 0, writing video): {result['peak_rss_mb']:.0f} MB.",
        "- LSTM `predict()` per batch of windows: "
        + ", ".join(f"{b} window{'s' if b != '1' else ''} {ms:.2f} ms" for b, ms in lstm.items())
        + f"; features of one window {result['features_ms_per_window']:.2f} ms.",
        "",
        "## Targets (skip 0)",
        "",
        "| measure | target | measured | met |",
        "|---|---|---|---|",
    ]
    names = {"threaded_fps": ("threaded FPS", ">="), "speedup": ("threaded / serial", ">="),
             "limit_ratio": ("limit ratio", ">="), "latency_ms_p95": ("live latency p95 (ms)", "<="),
             "lstm_ms_per_batch": ("LSTM ms per batch (worst of 1/4/8)", "<=")}
    for key, target in result["targets"].items():
        name, op = names[key]
        lines.append(f"| {name} | {op} {target['target']:g} | {target['measured']:.2f} | "
                     f"{'yes' if target['met'] else 'no'} |")
    lines += ["", "![FPS against skip, and the live latency distribution](benchmark.png)", ""]
    return "\n".join(lines)


def plot(result: dict, runs: list[RunResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skips = [int(s) for s in result["by_skip"]]
    fig, (ax_fps, ax_lat) = plt.subplots(1, 2, figsize=(11, 4))
    for mode, colour in (("serial", "tab:grey"), ("threaded", "tab:blue")):
        ax_fps.plot(skips, [result["by_skip"][str(s)][f"{mode}_fps"] for s in skips], "o-", color=colour,
                    label=f"{mode} (median)")
        points = [(r.skip, r.fps) for r in runs if r.mode == mode]
        ax_fps.scatter(*zip(*points), color=colour, alpha=0.35, s=14)
    ax_fps.axhline(30, color="tab:red", linestyle=":", label="30 fps camera")
    ax_fps.set(xlabel="skip (pose every skip+1-th frame)", ylabel="frames per second", xticks=skips,
               title="Throughput")
    ax_fps.legend()
    live = [r.latency_ms for r in runs if r.mode == "live"]
    if live:
        samples = np.concatenate(live)
        ax_lat.hist(samples, bins=50, color="tab:blue", alpha=0.8)
        for q, style in ((50, "--"), (95, ":")):
            value = np.percentile(samples, q)
            ax_lat.axvline(value, color="black", linestyle=style, label=f"p{q} {value:.0f} ms")
        ax_lat.legend()
    ax_lat.set(xlabel="capture-to-output latency (ms)", ylabel="frames",
               title="Live mode (paced 30 fps, drop-oldest, skip 0)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", help="benchmark this video file as it is (default: exercise.avi upscaled to "
                                    "640x480, looped to --seconds at 30 fps)")
    p.add_argument("--weights", help="action checkpoint (default: a random one of the right shape)")
    p.add_argument("--seconds", type=float, help="length of the generated clip (default 20, quick 3)")
    p.add_argument("--rounds", type=int, help="alternating serial/threaded rounds per skip (default 3, quick 1)")
    p.add_argument("--pose-workers", type=int, default=0,
                   help="pose threads of the threaded pipeline (default: pose.workers of config.yaml, auto); "
                        "the serial loop always has one")
    p.add_argument("--skips", default=",".join(map(str, SKIPS)), help="comma-separated skips (first = headline)")
    p.add_argument("--quick", action="store_true", help="a few seconds of input, one round: checks, not figures")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--markdown", help="Markdown report (default docs/benchmark.md; none with --quick)")
    p.add_argument("--plot", help="PNG plot (default docs/benchmark.png; none with --quick)")
    args = p.parse_args(argv)
    if args.markdown is None:  # quick figures never overwrite the published ones by accident
        args.markdown = "" if args.quick else str(REPO / "docs" / "benchmark.md")
    if args.plot is None:
        args.plot = "" if args.quick else str(REPO / "docs" / "benchmark.png")
    args.seconds = args.seconds or (3.0 if args.quick else 20.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    try:
        args.skips = tuple(int(s) for s in args.skips.split(","))
    except ValueError:
        p.error(f"--skips must be integers separated by commas, got {args.skips!r}")
    if args.rounds < 1 or args.seconds <= 0 or any(s < 0 for s in args.skips) or args.pose_workers < 0:
        p.error("--rounds must be >= 1, --seconds > 0, skips >= 0 and --pose-workers >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return benchmark(args, argv if argv is not None else sys.argv[1:])
    except RealtimeError as exc:
        print(f"benchmark: error: {exc}", file=sys.stderr)
        return 2


def benchmark(args: argparse.Namespace, argv: list[str]) -> int:
    load_start, cores_start = load_average(), available_cores()
    log(f"benchmark: load average {load_start} on {os.cpu_count()} CPUs; {cores_start} cores free for this process")
    with tempfile.TemporaryDirectory(prefix="realtime-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.source:
            clip = Path(args.source)
            _, info = open_source(str(clip), Config().capture)  # a clear error for a bad file, before anything
            _.release()
            described = f"{clip} ({info.width}x{info.height}, {info.fps:g} fps, {info.frame_count} frames)"
        else:
            clip = tmp / "input.mp4"
            frames = make_clip(DEFAULT_CLIP, clip, args.seconds)
            described = (f"{DEFAULT_CLIP.name} (real, 384x288 at 10 fps) upscaled to 640x480 and looped, {frames} "
                         f"frames at 30 fps ({args.seconds:g} s, mp4v; one frame per source frame, so people move "
                         f"faster than recorded)")
        log(f"benchmark: input {described}")
        if args.weights:
            weights, weights_note = Path(args.weights), str(args.weights)
        else:
            weights = tmp / "random_lstm.pt"
            random_weights(weights)
            weights_note = "random-init checkpoint of the real shape (no trained weights; same cost)"
            log(f"benchmark: classifier weights: {weights_note}")
        output = tmp / "out.mp4"

        # Warm-up, not counted: first-use costs (lazy imports, caches, page faults) hit neither design.
        run_serial(clip, weights, 0, output, max_frames=15)
        run_threaded(clip, weights, 0, output, max_frames=15, pose_workers=args.pose_workers)

        runs: list[RunResult] = []
        for round_ in range(args.rounds):
            for i, skip in enumerate(args.skips):
                # Swap the order every time so neither design always runs first.
                order = ("serial", "threaded") if (round_ + i) % 2 == 0 else ("threaded", "serial")
                for mode in order:
                    if mode == "serial":
                        run = run_serial(clip, weights, skip, output)
                    else:
                        run = run_threaded(clip, weights, skip, output, pose_workers=args.pose_workers)
                    runs.append(run)
                    log(f"round {round_ + 1} skip {skip} {mode:8s}: {run.fps:5.1f} FPS, {run.frames_out} frames, "
                        f"limit ratio {run.limit_ratio:.2f} ({run.limit_stage}), stages "
                        + " ".join(f"{k} {run.stage_ms.get(k, 0):.1f}" for k in STAGES)
                        + f" ms; {run.cores_used:.2f} cores; load {run.load}")
            live = run_threaded(clip, weights, args.skips[0], output, live=True, pose_workers=args.pose_workers)
            runs.append(live)
            log(f"round {round_ + 1} live skip {args.skips[0]}: {live.fps:5.1f} FPS, latency p50 "
                f"{_pct(live.latency_ms, 50):.0f} ms p95 {_pct(live.latency_ms, 95):.0f} ms, dropped "
                f"{live.dropped} of {live.frames_in}; load {live.load}")

        cli = cli_peak_rss(clip, weights, output, max_frames=min(300, runs[0].frames_in),
                           pose_workers=args.pose_workers)
        log(f"python -m realtime: peak RSS {cli['peak_rss_mb']:.0f} MB, {cli['fps']:.1f} FPS")
        lstm, features_ms = lstm_ms_per_batch(weights, repeats=50 if args.quick else 300)
        log(f"LSTM predict() ms per batch {lstm}; features {features_ms} ms per window")

    loads = [r.load[0] for r in runs]
    cores_end = available_cores()
    log(f"benchmark: {cores_end} cores free for this process at the end")
    meta = {
        "skips": list(args.skips), "rounds": args.rounds, "quick": args.quick, "input": described,
        "weights": weights_note, "backend": load_config(None).pose.backend,
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
                   f"Python {platform.python_version()}, OpenCV {cv2.__version__}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python scripts/benchmark.py " + " ".join(argv),
        "load_average": {"start": load_start, "end": load_average(), "min": min(loads), "max": max(loads)},
        "available_cores": {"start": cores_start, "end": cores_end},
    }
    result = report(runs, lstm, features_ms, cli, meta)
    for key, target in result["targets"].items():
        log(f"target {key}: {target['measured']} (target {target['target']}) {'met' if target['met'] else 'MISSED'}")
    log(f"benchmark: load average at the end {meta['load_average']['end']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown(result))
    if args.plot:
        plot(result, runs, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
