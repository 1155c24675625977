"""Video folders `<action>/<subject>_<action>.<ext>` (Weizmann layout), posed by our own backend.

Each clip is run through `realtime.pose.create_backend(...)` frame by frame, exactly as
the inference worker does, with time = frame index / fps. Posing only every Nth frame
(`pose_every`) reproduces the pipeline's `skip` setting. Results can be cached as one
.npz per clip, so training and evaluation do not pay for pose estimation twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..features import PoseSequence
from ..types import NUM_KEYPOINTS
from . import DatasetError, map_label

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg")
# Bump when the way poses are extracted changes, so stale caches are not reused.
CACHE_VERSION = 1


def find_clips(root: str | Path) -> list[Path]:
    """Every clip of the layout, sorted; the action is the parent folder's name."""
    root = Path(root)
    clips = sorted(p for p in root.glob("*/*") if p.suffix.lower() in VIDEO_EXTENSIONS)
    if not clips:
        raise DatasetError(f"no videos found under {root}; expected <action>/<subject>_<action>.avi")
    return clips


def subject_of(clip: Path) -> str:
    """`daria_jack.avi` -> `daria`: the name before the last `_<action>`."""
    stem, action = clip.stem, clip.parent.name
    if stem.endswith("_" + action):
        return stem[: -len(action) - 1]
    return stem.split("_")[0]


def cache_path(cache_dir: Path, root: Path, clip: Path, backend: str, pose_every: int,
               pose_workers: int = 1) -> Path:
    rel = clip.relative_to(root).with_suffix("")
    suffix = (f".{backend}" + (f".every{pose_every}" if pose_every > 1 else "")
              + (f".workers{pose_workers}" if pose_workers > 1 else ""))
    return Path(cache_dir) / root.name / (str(rel) + suffix + ".npz")


def pose_clip(clip: Path, backend_name: str = "blazepose", pose_every: int = 1,
              backend_options: dict | None = None, pose_workers: int = 1) -> dict:
    """Run the pose backend over one clip; the first person of each posed frame is kept.

    `pose_workers` > 1 deals the posed frames round-robin to that many backends, exactly as
    the pipeline's pose pool does, to measure what that does to the classifier.
    """
    import cv2

    from ..pose import create_backend
    from ..pose_stage import PoseSchedule, RoundRobinPose

    cap = cv2.VideoCapture(str(clip))
    if not cap.isOpened():
        raise DatasetError(f"video {clip} cannot be opened — is it a readable video file?")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    if not 1.0 <= fps <= 240.0:
        raise DatasetError(f"video {clip} reports {fps} fps; cannot time its frames")
    # A fresh backend per clip: BlazePose tracks across frames, and clips are separate scenes.
    backend = RoundRobinPose([create_backend(backend_name, backend_options) for _ in range(pose_workers)])
    kps, scores, times = [], [], []
    width = height = 0
    try:
        index, schedule = 0, PoseSchedule(skip=pose_every - 1)  # the pipeline's own skipping rule
        while True:
            ok, image = cap.read()
            if not ok:
                break
            height, width = image.shape[:2]
            if schedule.due(index / fps):
                poses = backend.estimate(image)
                if len(poses):
                    kps.append(poses.keypoints[0])
                    scores.append(poses.scores[0])
                    times.append(index / fps)
            index += 1
    finally:
        backend.close()
        cap.release()
    return {
        "keypoints": np.asarray(kps, np.float32).reshape(-1, NUM_KEYPOINTS, 2),
        "scores": np.asarray(scores, np.float32).reshape(-1, NUM_KEYPOINTS),
        "times": np.asarray(times, np.float64),
        "fps": float(fps), "frames": index, "width": width, "height": height,
        "backend": backend_name, "pose_every": pose_every, "pose_workers": pose_workers, "version": CACHE_VERSION,
    }


def _read_cache(path: Path, clip: Path) -> dict | None:
    if not path.is_file() or path.stat().st_mtime < clip.stat().st_mtime:
        return None
    try:
        with np.load(path) as data:
            record = {k: data[k] for k in data.files}
    except (OSError, ValueError):
        return None
    if int(record.get("version", -1)) != CACHE_VERSION:
        return None
    return record


def _write_cache(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **record)
    tmp.replace(path)


def load_videos(root: str | Path, cache_dir: str | Path | None = None, pose_every: int = 1,
                backend: str = "blazepose", backend_options: dict | None = None,
                progress: Callable[[Iterable], Iterable] | None = None,
                clips: list[Path] | None = None, pose_workers: int = 1) -> list[PoseSequence]:
    """All labelled clips under `root` as sequences; poses come from the cache when it is fresh."""
    root = Path(root)
    if pose_every < 1:
        raise DatasetError(f"pose_every must be 1 or more, got {pose_every}")
    if pose_workers < 1:
        raise DatasetError(f"pose_workers must be 1 or more, got {pose_workers}")
    clips = clips if clips is not None else find_clips(root)
    sequences = []
    for clip in (progress(clips) if progress else clips):
        label = map_label("videos", clip.parent.name, clip)
        if label is None:
            continue
        record = None
        path = cache_path(Path(cache_dir), root, clip, backend, pose_every, pose_workers) if cache_dir else None
        if path is not None:
            record = _read_cache(path, clip)
        if record is None:
            record = pose_clip(clip, backend, pose_every, backend_options, pose_workers)
            if path is not None:
                _write_cache(path, record)
        sequences.append(PoseSequence(
            record["keypoints"], record["scores"], record["times"], label=label,
            subject=subject_of(clip), clip=str(clip.relative_to(root)), source="videos",
            meta={"action": clip.parent.name, "fps": float(record["fps"]),
                  "frames": int(record["frames"]), "width": int(record["width"]),
                  "height": int(record["height"]), "pose_every": pose_every,
                  "pose_workers": pose_workers},
        ))
    return sequences
