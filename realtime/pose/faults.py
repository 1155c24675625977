"""Real pose models made slow or faulty on purpose: for the soak run (`realtime benchmark soak`) and tests."""

from __future__ import annotations

import time

import numpy as np

from ..types import Poses
from . import PoseBackend


class SlowPose:
    """A real pose backend plus a fixed sleep per frame: inference slower than the camera, on purpose."""

    def __init__(self, inner: PoseBackend, extra_s: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.extra_s = extra_s

    def estimate(self, image: np.ndarray) -> Poses:
        time.sleep(self.extra_s)
        return self.inner.estimate(image)

    def close(self) -> None:
        self.inner.close()


class FailingPose(SlowPose):
    """A real pose backend that raises on its `fail_at`-th frame (an injected fault)."""

    def __init__(self, inner: PoseBackend, fail_at: int) -> None:
        super().__init__(inner, 0.0)
        self.fail_at, self.calls = fail_at, 0

    def estimate(self, image: np.ndarray) -> Poses:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("injected pose failure")
        return super().estimate(image)
