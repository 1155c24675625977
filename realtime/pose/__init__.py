"""Pose backends: each turns a BGR image into the project's `Poses` type."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..types import Poses


class PoseBackend(Protocol):
    """What the inference worker needs from a pose estimator."""

    name: str

    def estimate(self, image_bgr: np.ndarray) -> Poses:
        """All people in the image, COCO-17 keypoints in pixels."""
        ...

    def close(self) -> None:
        ...


BACKENDS = ("mediapipe", "detectron2")


def create_backend(name: str, options: dict | None = None) -> PoseBackend:
    """Build the named backend; imports happen here so unused ones cost nothing."""
    options = options or {}
    if name == "mediapipe":
        from .mediapipe_backend import MediaPipePose

        return MediaPipePose(**options)
    if name == "detectron2":
        from .detectron2_backend import Detectron2Pose

        return Detectron2Pose(**options)
    raise ValueError(f"unknown pose backend {name!r}; choose one of {', '.join(BACKENDS)}")
