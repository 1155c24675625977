"""Pose backends: each turns a BGR image into the project's `Poses` type.

Which backend, with which options and how many copies: the pose stage asks
`create_backends(config.pose)` and never looks at backend names itself.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np

from ..config import PoseConfig
from ..types import Poses


class PoseBackend(Protocol):
    """What the pose stage needs from a pose estimator."""

    name: str

    def estimate(self, image_bgr: np.ndarray) -> Poses:
        """All people in the image, COCO-17 keypoints in pixels."""
        ...

    def close(self) -> None: ...


def backend_options(pose: PoseConfig) -> dict[str, Any]:
    if pose.backend == "movenet":
        m = pose.movenet
        return {
            "long_side": m.long_side,
            "small_people_long_side": m.small_people_long_side,
            "person_threshold": m.person_threshold,
            "max_people": m.max_people,
        }
    if pose.backend == "detectron2":
        d2 = pose.detectron2
        return {
            "config": d2.config,
            "weights": d2.weights,
            "score_thresh": d2.score_thresh,
            "min_size_test": d2.min_size_test,
            "device": d2.device,
        }
    return {"box_min_score": pose.min_score}


def create_backend(name: str, options: dict[str, Any] | None = None) -> PoseBackend:
    """Build the named backend; imports happen here so unused ones cost nothing."""
    options = options or {}
    if name == "movenet":
        from .movenet_backend import MoveNetPose

        return MoveNetPose(**options)
    if name == "blazepose":
        from .mediapipe_backend import MediaPipePose

        return MediaPipePose(**options)
    if name == "detectron2":
        from .detectron2_backend import Detectron2Pose

        return Detectron2Pose(**options)
    raise ValueError(f"unknown pose backend {name!r}")


def worker_count(pose: PoseConfig) -> int:
    """How many pose threads: as configured, or auto (0) = one per core up to 2 on the CPU backends.

    Detectron2 stays at one: on a GPU a second copy of the model buys little, and on a CPU
    one copy already uses every core.
    """
    if pose.workers:
        return pose.workers
    if pose.backend == "detectron2":
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def create_backends(pose: PoseConfig) -> list[PoseBackend]:
    """One model per pose thread; closes what it built if a later one fails."""
    backends: list[PoseBackend] = []
    try:
        for _ in range(worker_count(pose)):
            backends.append(create_backend(pose.backend, backend_options(pose)))
    except BaseException:
        for backend in backends:
            backend.close()
        raise
    return backends
