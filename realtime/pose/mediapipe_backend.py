"""MediaPipe BlazePose (legacy solutions API), mapped to COCO-17.

Model complexity 1 is the only BlazePose model inside the mediapipe wheel; 0 and 2
are downloaded on first use, which this product must never depend on.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..types import Poses

# BlazePose-33 landmark index for each COCO-17 keypoint.
BLAZEPOSE_TO_COCO = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])


class MediaPipePose:
    """Single-person pose with BlazePose's own tracking between frames."""

    name = "blazepose"

    def __init__(
        self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5, box_min_score: float = 0.3
    ) -> None:
        # One inference thread per model (realtime.native): the pool runs one model per core.
        import mediapipe as mp

        self._pose = mp.solutions.pose.Pose(
            static_image_mode=False,
            model_complexity=1,
            smooth_landmarks=True,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self._box_min_score = box_min_score

    def estimate(self, image_bgr: np.ndarray) -> Poses:
        # MediaPipe wants contiguous RGB. cvtColor does it in about 0.1 ms at 640x480; a numpy
        # channel flip made contiguous took 3-4 ms, a sixth of the pose stage.
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            return Poses.empty()
        return self.to_poses(
            result.pose_landmarks.landmark, image_bgr.shape[1], image_bgr.shape[0], self._box_min_score
        )

    @staticmethod
    def to_poses(landmarks: Any, width: int, height: int, box_min_score: float = 0.3) -> Poses:
        """Convert one person's 33 normalised landmarks into COCO-17 pixels."""
        raw = np.array([(lm.x, lm.y, lm.visibility) for lm in landmarks], dtype=np.float32)
        coco = raw[BLAZEPOSE_TO_COCO]
        keypoints = coco[None, :, :2] * np.array([width, height], dtype=np.float32)
        scores = coco[None, :, 2]
        return Poses(keypoints, scores, Poses.boxes_from_keypoints(keypoints, scores, box_min_score))

    def close(self) -> None:
        self._pose.close()
