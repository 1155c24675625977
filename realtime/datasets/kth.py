"""KTH pose CSV: 15 MediaPipe joints per row, normalised 0..1, rows grouped by `src_video`.

Poses were estimated on every 3rd frame of 25 fps video; the CSV keeps no frame numbers,
so samples are timed 3/25 s apart (frames without a person are simply absent). The
format has no eyes or ears: those COCO joints get score 0 (missing), never a guess.
The feet (LFoot/RFoot) have no COCO-17 joint and are dropped.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from ..features import PoseSequence
from ..types import KEYPOINT_INDEX, NUM_KEYPOINTS
from . import DatasetError
from .labels import LabelTable, map_label

KTH_JOINTS: dict[str, str] = {
    "Nose": "nose",
    "LShoulder": "left_shoulder",
    "RShoulder": "right_shoulder",
    "LElbow": "left_elbow",
    "RElbow": "right_elbow",
    "LWrist": "left_wrist",
    "RWrist": "right_wrist",
    "LHip": "left_hip",
    "RHip": "right_hip",
    "LKnee": "left_knee",
    "RKnee": "right_knee",
    "LAnkle": "left_ankle",
    "RAnkle": "right_ankle",
}
FRAME_SIZE = (160, 120)  # KTH videos are 160x120; coordinates are scaled back to pixels
SAMPLE_INTERVAL_S = 3 / 25
_VIDEO_NAME = re.compile(r"(person\d+)_([a-z]+)_(d\d)")


def load_kth(
    path: str | Path,
    frame_size: tuple[int, int] = FRAME_SIZE,
    sample_interval_s: float = SAMPLE_INTERVAL_S,
    labels: LabelTable | None = None,
) -> list[PoseSequence]:
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        needed = [f"{j}_{a}" for j in KTH_JOINTS for a in "XY"] + ["action", "src_video"]
        absent = [c for c in needed if c not in columns]
        if absent:
            raise DatasetError(f"{path} is not a KTH pose CSV: columns {absent} missing")
        videos: dict[str, list[dict]] = {}
        for row in reader:
            videos.setdefault(row["src_video"], []).append(row)
    width, height = frame_size
    coco_index = [KEYPOINT_INDEX[name] for name in KTH_JOINTS.values()]
    sequences = []
    for video, rows in videos.items():
        action = rows[0]["action"]
        label = map_label("kth", action, f"{path} ({video})", labels)
        if label is None:
            continue
        try:
            xy = np.array(
                [[float(r[f"{j}_{a}"]) for j in KTH_JOINTS for a in "XY"] for r in rows], dtype=np.float32
            ).reshape(len(rows), len(KTH_JOINTS), 2)
        except ValueError as exc:
            raise DatasetError(f"{path} ({video}): non-numeric coordinate ({exc})") from None
        keypoints = np.zeros((len(rows), NUM_KEYPOINTS, 2), np.float32)
        scores = np.zeros((len(rows), NUM_KEYPOINTS), np.float32)
        keypoints[:, coco_index] = xy * np.array([width, height], np.float32)
        scores[:, coco_index] = np.isfinite(xy).all(axis=2)
        keypoints[~np.isfinite(keypoints)] = 0.0
        match = _VIDEO_NAME.match(video)
        subject = match.group(1) if match else video.split("_")[0]
        sequences.append(
            PoseSequence(
                keypoints,
                scores,
                np.arange(len(rows)) * sample_interval_s,
                label=label,
                subject=subject,
                clip=video,
                source="kth",
                meta={"action": action, "scenario": match.group(3) if match else ""},
            )
        )
    if not sequences:
        raise DatasetError(f"{path} holds no labelled KTH video")
    return sequences
