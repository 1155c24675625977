"""Soak test: a 30 fps RTSP stream for N minutes against deliberately slow inference.

    python scripts/soak_rtsp.py [--minutes 10] [--fps 30] [--size 640x480] [--extra-ms 60]

Starts the tests' real RTSP server (tests/rtsp_server.py, Debian's python3 + GStreamer)
looping a real clip, runs the real pipeline headless with MediaPipe, and adds --extra-ms
of sleep to every pose call, in each of the pose pool's threads, so inference cannot keep
up and drop-oldest must work (two threads at ~19 + 60 ms a frame pose ~25 frames a second).
Prints one line per minute (frames read/shown/dropped, capture-to-display latency p50/p95,
RSS) and a final verdict on RSS drift (target: at most 30 MB from the end of minute 1,
when every buffer and model is warm, to the end). Not a unit test: it reports, it does not
assert speed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from pose_wrappers import SlowPose  # noqa: E402
from rtsp_fixtures import RtspServer  # noqa: E402

import torch  # noqa: E402

from realtime.classifier import CLASSES, ActionLSTM, save_checkpoint  # noqa: E402
from realtime.config import load_config  # noqa: E402
from realtime.features import FeatureSpec  # noqa: E402
from realtime.pipeline import Pipeline  # noqa: E402
from realtime.types import FrameResult  # noqa: E402

DATASETS = Path(os.environ.get("REALTIME_DATASETS", REPO.parent / "shared" / "datasets"))
RSS_DRIFT_TARGET_MB = 30.0


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class MinuteReport:
    """A FrameSink that prints one line per minute; keeps only the current minute's samples."""

    def __init__(self, pipeline: Pipeline, t_start: float, every_s: float = 60.0) -> None:
        self.pipeline = pipeline
        self.t_start = t_start
        self.every_s = every_s
        self.minute = 0
        self.latencies: list[float] = []
        self.shown = 0
        self.last_read = self.last_dropped = 0
        self.rows: list[dict] = []

    def write(self, image: np.ndarray, result: FrameResult) -> None:
        now = time.monotonic()
        self.latencies.append((now - result.frame.t_capture) * 1000)
        self.shown += 1
        if now - self.t_start >= self.every_s * (self.minute + 1):
            self.flush()

    def flush(self) -> None:
        read = self.pipeline.capture.frames_read
        dropped = self.pipeline.dropped
        lat = np.array(self.latencies or [np.nan])
        row = {"minute": self.minute + 1, "read": read - self.last_read, "shown": self.shown,
               "dropped": dropped - self.last_dropped, "p50_ms": round(float(np.percentile(lat, 50)), 1),
               "p95_ms": round(float(np.percentile(lat, 95)), 1), "max_ms": round(float(np.max(lat)), 1),
               "rss_mb": round(rss_mb(), 1), "fds": len(os.listdir("/proc/self/fd")),
               "threads": threading.active_count(), "load1": round(os.getloadavg()[0], 2)}
        self.rows.append(row)
        print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
        self.minute += 1
        self.latencies, self.shown = [], 0
        self.last_read, self.last_dropped = read, dropped

    def close(self) -> None:
        pass


def outages(server: RtspServer, stop: threading.Event, every_s: float) -> None:
    """A camera that drops out now and then: killed, back 3 s later on the same port."""
    while not stop.wait(every_s):
        server.kill()
        if stop.wait(3.0):
            return
        server.start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="640x480", help="stream frame size WxH")
    parser.add_argument("--extra-ms", type=float, default=60.0, help="sleep added to every pose call")
    parser.add_argument("--weights", help="action classifier checkpoint (default: poses only)")
    parser.add_argument("--untrained-classifier", action="store_true",
                        help="classify with an untrained model, to exercise windows and the LSTM without weights")
    parser.add_argument("--clip", default=str(DATASETS / "videos" / "exercise.avi"))
    parser.add_argument("--every-s", type=float, default=60.0, help="report interval (a 'minute')")
    parser.add_argument("--outage-every-s", type=float, default=0.0,
                        help="kill the server this often and restart it 3 s later (0 = never)")
    parser.add_argument("--json", help="also write the per-minute rows and the verdict here")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    torch.set_num_threads(1)  # the machine is shared; the LSTM is tiny
    workdir = Path(tempfile.mkdtemp(prefix="soak_"))
    weights = args.weights
    if args.untrained_classifier:
        spec = FeatureSpec()
        weights = str(workdir / "untrained.pt")
        save_checkpoint(weights, ActionLSTM(spec.dim, len(CLASSES)), CLASSES, spec)
    server = RtspServer(Path(args.clip), fps=args.fps, size=(width, height))
    url = server.start()
    try:
        overrides = {"source": url, "output": {"headless": True, "events": str(workdir / "events.jsonl")}}
        if weights:
            overrides["classifier"] = {"weights": weights}
        config = load_config(REPO / "config.yaml", overrides)
        pipeline = Pipeline(config, weights_explicit=bool(weights), notice=lambda msg: print(msg, file=sys.stderr))
        for worker in pipeline.pose_pool.workers:
            worker.backend = SlowPose(worker.backend, args.extra_ms / 1000)
        t_start = time.monotonic()
        report = MinuteReport(pipeline, t_start, args.every_s)
        pipeline.extra_sinks.append(report)
        rss_start = rss_mb()
        print(f"soak: {url} {width}x{height} {args.fps} fps for {args.minutes:g} min, pose + {args.extra_ms:g} ms "
              f"sleep; RSS at start {rss_start:.1f} MB; load {os.getloadavg()[0]:.2f}", flush=True)
        # A second past the end, so the last minute's row is written while running.
        timer = threading.Timer(args.minutes * 60 + 1, pipeline.request_stop, args=("soak done",))
        timer.start()
        if args.outage_every_s > 0:
            threading.Thread(target=outages, args=(server, pipeline.stop, args.outage_every_s), daemon=True).start()
        summary = pipeline.run()
        timer.cancel()
        log = [json.loads(line) for line in (workdir / "events.jsonl").read_text().splitlines()]
        reconnects = sum(1 for e in log if e.get("status") == "reconnected")
    finally:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    rows = report.rows
    # Drift is judged while running (before teardown frees the model), from the end of the
    # first minute, when the model, decoder and queues are warm, to the last full minute.
    warm = rows[0]["rss_mb"] if rows else rss_start
    rss_end = rows[-1]["rss_mb"] if rows else rss_mb()
    verdict = {
        "url": url, "classifier": weights or "none", "fps": args.fps, "size": args.size,
        "extra_ms": args.extra_ms, "minutes": args.minutes,
        "frames_in": summary.frames_in, "frames_out": summary.frames_out, "dropped": summary.dropped,
        "latency_ms_p50": round(summary.latency_ms_p50, 1), "latency_ms_p95": round(summary.latency_ms_p95, 1),
        "rss_start_mb": round(rss_start, 1), "rss_after_minute_1_mb": warm, "rss_end_mb": rss_end,
        "rss_drift_mb": round(rss_end - warm, 1), "reconnects": reconnects, "error": summary.error,
    }
    ok = verdict["rss_drift_mb"] <= RSS_DRIFT_TARGET_MB and summary.error is None
    print(f"soak: {summary.line()}; {reconnects} reconnects")
    print(f"soak: RSS at start {rss_start:.1f} MB, after minute 1 {warm:.1f} MB, at the end {rss_end:.1f} MB, drift "
          f"{verdict['rss_drift_mb']:+.1f} MB (target <= {RSS_DRIFT_TARGET_MB:g}) -> {'OK' if ok else 'FAIL'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"minutes": rows, "verdict": verdict}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
