"""Data loaders: one module per recorded format, all yielding `features.PoseSequence`.

`load("kth", path)` picks the loader by kind. Every loader maps its source's action
names to classifier classes through `labels.yaml` (see labels.py), keeps the source
name in `seq.meta["action"]`, and leaves out actions the YAML maps to null.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from ..features import PoseSequence
from .labels import CLASSES, LABELS_FILE, OTHER, LabelTable, default_labels, labels_from, map_label

KINDS: tuple[str, ...] = ("mhad", "kth", "openpose", "videos", "wild")
# Kinds that are video folders, posed by a pose backend (the others hold poses already).
VIDEO_KINDS: tuple[str, ...] = ("videos", "wild")
# Kinds that are one CSV file.
CSV_KINDS: tuple[str, ...] = ("kth", "openpose")
# Where posed videos are cached (`realtime extract-poses`, `train`, `evaluate`).
DEFAULT_POSE_CACHE = Path(__file__).resolve().parents[2] / "cache" / "poses"

__all__ = [
    "CLASSES",
    "DEFAULT_POSE_CACHE",
    "KINDS",
    "LABELS_FILE",
    "OTHER",
    "VIDEO_KINDS",
    "DatasetError",
    "LabelTable",
    "default_labels",
    "default_pose_backend",
    "default_root",
    "labels_from",
    "load",
    "load_labelled",
    "map_label",
    "parse_data_arg",
]


def default_pose_backend() -> str:
    """The pipeline's default pose backend: data is posed as the live system will pose it."""
    from ..config import PoseConfig

    return PoseConfig().backend


def default_root() -> Path:
    """Where the shared datasets live: $REALTIME_DATASETS, else ../shared/datasets beside the repo."""
    env = os.environ.get("REALTIME_DATASETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def parse_data_arg(text: str) -> tuple[str, Path]:
    """'KIND:PATH' from the command line."""
    kind, sep, path = text.partition(":")
    if not sep or kind not in KINDS or not path:
        raise DatasetError(
            f"--data {text!r} must be KIND:PATH with KIND one of {', '.join(KINDS)}, "
            f"e.g. kth:../shared/datasets/kth_pose/kth_pose_persons21-23.csv"
        )
    return kind, Path(path)


def load(kind: str, path: str | Path, **options: Any) -> list[PoseSequence]:
    """All labelled sequences of one source. Options go to the format's loader."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(
            f"{kind} data {path} does not exist — check the path (datasets live in "
            f"{default_root()} unless REALTIME_DATASETS says otherwise)"
        )
    if kind in CSV_KINDS and path.is_dir():
        raise DatasetError(f"{kind} data {path} is a folder; --data {kind}:FILE takes the CSV file itself")
    if kind in VIDEO_KINDS and not path.is_dir():
        raise DatasetError(f"{kind} data {path} is a file; --data {kind}:DIR takes a folder of <action>/ folders")
    # The formats' loaders share the path argument only; their options differ.
    loader: Callable[..., list[PoseSequence]]
    if kind == "mhad":
        from .mhad import load_mhad as loader
    elif kind == "kth":
        from .kth import load_kth as loader
    elif kind == "openpose":
        from .openpose_csv import load_openpose_csv as loader
    elif kind == "videos":
        from .videos import load_videos as loader
    elif kind == "wild":
        from .wild import load_wild as loader
    else:
        raise DatasetError(f"unknown data kind {kind!r}; choose one of {', '.join(KINDS)}")
    return loader(path, **options)


def load_labelled(
    data_args: list[str],
    cache_dir: Path,
    pose_every: int = 1,
    progress: Callable[[Iterable[Any], str], Iterable[Any]] | None = None,
    subset: int = 0,
    pose_workers: int = 1,
    backend: str | None = None,
    labels: LabelTable | None = None,
) -> list[PoseSequence]:
    """The labelled sequences of every `KIND:PATH` argument, as `train` and `evaluate` take them.

    `progress` wraps the clip iterator of video folders (e.g. a tqdm factory taking a
    description); `subset` keeps at most that many sequences per argument, spread evenly.
    `pose_every`, `pose_workers` and `backend` (default: the pipeline's) apply to video
    folders (see `videos.load_clips`). `labels` maps action names (default: the packaged table).
    """
    sequences: list[PoseSequence] = []
    for text in data_args:
        kind, path = parse_data_arg(text)
        options: dict[str, Any] = {"labels": labels}
        if kind == "mhad":
            options["require_labels"] = True
        elif kind in VIDEO_KINDS:
            options |= {
                "cache_dir": cache_dir,
                "pose_every": pose_every,
                "pose_workers": pose_workers,
                "backend": backend or default_pose_backend(),
                "progress": (lambda it, name=path.name: progress(it, f"poses {name}")) if progress else None,
            }
        seqs = [s for s in load(kind, path, **options) if s.label is not None]
        if subset:
            seqs = seqs[:: max(1, len(seqs) // subset)][:subset]
        sequences += seqs
    return sequences
