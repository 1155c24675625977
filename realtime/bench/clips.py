"""Benchmark inputs: real clips made 640x480 and looped to a set length, written to a temporary folder.

Every pixel of a person comes from a real recording; only scale, arrangement and length
are made here. The clips:
- `one`: one Weizmann person (jumping jacks), the single-person case.
- `exercise`: videos/exercise.avi, three women side by side.
- `tiled`: four Weizmann people, one per quarter of the frame (2x2 grid).
For the camera benchmark, each camera gets a different labelled Weizmann clip at its own 25 fps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import SourceError

SIZE = (640, 480)  # width, height
# Four people doing four different actions; long takes (114-146 frames) so loops are rare.
TILE_SOURCES = ("jack/lena_jack.avi", "pjump/ira_pjump.avi", "wave1/eli_wave1.avi", "wave2/ira_wave2.avi")
ONE_SOURCE = "jack/daria_jack.avi"
EXERCISE_SOURCE = "videos/exercise.avi"
# Cameras: the four labelled actions, two people each, so neighbouring cameras differ.
CAMERA_SOURCES = (
    "jack/daria_jack.avi",
    "pjump/denis_pjump.avi",
    "wave1/eli_wave1.avi",
    "wave2/ido_wave2.avi",
    "jack/ira_jack.avi",
    "pjump/lena_pjump.avi",
    "wave1/daria_wave1.avi",
    "wave2/denis_wave2.avi",
)
CLIP_NAMES = ("one", "exercise", "tiled")


@dataclass(frozen=True)
class BenchClip:
    name: str
    path: Path
    frames: int
    fps: float
    people: int  # fully in view in every frame
    about: str  # where it came from, for the report


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    if not frames:
        raise SourceError(f"cannot decode {path} to build a benchmark clip — check REALTIME_DATASETS")
    return frames


def fit_into(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scaled to fit width x height with its aspect ratio kept, centred on black."""
    scale = min(width / image.shape[1], height / image.shape[0])
    w, h = round(image.shape[1] * scale), round(image.shape[0] * scale)
    canvas = np.zeros((height, width, 3), np.uint8)
    x, y = (width - w) // 2, (height - h) // 2
    canvas[y : y + h, x : x + w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    return canvas


def write_looped(path: Path, frames: Sequence[np.ndarray], total: int, fps: float) -> None:
    """`total` frames, the source looped; mp4v, as recorded files usually are compressed."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise SourceError(f"cannot write the benchmark clip {path}")
    for i in range(total):
        writer.write(frames[i % len(frames)])
    writer.release()


def tile(clips: Sequence[Sequence[np.ndarray]], size: tuple[int, int] = SIZE) -> list[np.ndarray]:
    """A 2x2 grid of four clips, as long as the shortest, each fitted into its quarter."""
    tw, th = size[0] // 2, size[1] // 2
    frames = []
    for i in range(min(len(c) for c in clips)):
        canvas = np.zeros((size[1], size[0], 3), np.uint8)
        for k, clip in enumerate(clips[:4]):
            x, y = (k % 2) * tw, (k // 2) * th
            canvas[y : y + th, x : x + tw] = fit_into(clip[i], tw, th)
        frames.append(canvas)
    return frames


def build_clip(name: str, datasets: Path, folder: Path, seconds: float, fps: float = 30.0) -> BenchClip:
    """One of CLIP_NAMES, `seconds` long at `fps`, written one source frame per output frame.

    At 30 fps the 25 fps Weizmann people move 1.2x and the 10 fps exercise clip 3x faster than
    recorded; what the throughput benchmark needs is the cost of real images of people.
    """
    weizmann = datasets / "weizmann"
    if name == "one":
        frames, people, about = read_frames(weizmann / ONE_SOURCE), 1, f"weizmann/{ONE_SOURCE}"
    elif name == "exercise":
        frames, people, about = read_frames(datasets / EXERCISE_SOURCE), 3, EXERCISE_SOURCE
    elif name == "tiled":
        frames = tile([read_frames(weizmann / s) for s in TILE_SOURCES])
        people, about = 4, "2x2 of weizmann/" + ", ".join(TILE_SOURCES)
    else:
        raise ValueError(f"unknown benchmark clip {name!r}; one of {', '.join(CLIP_NAMES)}")
    frames = [fit_into(f, *SIZE) for f in frames]
    total = max(1, round(seconds * fps))
    path = folder / f"{name}.mp4"
    write_looped(path, frames, total, fps)
    return BenchClip(name, path, total, fps, people, about)


def camera_clips(datasets: Path, folder: Path, count: int, seconds: float, fps: float = 25.0) -> list[BenchClip]:
    """`count` distinct labelled Weizmann clips (fewer if there are fewer sources), at their own 25 fps."""
    clips = []
    for source in CAMERA_SOURCES[:count]:
        frames = [fit_into(f, *SIZE) for f in read_frames(datasets / "weizmann" / source)]
        path = folder / (Path(source).stem + ".mp4")
        total = max(1, round(seconds * fps))
        write_looped(path, frames, total, fps)
        clips.append(BenchClip(Path(source).stem, path, total, fps, 1, f"weizmann/{source}"))
    return clips
