"""Seconds per frame of the Detectron2 pose backend at several INPUT.MIN_SIZE_TEST values.

Runs where detectron2 is installed (.venv-d2: `make setup-detectron2`). The network is
randomly initialised unless weights are given (none can be downloaded here). That is fine
for timing: the backbone, RPN and box head do the same work whatever the weights. The one
part that differs is the keypoint head, which runs once per detected person; an untrained
detector finds few people, so these figures slightly under-estimate the cost per person.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import SourceError
from ..pose import create_backend

log = logging.getLogger("realtime.bench")

SOURCES = ("weizmann/jack/daria_jack.avi", "videos/exercise.avi")


@dataclass
class SizeTiming:
    source: str
    input: str  # WxH
    min_size_test: int
    frames: int
    wall_s_per_frame_median: float
    wall_s_per_frame_max: float
    cpu_s_per_frame_median: float
    people_found: int


def spread_frames(path: Path, count: int) -> list[np.ndarray]:
    """`count` frames spread over the clip."""
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if not cap.isOpened() or total <= 0:
        cap.release()
        raise SourceError(f"cannot read {path} — set REALTIME_DATASETS or pass --source")
    frames = []
    for i in range(count):
        cap.set(cv2.CAP_PROP_POS_FRAMES, (i * total) // count)
        ok, image = cap.read()
        if ok:
            frames.append(image)
    cap.release()
    return frames


def time_size(path: Path, frames: list[np.ndarray], size: int, weights: str, warmup: int) -> SizeTiming:
    backend = create_backend("detectron2", {"weights": weights, "min_size_test": size})
    try:
        for image in frames[:warmup]:
            backend.estimate(image)
        wall, cpu, people = [], [], 0
        for image in frames:
            w0, c0 = time.perf_counter(), time.process_time()
            people += len(backend.estimate(image))
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
    finally:
        backend.close()
    height, width = frames[0].shape[:2]
    return SizeTiming(
        path.name,
        f"{width}x{height}",
        size,
        len(frames),
        round(statistics.median(wall), 3),
        round(max(wall), 3),
        round(statistics.median(cpu), 3),
        people,
    )


def measure(sources: list[Path], sizes: list[int], frames: int, warmup: int, threads: int, weights: str | None) -> dict:
    import torch

    from ..pose.detectron2_backend import RANDOM_INIT_FOR_TESTS

    torch.set_num_threads(threads)
    rows = []
    for source in sources:
        images = spread_frames(source, frames)
        for size in sizes:
            row = time_size(source, images, size, weights or RANDOM_INIT_FOR_TESTS, warmup)
            rows.append(row)
            log.info(
                "detectron2: %s %s MIN_SIZE_TEST %d: wall %.2f s/frame (max %.2f), cpu %.2f s/frame",
                row.source,
                row.input,
                size,
                row.wall_s_per_frame_median,
                row.wall_s_per_frame_max,
                row.cpu_s_per_frame_median,
            )
    return {
        "torch_threads": threads,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "weights": weights or "random init",
        "rows": [asdict(r) for r in rows],
    }


def markdown(result: dict) -> str:
    lines = [
        f"detectron2 keypoint_rcnn_R_50_FPN_3x, {result['weights']}, CPU, torch threads "
        f"{result['torch_threads']}, median over the frames",
        "",
        "| source | input | MIN_SIZE_TEST | wall s/frame | CPU s/frame | pose updates/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['source']} | {r['input']} | {r['min_size_test']} | {r['wall_s_per_frame_median']:.2f} | "
            f"{r['cpu_s_per_frame_median']:.2f} | {1 / r['wall_s_per_frame_median']:.2f} |"
        )
    return "\n".join(lines) + "\n"
