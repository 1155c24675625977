"""The reference article's MHAD format: X_*.txt and the matching Y_*.txt.

X holds blocks of 32 lines, one block per sample window, each line 36 comma-separated
OpenPose-18 values (x, y in pixels of a 640x480 view; 0,0 = joint not found). Y holds
one label 1..6 per block. The 18 joints map to COCO-17 with the neck dropped.

Given a directory, every X_*.txt in it is read; a missing Y file leaves the windows
unlabelled (label None), unless `require_labels` (as `train` and `evaluate` ask) makes it
an error naming the file.
Blocks carry no subject; their file name and block number stand in for it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..features import PoseSequence
from . import DatasetError
from .common import openpose18_to_coco
from .labels import LabelTable, map_label

BLOCK = 32
# Berkeley MHAD's cameras record at about 22 Hz; the files keep no timestamps.
FPS = 22.0


def _label_file(x_file: Path) -> Path:
    return x_file.with_name("Y" + x_file.name[1:])


def read_x(path: Path, strict: bool = False) -> tuple[np.ndarray, list[int]]:
    """(blocks, 32, 36) values of one X file, and the numbers of damaged lines.

    A line without exactly 36 numbers cannot be aligned to joints, so it becomes a frame
    with every joint missing (0,0) and is reported, unless `strict` makes it an error.
    """
    rows, damaged = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [p for p in line.replace(" ", ",").split(",") if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 36:
            if strict:
                raise DatasetError(f"{path}:{number}: {len(parts)} values, the MHAD format has 36 numbers per line")
            damaged.append(number)
            values = [0.0] * 36
        rows.append(values)
    if not rows or len(rows) % BLOCK:
        raise DatasetError(f"{path} has {len(rows)} lines, not a whole number of {BLOCK}-line blocks")
    if damaged:
        warnings.warn(f"{path}: line(s) {damaged[:10]} lack 36 numbers; read as frames with no joints", stacklevel=2)
    return np.asarray(rows, np.float32).reshape(-1, BLOCK, 36), damaged


def _label_number(text: str, y_file: Path, number: int) -> str:
    try:
        return str(int(float(text)))
    except ValueError:
        raise DatasetError(
            f"{y_file}: label {number} is {text!r}; the MHAD format numbers its classes 1-6 "
            "(JUMPING, JUMPING_JACKS, BOXING, WAVING_2HANDS, WAVING_1HAND, CLAPPING_HANDS)"
        ) from None


def load_mhad(
    path: str | Path,
    fps: float = FPS,
    require_labels: bool = False,
    strict: bool = False,
    labels: LabelTable | None = None,
) -> list[PoseSequence]:
    path = Path(path)
    x_files = sorted(path.glob("X_*.txt")) if path.is_dir() else [path]
    if not x_files:
        raise DatasetError(f"no X_*.txt files in {path}; the MHAD format needs X_*.txt (+ Y_*.txt)")
    sequences = []
    for x_file in x_files:
        blocks, damaged = read_x(x_file, strict)
        y_file = _label_file(x_file)
        block_labels: list[str | None] = [None] * len(blocks)
        if y_file.is_file():
            raw = [line.strip() for line in y_file.read_text().splitlines() if line.strip()]
            if len(raw) != len(blocks):
                raise DatasetError(f"{y_file} has {len(raw)} labels for {len(blocks)} blocks in {x_file}")
            block_labels = [
                map_label("mhad", _label_number(v, y_file, n), y_file, labels) for n, v in enumerate(raw, 1)
            ]
        elif require_labels:
            raise DatasetError(
                f"{x_file} has no label file {y_file.name} beside it; write one label 1-6 per {BLOCK}-line block"
            )
        for i, block in enumerate(blocks):
            keypoints, scores = openpose18_to_coco(block)
            sequences.append(
                PoseSequence(
                    keypoints,
                    scores,
                    np.arange(BLOCK) / fps,
                    label=block_labels[i],
                    subject=f"{x_file.stem}#{i}",
                    clip=f"{x_file.name}#{i}",
                    source="mhad",
                    meta={"block": i, "damaged_lines": [n for n in damaged if (n - 1) // BLOCK == i]},
                )
            )
    return sequences
