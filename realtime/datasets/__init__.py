"""Data loaders: one module per recorded format, all yielding `features.PoseSequence`.

`load("kth", path)` picks the loader by kind. Every loader maps its source's action
names to classifier classes through `realtime/data/labels.yaml`, keeps the source
name in `seq.meta["action"]`, and leaves out actions the YAML maps to null.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml

from ..classifier import CLASSES
from ..errors import RealtimeError
from ..features import PoseSequence

KINDS: tuple[str, ...] = ("mhad", "kth", "openpose", "videos")
LABELS_FILE = Path(__file__).resolve().parent.parent / "data" / "labels.yaml"
# Where posed videos are cached (scripts/extract_poses.py, train.py, evaluate.py).
DEFAULT_POSE_CACHE = Path(__file__).resolve().parents[2] / "cache" / "poses"


class DatasetError(RealtimeError):
    """A data file or folder is missing, malformed, or holds an unmapped action."""


def default_root() -> Path:
    """Where the shared datasets live: $REALTIME_DATASETS, else ../shared/datasets beside the repo."""
    env = os.environ.get("REALTIME_DATASETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


@lru_cache(maxsize=None)
def _label_table() -> dict:
    try:
        table = yaml.safe_load(LABELS_FILE.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetError(f"label mapping {LABELS_FILE} cannot be read ({exc}) — reinstall the package") from None
    for kind, mapping in table.items():
        for action, cls in mapping.items():
            if cls is not None and cls not in CLASSES:
                raise DatasetError(f"{LABELS_FILE}: {kind}.{action} maps to {cls!r}, not one of {list(CLASSES)}")
    return table


def label_map(kind: str) -> dict[str, str | None]:
    """The action-name -> class mapping of one data format (from labels.yaml)."""
    table = _label_table()
    if kind not in table:
        raise DatasetError(f"{LABELS_FILE} has no section {kind!r}; add one mapping its actions to classes")
    return {str(k): v for k, v in table[kind].items()}


def map_label(kind: str, action: str, where: str | Path) -> str | None:
    """Class of a source action name; an unmapped name is an error, never a silent OTHER."""
    mapping = label_map(kind)
    if action not in mapping:
        raise DatasetError(f"{where}: action {action!r} is not in the {kind!r} section of {LABELS_FILE}; "
                           f"add it (a class or null)")
    return mapping[action]


def parse_data_arg(text: str) -> tuple[str, Path]:
    """'KIND:PATH' from the command line."""
    kind, sep, path = text.partition(":")
    if not sep or kind not in KINDS or not path:
        raise DatasetError(f"--data {text!r} must be KIND:PATH with KIND one of {', '.join(KINDS)}, "
                           f"e.g. kth:../shared/datasets/kth_pose/kth_pose_persons21-23.csv")
    return kind, Path(path)


def load(kind: str, path: str | Path, **options) -> list[PoseSequence]:
    """All labelled sequences of one source. Options go to the format's loader."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{kind} data {path} does not exist — check the path (datasets live in "
                           f"{default_root()} unless REALTIME_DATASETS says otherwise)")
    if kind == "mhad":
        from .mhad import load_mhad as loader
    elif kind == "kth":
        from .kth import load_kth as loader
    elif kind == "openpose":
        from .openpose_csv import load_openpose_csv as loader
    elif kind == "videos":
        from .videos import load_videos as loader
    else:
        raise DatasetError(f"unknown data kind {kind!r}; choose one of {', '.join(KINDS)}")
    return loader(path, **options)


def load_labelled(data_args: list[str], cache_dir: Path, pose_every: int = 1, progress=None,
                  subset: int = 0, pose_workers: int = 1) -> list[PoseSequence]:
    """The labelled sequences of every `KIND:PATH` argument, as train.py and evaluate.py take them.

    `progress` wraps the clip iterator of video folders (e.g. a tqdm factory taking a
    description); `subset` keeps at most that many sequences per argument, spread evenly.
    `pose_every` and `pose_workers` apply to video folders (see `load_videos`).
    """
    sequences: list[PoseSequence] = []
    for text in data_args:
        kind, path = parse_data_arg(text)
        options = {}
        if kind == "videos":
            options = {"cache_dir": cache_dir, "pose_every": pose_every, "pose_workers": pose_workers,
                       "progress": (lambda it, name=path.name: progress(it, f"poses {name}")) if progress else None}
        seqs = [s for s in load(kind, path, **options) if s.label is not None]
        if subset:
            seqs = seqs[:: max(1, len(seqs) // subset)][:subset]
        sequences += seqs
    return sequences
