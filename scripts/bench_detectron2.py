"""Seconds per frame of the Detectron2 pose backend at several INPUT.MIN_SIZE_TEST values.

Runs in .venv-d2:  .venv-d2/bin/python scripts/bench_detectron2.py [--json out.json]

The network is randomly initialised (no pretrained weights can be downloaded here). That is
fine for timing: the backbone, RPN and box head do the same work whatever the weights. The
one part that differs is the keypoint head, which runs once per detected person; an untrained
detector finds few people, so these figures are a slight under-estimate for one person.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATASETS = Path(os.environ.get("REALTIME_DATASETS", REPO.parent / "shared" / "datasets"))
DEFAULT_SOURCES = [DATASETS / "weizmann" / "jack" / "daria_jack.avi", DATASETS / "videos" / "exercise.avi"]


def read_frames(path: Path, count: int) -> list:
    """`count` frames spread over the clip."""
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    if not cap.isOpened() or total <= 0:
        raise SystemExit(f"cannot read {path}; set REALTIME_DATASETS or pass --source")
    frames = []
    for i in range(count):
        cap.set(cv2.CAP_PROP_POS_FRAMES, (i * total) // count)
        ok, image = cap.read()
        if ok:
            frames.append(image)
    cap.release()
    return frames


def time_size(size: int, frames: list, warmup: int) -> dict:
    from realtime.pose import create_backend
    from realtime.pose.detectron2_backend import RANDOM_INIT_FOR_TESTS

    backend = create_backend("detectron2", {"weights": RANDOM_INIT_FOR_TESTS, "min_size_test": size})
    for image in frames[:warmup]:
        backend.estimate(image)
    wall, cpu, people = [], [], 0
    for image in frames:
        w0, c0 = time.perf_counter(), time.process_time()
        people += len(backend.estimate(image))
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    backend.close()
    return {
        "min_size_test": size,
        "frames": len(frames),
        "wall_s_per_frame_median": statistics.median(wall),
        "wall_s_per_frame_max": max(wall),
        "cpu_s_per_frame_median": statistics.median(cpu),
        "people_found": people,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 480, 800])
    parser.add_argument("--source", type=Path, nargs="+", default=DEFAULT_SOURCES, help="video files to take frames from")
    parser.add_argument("--frames", type=int, default=4, help="timed frames per source and size")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 = one core)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for source in args.source:
        frames = read_frames(source, args.frames)
        height, width = frames[0].shape[:2]
        for size in args.sizes:
            row = time_size(size, frames, args.warmup)
            row.update(source=source.name, input=f"{width}x{height}", threads=args.threads)
            rows.append(row)
            print(f"{source.name:18s} {width}x{height}  MIN_SIZE_TEST {size:4d}  "
                  f"wall {row['wall_s_per_frame_median']:.2f} s/frame (max {row['wall_s_per_frame_max']:.2f})  "
                  f"cpu {row['cpu_s_per_frame_median']:.2f} s/frame", flush=True)

    print(f"\ndetectron2 keypoint_rcnn_R_50_FPN_3x, random init, CPU, torch threads={args.threads}, "
          f"{args.frames} frames per cell, median")
    print("| source | input | MIN_SIZE_TEST | wall s/frame | CPU s/frame | pose updates/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['source']} | {r['input']} | {r['min_size_test']} | {r['wall_s_per_frame_median']:.2f} | "
              f"{r['cpu_s_per_frame_median']:.2f} | {1 / r['wall_s_per_frame_median']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"torch_threads": args.threads, "cpu_count": os.cpu_count(),
                                         "load_average": os.getloadavg(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
