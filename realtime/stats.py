"""Running measures for the HUD and the summary: rates and latency percentiles."""

from __future__ import annotations

import time
from collections import deque

import numpy as np


class RateMeter:
    """Events per second over a sliding time span (monotonic clock)."""

    def __init__(self, span_s: float = 2.0) -> None:
        self.span_s = span_s
        self._times: deque[float] = deque()

    def tick(self, t: float | None = None) -> None:
        t = time.monotonic() if t is None else t
        self._times.append(t)
        while self._times and t - self._times[0] > self.span_s:
            self._times.popleft()

    def rate(self) -> float:
        if len(self._times) < 2:
            return 0.0
        elapsed = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / elapsed if elapsed > 0 else 0.0


class LatencyStats:
    """Latency samples in ms; keeps the most recent ones for percentiles."""

    def __init__(self, keep: int = 20000) -> None:
        self._samples: deque[float] = deque(maxlen=keep)

    def add(self, ms: float) -> None:
        self._samples.append(ms)

    def percentile(self, q: float) -> float:
        if not self._samples:
            return 0.0
        return float(np.percentile(np.fromiter(self._samples, dtype=np.float64), q))

    def values(self) -> np.ndarray:
        return np.fromiter(self._samples, dtype=np.float64)


class StageTimes:
    """Total milliseconds spent in each named stage, and the frames they were spread over."""

    def __init__(self) -> None:
        self.total_ms: dict[str, float] = {}
        self.frames = 0

    def add(self, stage: str, ms: float) -> None:
        self.total_ms[stage] = self.total_ms.get(stage, 0.0) + ms

    def frame_done(self) -> None:
        self.frames += 1

    def per_frame_ms(self) -> dict[str, float]:
        """Each stage's cost averaged over all frames (with skip, pose time is spread over the frames it serves)."""
        if self.frames == 0:
            return dict.fromkeys(self.total_ms, 0.0)
        return {stage: total / self.frames for stage, total in self.total_ms.items()}
