"""Measure MoveNet MultiPose: how many people it finds per person threshold, and what it costs.

    python -m scripts.measure_movenet thresholds     # people found on real multi-person clips
    python -m scripts.measure_movenet cost [movenet256 movenet320 blazepose ...]   # ms per frame, RSS
    python -m scripts.measure_movenet jitter         # one model vs two dealt round-robin

Run from the repository root (`-m`, so that tests/clips.py, the clip builders the tests use,
is importable). Clips: exercise.avi (3 people in every frame), every Weizmann clip (1 person),
four Weizmann people tiled 2x2 into 640x480, and a Weizmann walker crossing in front of a
person waving (2 people). Prints a table; writes nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from realtime.datasets import default_root
from tests.clips import crossing_clip, fit_into, read_all, tile_clips

if TYPE_CHECKING:
    from realtime.pose.mediapipe_backend import MediaPipePose
    from realtime.pose.movenet_backend import MoveNetPose

THRESHOLDS = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30)
# wild_dev clips with people in the background besides the one labelled (wild_dev/SOURCES.md).
WILD_WITH_BYSTANDERS = ("muneeb_webcam_jabs", "muneeb_webcam_jab_side", "venkat_cable_uppercuts")


def _shrunk(frame: np.ndarray, long_side: int = 256) -> tuple[int, int]:
    scale = long_side / max(frame.shape[:2])
    return round(frame.shape[1] * scale), round(frame.shape[0] * scale)


@dataclass
class Clip:
    name: str
    frames: list[np.ndarray]
    people: int
    tiles: list[tuple[int, int, int, int]] | None = None  # one person expected in each


def load_clips(datasets: Path, work: Path) -> list[Clip]:
    weizmann = datasets / "weizmann"
    tiled = tile_clips(weizmann, work / "tiled.avi")
    crossing = crossing_clip(weizmann, work / "crossing.avi")
    single = [f for path in sorted(weizmann.glob("*/*.avi")) for f in read_all(path)]
    # Every Weizmann frame once more, four at a time in a 2x2 grid (people ~110 px tall in 640x480).
    quarter = len(single) // 4
    all_tiled = []
    for i in range(quarter):
        canvas = np.zeros((480, 640, 3), np.uint8)
        for k, (x1, y1, x2, y2) in enumerate(tiled.tiles):
            canvas[y1:y2, x1:x2] = fit_into(single[k * quarter + i], x2 - x1, y2 - y1)
        all_tiled.append(canvas)
    # Phone, gym and studio clips with one person (and clutter: machines, text, a timer panel), every
    # 3rd frame, shrunk to the model's long side to keep memory down: extra detections are false ones.
    wild = []
    for path in sorted((datasets / "wild_dev").glob("*/*.mp4")):
        if path.stem not in WILD_WITH_BYSTANDERS:
            wild += [fit_into(f, *_shrunk(f)) for f in read_all(path)[::3]]
    return [
        Clip("wild_dev, 19 clips (1)", wild, 1),
        Clip("exercise.avi (3)", read_all(datasets / "videos" / "exercise.avi"), 3),
        Clip("weizmann, 60 clips (1)", single, 1),
        Clip("tiled 2x2 640x480 (4)", read_all(tiled.path), 4, tiled.tiles),
        Clip("weizmann 60 tiled (4)", all_tiled, 4, tiled.tiles),
        Clip("crossing 640x480 (2)", read_all(crossing.path), 2),
    ]


def thresholds(datasets: Path, long_side: int) -> None:
    from realtime.pose.movenet_backend import MoveNetPose

    model = MoveNetPose(long_side=long_side, person_threshold=0.0)
    print(f"long side {long_side}")
    with tempfile.TemporaryDirectory() as tmp:
        clips = load_clips(datasets, Path(tmp))
    print(f"{'clip':26} {'thr':>5} {'exact':>7} {'missed':>7} {'extra/f':>8} {'per-tile':>9}  person scores")
    for clip in clips:
        poses = [model.estimate(f) for f in clip.frames]
        all_scores = np.concatenate([p.person_scores for p in poses])
        top = np.sort(np.stack([np.sort(p.person_scores)[::-1][: clip.people] for p in poses]).ravel())
        for thr in THRESHOLDS:
            counts = np.array([(p.person_scores >= thr).sum() for p in poses])
            exact = np.mean(counts == clip.people)
            missed = np.mean(counts < clip.people)
            extra = np.mean(np.clip(counts - clip.people, 0, None))
            tile_found = ""
            if clip.tiles:
                # Each tile must hold exactly one detection (box centre inside it).
                ok = []
                for p in poses:
                    keep = p.person_scores >= thr
                    centres = (p.boxes[keep, :2] + p.boxes[keep, 2:]) / 2
                    ok.append(
                        [
                            (
                                (centres[:, 0] >= x1)
                                & (centres[:, 0] < x2)
                                & (centres[:, 1] >= y1)
                                & (centres[:, 1] < y2)
                            ).sum()
                            == 1
                            for x1, y1, x2, y2 in clip.tiles
                        ]
                    )
                tile_found = f"{np.mean(ok):.3f}"
            print(f"{clip.name:26} {thr:5.2f} {exact:7.3f} {missed:7.3f} {extra:8.3f} {tile_found:>9}")
        print(
            f"{'':26} top-{clip.people} person scores: p1 {np.percentile(top, 1):.2f} p5 {np.percentile(top, 5):.2f} "
            f"median {np.median(top):.2f}; the rest: p95 {np.percentile(np.setdiff1d(all_scores, top), 95):.2f} "
            f"max {np.setdiff1d(all_scores, top).max():.2f}; {len(poses)} frames"
        )


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cost_one(backend: str, clip_paths: list[str], rounds: int) -> dict:
    """In a fresh process: RSS before and after loading, per clip ms per frame and people per frame.

    Wall time and CPU time of the whole process (MediaPipe computes in threads of its own):
    on a machine shared with other work, CPU time is the steadier measure of cost.
    """
    import cv2

    os.environ.setdefault("GLOG_minloglevel", "2")
    ok, first = cv2.VideoCapture(clip_paths[0]).read()
    assert ok, clip_paths[0]
    before = rss_mb()
    model: MoveNetPose | MediaPipePose
    if backend.startswith("movenet"):
        from realtime.pose.movenet_backend import MoveNetPose

        model = MoveNetPose(long_side=int(backend.removeprefix("movenet") or 256))
    else:
        from realtime.pose.mediapipe_backend import MediaPipePose

        model = MediaPipePose()
    model.estimate(first)  # the first call allocates
    result: dict = {"backend": backend, "rss_added_by_load_mb": round(rss_mb() - before, 1)}
    for path in clip_paths:
        frames = read_all(Path(path))
        wall, cpu, people = [], [], []
        for _ in range(rounds):
            for frame in frames:
                t0, c0 = time.perf_counter(), time.process_time()
                found = model.estimate(frame)
                cpu.append((time.process_time() - c0) * 1000)
                wall.append((time.perf_counter() - t0) * 1000)
                people.append(len(found))
        result[Path(path).stem] = {
            "wall_ms_median": round(statistics.median(wall), 1),
            "cpu_ms_mean": round(statistics.mean(cpu), 1),
            "people_mean": round(statistics.mean(people), 2),
        }
    model.close()
    return result


def cost(datasets: Path, rounds: int, backends: list[str]) -> None:
    import cv2

    weizmann = datasets / "weizmann"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        one = work / "one_person_640x480.avi"
        from tests.clips import write_clip

        write_clip(one, [fit_into(f, 640, 480) for f in read_all(weizmann / "jack" / "lena_jack.avi")])
        four = tile_clips(weizmann, work / "four_people_640x480.avi").path
        assert cv2.VideoCapture(str(one)).isOpened()
        rows = []
        # Alternate backends so load from other processes hits both alike.
        for backend in [*backends, *reversed(backends)]:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "scripts.measure_movenet",
                    "_cost_one",
                    backend,
                    str(one),
                    str(four),
                    "--rounds",
                    str(rounds),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), f"load {os.getloadavg()[0]:.2f}", flush=True)


def jitter(datasets: Path) -> None:
    """Frame-to-frame jitter of one person's joints, one model vs two models taking turns."""
    from realtime.pose.mediapipe_backend import MediaPipePose
    from realtime.pose.movenet_backend import MoveNetPose

    for name in ("jack/lena_jack.avi", "wave2/ira_wave2.avi", "walk/eli_walk.avi", "wave1/eli_wave1.avi"):
        frames = [fit_into(f, 640, 480) for f in read_all(datasets / "weizmann" / name)]
        row = []
        for label, make in (("blazepose", MediaPipePose), ("movenet", MoveNetPose)):
            for workers in (1, 2):
                models = [make() for _ in range(workers)]
                keypoints = np.full((len(frames), 17, 2), np.nan)
                scores = np.zeros((len(frames), 17))
                for i, frame in enumerate(frames):
                    found = models[i % workers].estimate(frame)
                    if len(found):
                        keypoints[i], scores[i] = found.keypoints[0], found.scores[0]
                for model in models:
                    model.close()
                height = np.nanmedian(np.ptp(keypoints[..., 1], axis=1))
                # Second difference: what motion at constant speed would not explain.
                accel = np.linalg.norm(keypoints[2:] - 2 * keypoints[1:-1] + keypoints[:-2], axis=-1)
                sure = (scores[2:] > 0.5) & (scores[1:-1] > 0.5) & (scores[:-2] > 0.5)
                row.append(f"{label} x{workers} {100 * accel[sure].mean() / height:.2f}")
        print(f"{name:24} jitter, % of body height: " + ", ".join(row), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("thresholds", "cost", "jitter", "_cost_one"))
    p.add_argument("args", nargs="*")
    p.add_argument("--rounds", type=int, default=2, help="passes over each clip when timing")
    p.add_argument("--long-side", type=int, default=256, help="MoveNet input long side (thresholds)")
    args = p.parse_args()
    datasets = default_root()
    if args.what == "thresholds":
        thresholds(datasets, args.long_side)
    elif args.what == "jitter":
        jitter(datasets)
    elif args.what == "cost":
        cost(datasets, args.rounds, args.args or ["movenet256", "blazepose"])
    else:
        print(json.dumps(cost_one(args.args[0], args.args[1:], args.rounds)))


if __name__ == "__main__":
    main()
