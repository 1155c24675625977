"""How fast the web app analyses an upload end to end, and what each result format costs.

One job per codec through the real app (Flask's test client, the real job runner and
pipeline; the pose model loads per job, as in the server), then, for comparison, the same
pipeline from Python writing VP8 WebM and fragmented H.264 MP4 (what `--output x.mp4` writes).
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import Config
from ..errors import RealtimeError
from ..pipeline import Pipeline

log = logging.getLogger("realtime.bench")

WEB_CODECS = ("h264", "vp8")
JOB_TIMEOUT_S = 600.0


@dataclass
class JobTiming:
    how: str  # "web job, h264" | "pipeline, VP8 WebM" ...
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def web_job(video: Path, work: Path, codec: str, base: Config, max_frames: int | None) -> JobTiming:
    from ..web.app import WebSettings, close_app, create_app
    from ..web.jobs import JobSettings

    settings = JobSettings(config=base, work_dir=str(work), video_codec=codec, max_frames=max_frames)
    app = create_app(WebSettings(jobs=settings))
    client = app.test_client()
    try:
        t0 = time.monotonic()
        with open(video, "rb") as f:
            job_id = client.post("/api/jobs", data={"video": (f, video.name)}).get_json()["id"]
        while (state := client.get(f"/api/jobs/{job_id}").get_json())["status"] not in ("done", "failed"):
            if time.monotonic() - t0 > JOB_TIMEOUT_S:
                raise RealtimeError(f"web job on {video.name} did not finish within {JOB_TIMEOUT_S:g} s")
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
    finally:
        close_app(app)
    if state["status"] != "done":
        raise RealtimeError(f"web job on {video.name} ({codec}) failed: {state.get('error')}")
    return JobTiming(f"web job, {codec} result + events", state["frames"], elapsed)


def plain_run(base: Config, video: Path, out: Path, label: str, max_frames: int | None) -> JobTiming:
    config = copy.deepcopy(base)
    config.source, config.cameras, config.max_frames = str(video), [], max_frames
    config.output.headless, config.output.video, config.output.events = True, str(out), None
    config.capture.policy, config.capture.pace = "lossless", False
    t0 = time.monotonic()  # construction included, as in a web job (the pose model loads per job)
    summary = Pipeline(config).run()
    if summary.error:
        raise RealtimeError(f"pipeline on {video.name} failed: {summary.error}")
    return JobTiming(f"pipeline, {label}", summary.frames_out, time.monotonic() - t0)


def measure(base: Config, video: Path, max_frames: int | None = None) -> dict:
    timings = []
    with tempfile.TemporaryDirectory(prefix="realtime-webjob-") as tmp:
        work = Path(tmp)
        # The server's jobs start from this run's config, flags included, as a server's from its file.
        web_job(video, work / "warm", "vp8", base, max_frames)  # warm-up: imports happen in the first job
        for codec in WEB_CODECS:
            timings.append(web_job(video, work / codec, codec, base, max_frames))
        for name, label in (("plain.webm", "VP8 WebM"), ("plain.mp4", "H.264 fragmented MP4")):
            timings.append(plain_run(base, video, work / name, label, max_frames))
    for t in timings:
        log.info("web-job: %s: %d frames in %.2f s = %.1f frames/s", t.how, t.frames, t.seconds, t.fps)
    return {
        "video": str(video),
        "backend": base.pose.backend,
        "timings": [{**asdict(t), "seconds": round(t.seconds, 3), "fps": round(t.fps, 2)} for t in timings],
    }
