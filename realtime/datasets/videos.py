"""Video folders `<action>/<subject>_<action>.<ext>` (Weizmann layout), posed by our own backend.

Each clip is run through `realtime.pose.create_backend(...)` frame by frame, exactly as
the inference worker does, with time = frame index / fps. Posing only every Nth frame
(`pose_every`) reproduces the pipeline's `skip` setting. Every person of every posed frame
is cached (one .npz per clip), so training and evaluation do not pay for pose estimation
twice, and the labelled person is chosen from the cache by `labelled_person`'s rule. Unless
told otherwise, a backend runs with the pipeline's default settings (config.py), so the
classifier learns from poses like those it will see live.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..features import PoseSequence
from ..types import NUM_KEYPOINTS, Poses
from . import DatasetError, default_pose_backend, map_label
from .labelled_person import labelled_person

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg")
# Bump when the way poses are extracted or stored changes, so stale caches are not reused.
# 2: every person of every posed frame is stored, not the first one.
CACHE_VERSION = 2


@dataclass(frozen=True)
class Clip:
    """One labelled video: where it is, what its folder calls the action, and who is in it."""

    path: Path
    action: str
    subject: str


def find_clips(root: str | Path) -> list[Path]:
    """Every clip of the layout, sorted; the action is the parent folder's name."""
    root = Path(root)
    clips = sorted(p for p in root.glob("*/*") if p.suffix.lower() in VIDEO_EXTENSIONS)
    if not clips:
        raise DatasetError(f"no videos found under {root}; expected <action>/<clip> video files")
    return clips


def subject_of(clip: Path) -> str:
    """`daria_jack.avi` -> `daria`: the name before the last `_<action>`."""
    stem, action = clip.stem, clip.parent.name
    if stem.endswith("_" + action):
        return stem[: -len(action) - 1]
    return stem.split("_")[0]


def cache_path(
    cache_dir: Path,
    root: Path,
    clip: Path,
    backend: str,
    pose_every: int,
    pose_workers: int = 1,
    backend_options: dict | None = None,
) -> Path:
    """`<cache>/<data set>/<action>/<clip>.<backend>-<options digest>[.everyN][.workersN].npz`: poses
    made with other backend settings (e.g. another person threshold) never pass for these."""
    rel = clip.relative_to(root).with_suffix("")
    digest = hashlib.sha256(json.dumps(backend_options or {}, sort_keys=True).encode()).hexdigest()[:8]
    suffix = (
        f".{backend}-{digest}"
        + (f".every{pose_every}" if pose_every > 1 else "")
        + (f".workers{pose_workers}" if pose_workers > 1 else "")
    )
    return Path(cache_dir) / root.name / (str(rel) + suffix + ".npz")


def default_backend_options(backend: str) -> dict:
    """The pipeline's default settings of a pose backend (config.yaml's pose section unchanged)."""
    from ..config import PoseConfig
    from ..pose import backend_options

    return backend_options(PoseConfig(backend=backend))


def pose_clip(
    clip: Path, backend_name: str, pose_every: int = 1, backend_options: dict | None = None, pose_workers: int = 1
) -> dict:
    """Run the pose backend over one clip and keep every person of every posed frame.

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
    frames: list[Poses] = []
    times: list[float] = []
    width = height = 0
    try:
        index, schedule = 0, PoseSchedule(skip=pose_every - 1)  # the pipeline's own skipping rule
        while True:
            ok, image = cap.read()
            if not ok:
                break
            height, width = image.shape[:2]
            if schedule.due(index / fps):
                frames.append(backend.estimate(image))
                times.append(index / fps)
            index += 1
    finally:
        backend.close()
        cap.release()
    return {
        **pack_frames(frames),
        "times": np.asarray(times, np.float64),
        "fps": float(fps),
        "frames": index,
        "width": width,
        "height": height,
        "backend": backend_name,
        "pose_every": pose_every,
        "pose_workers": pose_workers,
        "version": CACHE_VERSION,
    }


def pack_frames(frames: list[Poses]) -> dict[str, np.ndarray]:
    """Posed frames as flat arrays (people of all frames one after another, and a count per frame)."""
    people = [p for p in frames if len(p)]
    return {
        "counts": np.array([len(p) for p in frames], np.int32),
        "keypoints": np.concatenate([p.keypoints for p in people])
        if people
        else np.zeros((0, NUM_KEYPOINTS, 2), np.float32),
        "scores": np.concatenate([p.scores for p in people]) if people else np.zeros((0, NUM_KEYPOINTS), np.float32),
        "boxes": np.concatenate([p.boxes for p in people]) if people else np.zeros((0, 4), np.float32),
        "person_scores": np.concatenate([p.person_scores for p in people]) if people else np.zeros(0, np.float32),
    }


def unpack_frames(record: dict) -> list[Poses]:
    """The inverse of `pack_frames`."""
    ends = np.cumsum(record["counts"])
    starts = ends - record["counts"]
    person = record.get("person_scores", np.zeros(len(record["keypoints"]), np.float32))
    return [
        Poses(record["keypoints"][a:b], record["scores"][a:b], record["boxes"][a:b], person[a:b])
        for a, b in zip(starts, ends, strict=True)
    ]


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


def load_videos(
    root: str | Path,
    cache_dir: str | Path | None = None,
    pose_every: int = 1,
    backend: str | None = None,
    backend_options: dict | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    clips: list[Path] | None = None,
    pose_workers: int = 1,
) -> list[PoseSequence]:
    """All labelled clips under `root` (Weizmann layout) as sequences of their labelled person."""
    root = Path(root)
    paths = clips if clips is not None else find_clips(root)
    entries = [Clip(p, p.parent.name, subject_of(p)) for p in paths]
    return load_clips(
        root,
        entries,
        "videos",
        cache_dir,
        pose_every,
        backend or default_pose_backend(),
        backend_options,
        progress,
        pose_workers,
    )


def load_clips(
    root: Path,
    clips: list[Clip],
    kind: str,
    cache_dir: str | Path | None = None,
    pose_every: int = 1,
    backend: str = "movenet",
    backend_options: dict | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    pose_workers: int = 1,
) -> list[PoseSequence]:
    """Labelled clips as sequences of their labelled person; poses come from the cache when it is fresh.

    `kind` names the labels.yaml section that maps the clips' actions; the data set's name
    (the sequences' `source`) is the folder's name, e.g. weizmann or wild_dev.
    """
    if backend_options is None:
        backend_options = default_backend_options(backend)
    if pose_every < 1:
        raise DatasetError(f"pose_every must be 1 or more, got {pose_every}")
    if pose_workers < 1:
        raise DatasetError(f"pose_workers must be 1 or more, got {pose_workers}")
    sequences = []
    for clip in progress(clips) if progress else clips:
        label = map_label(kind, clip.action, clip.path)
        if label is None:
            continue
        record = None
        path = (
            cache_path(Path(cache_dir), root, clip.path, backend, pose_every, pose_workers, backend_options)
            if cache_dir
            else None
        )
        if path is not None:
            record = _read_cache(path, clip.path)
        if record is None:
            record = pose_clip(clip.path, backend, pose_every, backend_options, pose_workers)
            if path is not None:
                _write_cache(path, record)
        keypoints, scores, times, choice = labelled_person(unpack_frames(record), record["times"])
        sequences.append(
            PoseSequence(
                keypoints,
                scores,
                times,
                label=label,
                subject=clip.subject,
                clip=str(clip.path.relative_to(root)),
                source=root.name,
                meta={
                    "action": clip.action,
                    "fps": float(record["fps"]),
                    "frames": int(record["frames"]),
                    "width": int(record["width"]),
                    "height": int(record["height"]),
                    "pose_every": pose_every,
                    "pose_workers": pose_workers,
                    "backend": backend,
                    **choice,
                },
            )
        )
    return sequences
