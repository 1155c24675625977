"""Throughput: the threaded pipeline against the article's serial loop, per clip and pose backend.

Both designs run in this one process on the same input with the same pose backend,
classifier, drawing and video writer, built from the pipeline's own steps: the serial loop
is `SerialLoop` (one pose model, as the article had) with `OutputStep` and a `VideoSink`; the
threaded run is `Pipeline` itself (pose.workers models posing in parallel). Runs alternate
(serial, threaded, then threaded, serial ...) so that load from other processes hits both
alike. A live run reads the clip at its native rate with drop-oldest queues, like a camera,
for capture-to-output latency and drops.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..capture import open_source
from ..config import Config
from ..errors import RealtimeError
from ..features import TrackWindow
from ..inference_worker import ActionClassification
from ..output import OutputStep
from ..pipeline import Pipeline, load_classifier
from ..pose import backend_options, create_backend
from ..reps import RepSettings
from ..serial import SerialLoop
from ..sinks import VideoSink
from ..types import DEFAULT_CAMERA, FrameRecord
from .clips import CLIP_NAMES, BenchClip, build_clip

log = logging.getLogger("realtime.bench")
STAGES = ("decode", "pose", "classify", "overlay", "write")
CLASSIFIER_BATCHES = (1, 4, 8)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_seconds() -> float:
    """CPU time of the whole process: every thread, native ones too."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(samples: np.ndarray, q: float) -> float:
    return round(float(np.percentile(samples, q)), 2) if len(samples) else 0.0


@dataclass
class Run:
    """One run of one design on one clip."""

    clip: str
    backend: str
    mode: str  # serial | threaded | live
    skip: int
    frames_in: int
    frames_out: int
    seconds: float
    stage_ms: dict[str, float]  # per output frame, one thread's time
    people_mean: float  # people found per posed frame
    cpu_s: float
    pose_workers: int
    load: float  # 1-minute load average as the run started
    dropped: int = 0
    latency_ms: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    @property
    def cores_used(self) -> float:
        """CPU time over wall time: above 1 only if a second core was free to use."""
        return self.cpu_s / self.seconds if self.seconds > 0 else 0.0

    @property
    def limit_ratio(self) -> float:
        """FPS x the slowest stage's time per frame (pose shared by its threads); 1.0 = as fast as it allows."""
        capacity = [ms / (self.pose_workers if stage == "pose" else 1) for stage, ms in self.stage_ms.items()]
        return self.fps * max(capacity, default=0.0) / 1000

    def to_json(self) -> dict:
        return {
            "clip": self.clip,
            "backend": self.backend,
            "mode": self.mode,
            "skip": self.skip,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
            "people_mean": round(self.people_mean, 3),
            "pose_workers": self.pose_workers,
            "cores_used": round(self.cores_used, 2),
            "cpu_ms_per_frame": round(self.cpu_s * 1000 / self.frames_out, 2) if self.frames_out else 0.0,
            "limit_ratio": round(self.limit_ratio, 3),
            "dropped": self.dropped,
            "load": self.load,
            "latency_ms_p50": percentile(self.latency_ms, 50),
            "latency_ms_p95": percentile(self.latency_ms, 95),
            "latency_ms_max": round(float(self.latency_ms.max()), 2) if len(self.latency_ms) else 0.0,
        }


def bench_config(
    base: Config,
    clip: BenchClip,
    backend: str,
    skip: int,
    output: Path | None,
    pose_workers: int = 0,
    live: bool = False,
) -> Config:
    """The base config (config.yaml) set to one headless camera on `clip`."""
    config = copy.deepcopy(base)
    config.source, config.cameras, config.pose_fps, config.max_frames = str(clip.path), [], None, None
    config.pose.backend, config.pose.skip = backend, skip
    config.pose.workers = pose_workers or base.pose.workers
    config.output.headless, config.output.video, config.output.events = True, str(output) if output else None, None
    config.capture.pace = live
    config.capture.policy = "drop_oldest" if live else "auto"
    return config


def run_serial(config: Config, clip: str, max_frames: int | None = None) -> Run:
    """The article's loop in one thread: read, then `SerialLoop` (pose, track, classify, output)."""
    cap, info = open_source(config.source, config.capture)
    sinks = [VideoSink(config.output.video, info.fps)] if config.output.video else []
    output = OutputStep(sinks, config.pose.min_score)
    loop = SerialLoop(
        create_backend(config.pose.backend, backend_options(config.pose)),
        ActionClassification(
            load_classifier(config),
            config.classifier.smoothing_s,
            RepSettings(config.reps.min_period_s, config.reps.max_period_s) if config.reps.enabled else None,
        ),
        config.pose.skip,
        output=output,
    )
    load, index = load_average(), 0
    try:
        t_start, cpu_start = time.perf_counter(), cpu_seconds()
        while max_frames is None or index < max_frames:
            t_asked = time.monotonic()
            ok, image = cap.read()
            t_grab = time.monotonic()
            if not ok:
                break
            loop.process(
                FrameRecord(
                    DEFAULT_CAMERA, index, t_grab, image, t_source=index / info.fps, decode_ms=(t_grab - t_asked) * 1000
                )
            )
            index += 1
        seconds, cpu_s = time.perf_counter() - t_start, cpu_seconds() - cpu_start
    finally:
        output.close()
        cap.release()
        loop.close()
    meter = output.meter(DEFAULT_CAMERA)
    people = meter.summary(index, 0, seconds).people_mean
    return Run(
        clip,
        config.pose.backend,
        "serial",
        config.pose.skip,
        index,
        meter.frames_out,
        seconds,
        meter.stage_times.per_frame_ms(),
        people,
        cpu_s,
        1,
        load,
        0,
        meter.latency.values(),
    )


def run_threaded(config: Config, clip: str) -> Run:
    """`Pipeline` as `python -m realtime` runs it, headless; live when the config paces the file."""
    pipeline = Pipeline(config)
    load, cpu_start = load_average(), cpu_seconds()
    summary = pipeline.run()
    cpu_s = cpu_seconds() - cpu_start
    if summary.error:
        raise RealtimeError(f"threaded run on {clip} failed: {summary.error}")
    camera = summary.cameras[DEFAULT_CAMERA]
    meter = pipeline.output.meter(DEFAULT_CAMERA)
    return Run(
        clip,
        config.pose.backend,
        "live" if config.capture.pace else "threaded",
        config.pose.skip,
        camera.frames_in,
        camera.frames_out,
        camera.frames_out / camera.fps if camera.fps else 0.0,
        meter.stage_times.per_frame_ms(),
        camera.people_mean,
        cpu_s,
        len(pipeline.backends),
        load,
        camera.dropped,
        meter.latency.values(),
    )


def cli_peak_rss(config_path: Path | None, clip: BenchClip, backend: str, folder: Path, max_frames: int) -> dict:
    """Peak RSS of `python -m realtime` as a user runs it (a fresh process, nothing else loaded).

    Read from the child's own VmHWM while it runs: getrusage's figure for children would also
    count the moment the child was still a fork of this large process.
    """
    import realtime

    events, log_path = folder / "cli.jsonl", folder / "cli.log"
    config = ["--config", str(config_path)] if config_path else []
    command = [
        sys.executable,
        "-m",
        "realtime",
        *config,
        "--source",
        str(clip.path),
        "--pose",
        backend,
        "--headless",
        "--output",
        str(folder / "cli.mp4"),
        "--events",
        str(events),
        "--max-frames",
        str(max_frames),
    ]
    # This very package, wherever it was imported from; the folder is the benchmark's own.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(realtime.__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep),
    }
    with open(log_path, "w") as log_file:  # a file, not a pipe: a full pipe would stall the child
        proc = subprocess.Popen(command, cwd=folder, stdout=log_file, stderr=log_file, env=env)
        peak_kb, status = 0, Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):  # the child may just have ended
                peak_kb = max(
                    [peak_kb]
                    + [int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM:")]
                )
            time.sleep(0.05)
    if proc.returncode != 0:
        raise RealtimeError(f"python -m realtime failed: {log_path.read_text().strip().splitlines()[-1:]}")
    summary = [json.loads(line) for line in events.read_text().splitlines() if '"summary"' in line][-1]
    return {
        "backend": backend,
        "clip": clip.name,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "fps": summary["fps"],
        "frames_out": summary["frames_out"],
    }


def classifier_timing(config: Config, repeats: int) -> tuple[dict[str, float], float, str]:
    """Median ms of the classifier on B windows at once (as the classify stage calls it), of one
    live window's features, and the classifier's architecture."""
    classifier = load_classifier(config)
    if classifier is None:
        raise RealtimeError("no classifier weights to time — pass --weights")
    spec, rng = classifier.spec, np.random.default_rng(0)

    def median_ms(call: Callable[[], object]) -> float:
        for _ in range(10):
            call()
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            call()
            samples.append((time.perf_counter() - t0) * 1000)
        return round(statistics.median(samples), 3)

    batches = {}
    for batch in CLASSIFIER_BATCHES:
        windows = rng.standard_normal((batch, spec.window, spec.dim)).astype(np.float32)
        batches[str(batch)] = median_ms(functools.partial(classifier.predict_proba, windows))
    window = TrackWindow(spec)
    base = rng.uniform(100, 400, (17, 2)).astype(np.float32)
    for i in range(60):  # two seconds of a person at 30 fps
        window.add(i / 30, base + rng.normal(0, 3, (17, 2)).astype(np.float32), np.full(17, 0.9, np.float32))
    return batches, median_ms(window.features), classifier.checkpoint.arch


def available_cores(seconds: float = 1.0) -> float:
    """How many cores this process can get now: one busy thread per CPU, CPU time over wall time.

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


def summarise(runs: list[Run]) -> list[dict]:
    """One row per clip, backend and skip: medians over rounds, ratios per adjacent pair (same load)."""
    rows = []
    for key in dict.fromkeys((r.clip, r.backend, r.skip) for r in runs if r.mode != "live"):
        serial = [r for r in runs if (r.clip, r.backend, r.skip) == key and r.mode == "serial"]
        threaded = [r for r in runs if (r.clip, r.backend, r.skip) == key and r.mode == "threaded"]
        live = [r for r in runs if (r.clip, r.backend, r.skip) == key and r.mode == "live"]
        ratios = [t.fps / s.fps for s, t in zip(serial, threaded, strict=True) if s.fps > 0]

        def stages(group: list[Run]) -> dict[str, float]:
            return {k: round(statistics.fmean(r.stage_ms.get(k, 0.0) for r in group), 3) for k in STAGES}

        serial_fps = round(statistics.median(r.fps for r in serial), 2)
        threaded_fps = round(statistics.median(r.fps for r in threaded), 2)
        row: dict = {
            "clip": key[0],
            "backend": key[1],
            "skip": key[2],
            "serial_fps": serial_fps,
            "threaded_fps": threaded_fps,
            "serial_ms_per_frame": round(1000 / serial_fps, 2) if serial_fps else 0.0,
            "threaded_ms_per_frame": round(1000 / threaded_fps, 2) if threaded_fps else 0.0,
            "speedup": round(statistics.median(ratios), 3) if ratios else 0.0,
            "people_mean": round(statistics.fmean(r.people_mean for r in threaded), 3),
            "serial_people_mean": round(statistics.fmean(r.people_mean for r in serial), 3),
            "frames": threaded[0].frames_out,
            "serial_frames": serial[0].frames_out,
            "pose_workers": threaded[0].pose_workers,
            "stage_ms": stages(threaded),
            "serial_stage_ms": stages(serial),
            "limit_ratio": round(statistics.median(r.limit_ratio for r in threaded), 3),
            "threaded_cores_used": round(statistics.median(r.cores_used for r in threaded), 2),
            "serial_cores_used": round(statistics.median(r.cores_used for r in serial), 2),
            # CPU time per frame hardly depends on what else runs: the figure to compare across loads.
            "threaded_cpu_ms_per_frame": round(statistics.median(r.to_json()["cpu_ms_per_frame"] for r in threaded), 2),
            "serial_cpu_ms_per_frame": round(statistics.median(r.to_json()["cpu_ms_per_frame"] for r in serial), 2),
        }
        if live:
            latency = np.concatenate([r.latency_ms for r in live])
            row["live"] = {
                "frames_in": sum(r.frames_in for r in live),
                "frames_out": sum(r.frames_out for r in live),
                "dropped": sum(r.dropped for r in live),
                "fps": round(statistics.median(r.fps for r in live), 2),
                "latency_ms_p50": percentile(latency, 50),
                "latency_ms_p95": percentile(latency, 95),
                "latency_ms_max": round(float(latency.max()), 2) if len(latency) else 0.0,
            }
        rows.append(row)
    return rows


def targets(rows: list[dict], people: dict[str, int], headline: str, classifier_ms: dict[str, float]) -> list[dict]:
    """Issue 12's targets (640x480, skip 0, the default backend, this machine), for the rows measured."""

    def row(clip: str, backend: str) -> dict | None:
        return next((r for r in rows if (r["clip"], r["backend"], r["skip"]) == (clip, backend, 0)), None)

    found: list[tuple[str, str, float, float]] = []
    tiled, one, one_blaze = row("tiled", headline), row("one", headline), row("one", "blazepose")
    if tiled:
        found += [
            ("threaded FPS, 4 people", ">=", 30.0, tiled["threaded_fps"]),
            ("threaded / serial, 4 people", ">=", 1.5, tiled["speedup"]),
        ]
        if "live" in tiled:
            found.append(("live latency p95 ms, 4 people", "<=", 100.0, tiled["live"]["latency_ms_p95"]))
    if one and one_blaze and headline != "blazepose":
        found.append(
            (
                "one person: threaded FPS / BlazePose's",
                ">=",
                1.0,
                round(one["threaded_fps"] / one_blaze["threaded_fps"], 3),
            )
        )
    for clip in ("exercise", "tiled"):
        if (r := row(clip, headline)) is not None:
            found.append(
                (f"people found per frame / true count, {clip}", ">=", 0.95, round(r["people_mean"] / people[clip], 3))
            )
    found.append(("classifier ms per batch of 8 windows", "<=", 1.0, classifier_ms["8"]))
    return [
        {
            "measure": name,
            "op": op,
            "target": target,
            "measured": measured,
            "met": measured >= target if op == ">=" else measured <= target,
        }
        for name, op, target, measured in found
    ]


@dataclass
class ThroughputPlan:
    clips: tuple[str, ...] = CLIP_NAMES
    backends: tuple[str, ...] = ("movenet", "blazepose")
    skips: tuple[int, ...] = (0,)
    rounds: int = 3
    seconds: float = 10.0
    pose_workers: int = 0  # 0: the config's (auto: one per core, up to 2)
    quick: bool = False


def measure(plan: ThroughputPlan, base: Config, config_path: Path | None, datasets: Path) -> dict:
    """Every run of the plan, summarised; JSON-ready. Nothing is written outside a temporary folder."""
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_start": list(np.round(os.getloadavg(), 2)),
        "cores_start": available_cores(),
        "plan": vars(plan),
        "default_backend": base.pose.backend,
        "weights": base.classifier.weights or "shipped weights/action_classifier.pt",
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, OpenCV {cv2.__version__}",
    }
    log.info(
        "benchmark: load average %s on %s CPUs; %s cores free for this process",
        meta["load_start"],
        os.cpu_count(),
        meta["cores_start"],
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="realtime-bench-") as tmp_name:
        tmp = Path(tmp_name)
        clips = {name: build_clip(name, datasets, tmp, plan.seconds) for name in plan.clips}
        meta["clips"] = {
            c.name: {"about": c.about, "people": c.people, "frames": c.frames, "fps": c.fps} for c in clips.values()
        }
        output = tmp / "out.mp4"

        def config(clip: BenchClip, backend: str, skip: int, live: bool = False) -> Config:
            return bench_config(base, clip, backend, skip, output, plan.pose_workers, live)

        first = clips[plan.clips[0]]
        for backend in plan.backends:  # warm-up, not counted: first-use costs hit neither design
            run_serial(config(first, backend, 0), first.name, max_frames=15)
            warm = config(first, backend, 0)
            warm.max_frames = 15
            run_threaded(warm, first.name)
        cells = [(clip, backend, skip) for clip in clips.values() for backend in plan.backends for skip in plan.skips]
        for round_ in range(plan.rounds):
            for i, (clip, backend, skip) in enumerate(cells):
                # Swap the order every time so neither design always runs first.
                for mode in ("serial", "threaded") if (round_ + i) % 2 == 0 else ("threaded", "serial"):
                    run = (
                        run_serial(config(clip, backend, skip), clip.name)
                        if mode == "serial"
                        else run_threaded(config(clip, backend, skip), clip.name)
                    )
                    runs.append(run)
                    log.info(
                        "round %d %s %s skip %d %-8s %6.1f FPS, %.2f people/frame, %.2f cores, load %.2f",
                        round_ + 1,
                        clip.name,
                        backend,
                        skip,
                        mode,
                        run.fps,
                        run.people_mean,
                        run.cores_used,
                        run.load,
                    )
            for clip in clips.values():
                for backend in plan.backends:
                    run = run_threaded(config(clip, backend, plan.skips[0], live=True), clip.name)
                    runs.append(run)
                    log.info(
                        "round %d %s %s live: latency p50 %.0f ms p95 %.0f ms, %d of %d dropped, load %.2f",
                        round_ + 1,
                        clip.name,
                        backend,
                        percentile(run.latency_ms, 50),
                        percentile(run.latency_ms, 95),
                        run.dropped,
                        run.frames_in,
                        run.load,
                    )
        cli = cli_peak_rss(config_path, first, plan.backends[0], tmp, max_frames=min(300, first.frames))
        log.info("python -m realtime (%s): peak RSS %.0f MB", cli["backend"], cli["peak_rss_mb"])
        classifier_ms, features_ms, arch = classifier_timing(base, repeats=50 if plan.quick else 300)
    meta.update(
        load_end=list(np.round(os.getloadavg(), 2)),
        cores_end=available_cores(),
        load_min=min(r.load for r in runs),
        load_max=max(r.load for r in runs),
    )
    rows = summarise(runs)
    headline = meta["headline_backend"] = base.pose.backend if base.pose.backend in plan.backends else plan.backends[0]
    return {
        "meta": meta,
        "rows": rows,
        "cli": cli,
        "classifier_arch": arch,
        "classifier_ms_per_batch": classifier_ms,
        "features_ms_per_window": features_ms,
        "targets": targets(rows, {c.name: c.people for c in clips.values()}, headline, classifier_ms),
        "runs": [r.to_json() for r in runs],
    }
