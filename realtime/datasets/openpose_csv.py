"""OpenPose skeleton CSV (ChengeYang layout): 36 normalised values per frame + `class`.

Frames are 10 fps and each class is one continuous run, so a run becomes one sequence
(a new run starts wherever the class changes). 0,0 marks a joint OpenPose did not find.
Coordinates are normalised separately by width and height; `frame_size` restores the
aspect ratio (the recordings are 640x480 webcam frames, as far as the source tells).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..features import PoseSequence
from . import DatasetError
from .common import openpose18_to_coco
from .labels import LabelTable, map_label

FRAME_SIZE = (640, 480)
FPS = 10.0


def load_openpose_csv(
    path: str | Path,
    frame_size: tuple[int, int] = FRAME_SIZE,
    fps: float = FPS,
    subject: str = "",
    labels: LabelTable | None = None,
) -> list[PoseSequence]:
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or len(header) != 37 or header[-1].strip().lower() != "class":
            raise DatasetError(
                f"{path} is not an OpenPose skeleton CSV: expected 36 coordinate columns and a final 'class' column"
            )
        rows = list(reader)
    try:
        values = np.array([[float(v) for v in r[:36]] for r in rows], dtype=np.float32)
    except ValueError as exc:
        raise DatasetError(f"{path}: non-numeric coordinate ({exc})") from None
    actions = [r[36].strip() for r in rows]
    keypoints, scores = openpose18_to_coco(values, *frame_size)
    subject = subject or path.parent.name
    sequences, start = [], 0
    for end in range(1, len(rows) + 1):
        if end < len(rows) and actions[end] == actions[start]:
            continue
        action = actions[start]
        label = map_label("openpose", action, path, labels)
        if label is not None:
            sequences.append(
                PoseSequence(
                    keypoints[start:end],
                    scores[start:end],
                    np.arange(end - start) / fps,
                    label=label,
                    subject=subject,
                    clip=f"{path.name}:{action}:{start}",
                    source="openpose",
                    meta={"action": action, "first_row": start},
                )
            )
        start = end
    return sequences
