"""Soak: a live RTSP stream for minutes against deliberately slow inference.

A real RTSP server (rtsp.py: Debian's python3 + GStreamer) loops a real clip; the real
pipeline runs headless with the configured backend, and every pose call sleeps `extra_ms`
more (`SlowPose`, in each pose thread), so inference cannot keep up and drop-oldest must
work (two threads at ~20 + 60 ms a frame pose ~25 frames a second). One row per interval
(frames read/shown/dropped, capture-to-output latency, RSS, open files, threads) and a
verdict on RSS drift: at most 30 MB from the end of the first interval, when every buffer
and model is warm, to the last. Optionally the server is killed now and then and comes
back 3 s later, like a camera dropping out. It reports; it asserts nothing about speed.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import Config
from ..pipeline import Pipeline
from ..pose import create_backends
from ..pose.faults import SlowPose
from ..types import FrameRecord
from .rtsp import RtspServer
from .throughput import percentile

log = logging.getLogger("realtime.bench")

RSS_DRIFT_TARGET_MB = 30.0


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Interval:
    index: int  # 1 = the first interval ("minute")
    read: int
    shown: int
    dropped: int
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_max: float
    rss_mb: float
    open_files: int
    threads: int
    load: float


class IntervalReport:
    """A pipeline Sink that closes an `Interval` every `every_s`, keeping only the current one's samples."""

    needs_image = False

    def __init__(self, every_s: float) -> None:
        self.pipeline: Pipeline | None = None
        self.every_s = every_s
        self.t_start = time.monotonic()
        self.rows: list[Interval] = []
        self._latencies: list[float] = []
        self._shown = self._last_read = self._last_dropped = 0

    def watch(self, pipeline: Pipeline) -> None:
        """Count frames read and dropped in `pipeline` (which writes to this sink), from now."""
        self.pipeline, self.t_start = pipeline, time.monotonic()

    def write(self, record: FrameRecord) -> None:
        now = time.monotonic()
        self._latencies.append((now - record.t_capture) * 1000)
        self._shown += 1
        if now - self.t_start >= self.every_s * (len(self.rows) + 1):
            self._close_interval()

    def _close_interval(self) -> None:
        p = self.pipeline
        assert p is not None, "watch(pipeline) first"
        read = sum(camera.capture.frames_read for camera in p.cameras.values())
        dropped = sum(p.inbox.dropped.values()) + p.posed.dropped + p.results.dropped
        latency = np.asarray(self._latencies)
        row = Interval(
            len(self.rows) + 1,
            read - self._last_read,
            self._shown,
            dropped - self._last_dropped,
            percentile(latency, 50),
            percentile(latency, 95),
            round(float(latency.max()), 1) if len(latency) else 0.0,
            round(rss_mb(), 1),
            len(os.listdir("/proc/self/fd")),
            threading.active_count(),
            round(os.getloadavg()[0], 2),
        )
        self.rows.append(row)
        log.info("soak: %s", "  ".join(f"{k} {v}" for k, v in asdict(row).items()))
        self._latencies, self._shown = [], 0
        self._last_read, self._last_dropped = read, dropped

    def close(self) -> None:
        pass


def outages(server: RtspServer, stop: threading.Event, every_s: float) -> None:
    """A camera that drops out now and then: killed, back 3 s later on the same port."""
    while not stop.wait(every_s):
        server.kill()
        if stop.wait(3.0):
            return
        server.start()


@dataclass
class SoakPlan:
    clip: Path
    minutes: float = 10.0
    fps: int = 30
    size: tuple[int, int] = (640, 480)
    extra_ms: float = 60.0
    every_s: float = 60.0
    outage_every_s: float = 0.0


def measure(plan: SoakPlan, base: Config) -> dict:
    with tempfile.TemporaryDirectory(prefix="realtime-soak-") as tmp:
        config = copy.deepcopy(base)
        config.cameras, config.max_frames = [], None
        config.output.headless, config.output.video = True, None
        config.output.events = str(Path(tmp) / "events.jsonl")
        backends = [SlowPose(b, plan.extra_ms / 1000) for b in create_backends(config.pose)]
        server = RtspServer(plan.clip, fps=plan.fps, size=plan.size)
        report = IntervalReport(plan.every_s)
        try:
            try:
                config.source = server.start()
            except BaseException:
                for backend in backends:
                    backend.close()
                raise
            pipeline = Pipeline(config, sinks=[report], backends=backends)
            report.watch(pipeline)
            rss_start = rss_mb()
            log.info(
                "soak: %s %dx%d %d fps for %g min, pose + %g ms; RSS at start %.1f MB; load %.2f",
                config.source,
                *plan.size,
                plan.fps,
                plan.minutes,
                plan.extra_ms,
                rss_start,
                os.getloadavg()[0],
            )
            # A second past the end, so the last interval's row is written while running.
            timer = threading.Timer(plan.minutes * 60 + 1, pipeline.request_stop, args=("soak done",))
            timer.start()
            if plan.outage_every_s > 0:
                threading.Thread(target=outages, args=(server, pipeline.stop, plan.outage_every_s), daemon=True).start()
            summary = pipeline.run()
            timer.cancel()
            events = Path(config.output.events).read_text().splitlines()
            reconnects = sum('"reconnected"' in line for line in events)
        finally:
            server.close()
    rows = report.rows
    # Judged while running (teardown frees the model), from the warm end of the first interval.
    warm = rows[0].rss_mb if rows else rss_start
    end = rows[-1].rss_mb if rows else rss_mb()
    camera = next(iter(summary.cameras.values()))
    drift = round(end - warm, 1)
    return {
        "plan": {**asdict(plan), "clip": str(plan.clip)},
        "backend": config.pose.backend,
        "intervals": [asdict(r) for r in rows],
        "frames_in": summary.frames_in,
        "frames_out": summary.frames_out,
        "dropped": summary.dropped,
        "latency_ms_p50": round(camera.latency_ms_p50, 1),
        "latency_ms_p95": round(camera.latency_ms_p95, 1),
        "rss_start_mb": round(rss_start, 1),
        "rss_warm_mb": warm,
        "rss_end_mb": end,
        "rss_drift_mb": drift,
        "rss_drift_target_mb": RSS_DRIFT_TARGET_MB,
        "reconnects": reconnects,
        "error": summary.error,
        "ok": drift <= RSS_DRIFT_TARGET_MB and summary.error is None,
    }
