"""Video folders `<action>/<subject>_<action>.<ext>` (Weizmann layout) or `<action>/<subject>/<clip>.<ext>`,
posed by our own backend.

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
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..features import PoseSequence
from ..types import NUM_KEYPOINTS, Poses
from . import DatasetError, default_pose_backend
from .labelled_person import labelled_person
from .labels import LabelTable, map_label

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg")
# Bump when the way poses are extracted or stored changes, so stale caches are not reused.
# 2: every person of every posed frame is stored, not the first one.
# 3: a record names the file it was posed from (path, size, modification time).
CACHE_VERSION = 3


@dataclass(frozen=True)
class Clip:
    """One labelled video: where it is, what its folder calls the action, and who is in it."""

    path: Path
    action: str
    subject: str


def find_clips(root: str | Path) -> list[Path]:
    """Every clip of either layout, sorted."""
    root = Path(root)
    clips = sorted(
        p for pattern in ("*/*", "*/*/*") for p in root.glob(pattern) if p.suffix.lower() in VIDEO_EXTENSIONS
    )
    if not clips:
        raise DatasetError(
            f"no videos found under {root}; expected <action>/<subject>_<action>.<ext> "
            "or <action>/<subject>/<clip>.<ext> video files"
        )
    return clips


def clip_entry(root: Path, clip: Path) -> Clip:
    """The action and subject of a clip of either layout.

    `jack/daria_jack.avi` -> (jack, daria); `jack/daria/take2.mp4` -> (jack, daria). Held-out
    validation and cross-validation split by subject, so a name that tells no subject apart
    from its action (`jack/jack_01.avi`, `jack/01.avi`) is refused rather than guessed: every
    clip of a class would become one "person" and a fold could hold out a whole class.
    """
    parts = clip.relative_to(root).parts
    action = parts[0]
    if len(parts) == 3:
        return Clip(clip, action, parts[1])
    stem = clip.stem
    if stem.endswith("_" + action) and len(stem) > len(action) + 1:
        return Clip(clip, action, stem[: -len(action) - 1])
    raise DatasetError(
        f"cannot tell who is in {clip.relative_to(root)}: name clips <action>/<subject>_<action>.<ext> "
        f"(e.g. {action}/alice_{action}{clip.suffix}) or put them in <action>/<subject>/ folders"
    )


def cache_path(
    cache_dir: Path,
    root: Path,
    clip: Path,
    backend: str,
    pose_every: int,
    pose_workers: int = 1,
    backend_options: dict | None = None,
) -> Path:
    """`<cache>/<data set>/<action>/<clip>.<backend>-<digest>[.everyN][.workersN].npz`.

    The digest covers the backend settings (poses made with another person threshold never pass
    for these) and where the clip really is, so two data sets that share a folder name, or a
    link moved to another clip, never share a cache file.
    """
    rel = clip.relative_to(root).with_suffix("")
    key = {"options": backend_options or {}, "clip": str(clip.resolve())}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
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

    from ..capture import truncation_error
    from ..pose import create_backend
    from ..pose_stage import PoseSchedule, RoundRobinPose

    source = file_identity(clip)
    cap = cv2.VideoCapture(str(clip))
    if not cap.isOpened():
        raise DatasetError(f"video {clip} cannot be opened — is it a readable video file?")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    reported_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
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
    # A damaged clip would teach (or score) half an action as a whole one.
    damage = truncation_error(str(clip), index, reported_frames)
    if damage:
        raise DatasetError(f"{damage}; re-encode it or remove it from the data")
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
        "source": source,
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


def file_identity(clip: Path) -> str:
    """Which file, and which version of it: a clip replaced by another (even an older copy) differs."""
    stat = clip.stat()
    return f"{clip.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _read_cache(path: Path, clip: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            record = {k: data[k] for k in data.files}
    except (OSError, ValueError):
        return None
    if int(record.get("version", -1)) != CACHE_VERSION or str(record.get("source")) != file_identity(clip):
        return None
    return record


def _write_cache(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own per writer: two runs posing the same clip (two seeds of `evaluate`) must not
    # rename each other's half-written file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp.npz")
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
    labels: LabelTable | None = None,
) -> list[PoseSequence]:
    """All labelled clips under `root` (Weizmann layout) as sequences of their labelled person."""
    root = Path(root)
    paths = clips if clips is not None else find_clips(root)
    entries = [clip_entry(root, p) for p in paths]
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
        labels,
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
    labels: LabelTable | None = None,
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
    # Every label is checked before minutes of posing, not when its clip's turn comes.
    labelled = [
        (clip, label) for clip in clips if (label := map_label(kind, clip.action, clip.path, labels)) is not None
    ]
    sequences = []
    for clip, label in progress(labelled) if progress else labelled:
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
