"""How fast the web app analyses an upload, end to end, and what the browser-playable WebM costs.

    python scripts/bench_web_job.py [VIDEO]      (default: ../shared/datasets/videos/exercise.avi)

Runs one job through the real app (Flask test client, the real pipeline) and, for comparison,
the same pipeline from Python writing VP8 WebM and OpenCV's mp4v (which browsers do not play).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def web_job(video: Path, work: str, codec: str) -> tuple[float, dict]:
    from realtime.web.app import WebSettings, close_app, create_app
    from realtime.web.jobs import JobSettings

    app = create_app(WebSettings(jobs=JobSettings(work_dir=work, video_codec=codec)))
    client = app.test_client()
    try:
        t0 = time.monotonic()
        with open(video, "rb") as f:
            job_id = client.post("/api/jobs", data={"video": (f, video.name)}).get_json()["id"]
        while (state := client.get(f"/api/jobs/{job_id}").get_json())["status"] not in ("done", "failed"):
            time.sleep(0.05)
        return time.monotonic() - t0, state
    finally:
        close_app(app)


def plain_run(video: Path, out: Path) -> tuple[float, int]:
    from realtime.config import load_config
    from realtime.pipeline import Pipeline

    config = load_config(None, {"source": str(video), "output": {"headless": True, "video": str(out)},
                                "capture": {"policy": "lossless"}})
    t0 = time.monotonic()  # construction included, as in a web job (the pose model loads per job)
    pipeline = Pipeline(config)
    summary = pipeline.run()
    return time.monotonic() - t0, summary.frames_out


def main() -> None:
    sys.path.insert(0, str(REPO))  # run as a file: the repository's package, not an installed one
    from realtime import native

    native.configure()  # before cv2 and the pose models load, as `python -m realtime` does
    datasets = Path(os.environ.get("REALTIME_DATASETS", REPO.parent / "shared" / "datasets"))
    video = Path(sys.argv[1]) if len(sys.argv) > 1 else datasets / "videos" / "exercise.avi"
    with tempfile.TemporaryDirectory() as work:
        web_job(video, work, "vp8")  # warm-up: imports happen in the first job
        for codec in ("h264", "vp8"):
            elapsed, state = web_job(video, work, codec)
            print(f"web job, upload to {codec} result + events: {state['frames']} frames in {elapsed:.2f} s = "
                  f"{state['frames'] / elapsed:.1f} frames/s, status {state['status']}")
        for name, label in (("plain.webm", "VP8 WebM"), ("plain.mp4", "mp4v (browsers can't play)")):
            elapsed, frames = plain_run(video, Path(work) / name)
            print(f"CLI pipeline writing {label}: {frames} frames in {elapsed:.2f} s = "
                  f"{frames / elapsed:.1f} frames/s")


if __name__ == "__main__":
    main()
