"""Joint layouts shared by several formats, converted to COCO-17."""

from __future__ import annotations

import numpy as np

from ..types import COCO_KEYPOINTS, NUM_KEYPOINTS

# The 18-joint OpenPose (COCO-18) order used by MHAD-format files and the OpenPose CSV.
OPENPOSE18: tuple[str, ...] = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
# For each COCO-17 joint, its OpenPose-18 column; the neck has no COCO joint and is dropped.
OPENPOSE18_FOR_COCO = np.array([OPENPOSE18.index(name) for name in COCO_KEYPOINTS])


def openpose18_to_coco(values: np.ndarray, width: float = 1.0, height: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 36 OpenPose values (x, y per joint) -> COCO keypoints (T,17,2) and scores (T,17).

    OpenPose writes 0,0 for a joint it did not find: its score becomes 0. `width` and
    `height` turn normalised coordinates into pixels (leave 1 for pixel input).
    """
    xy = np.asarray(values, dtype=np.float32).reshape(len(values), 18, 2)[:, OPENPOSE18_FOR_COCO]
    missing = (xy[..., 0] == 0) & (xy[..., 1] == 0)
    keypoints = xy * np.array([width, height], dtype=np.float32)
    keypoints[missing] = 0.0
    scores = (~missing).astype(np.float32)
    assert keypoints.shape[1] == NUM_KEYPOINTS
    return keypoints, scores
