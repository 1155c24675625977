"""Per-person smoothing of class probabilities over time.

Consecutive windows overlap almost entirely, yet a borderline one can flip the label
for a single frame; on a kiosk that is flicker, on a camera feed a burst of events. An
exponential moving average with a time constant (not a fixed number of updates) smooths
the same whatever the pose rate, like the windows themselves.
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import numpy as np


class ProbabilitySmoother:
    """Exponential moving average of each track's probabilities, in seconds."""

    def __init__(self, time_constant_s: float) -> None:
        self.time_constant_s = time_constant_s
        self._state: dict[Hashable, tuple[float, np.ndarray]] = {}

    def update(self, track_id: Hashable, t: float, probs: np.ndarray) -> np.ndarray:
        previous = self._state.get(track_id)
        if previous is None or self.time_constant_s <= 0 or t <= previous[0]:
            smoothed = probs if previous is None or self.time_constant_s <= 0 else previous[1]
        else:
            weight = 1.0 - math.exp(-(t - previous[0]) / self.time_constant_s)
            smoothed = previous[1] + weight * (probs - previous[1])
        self._state[track_id] = (t, smoothed)
        return smoothed

    def forget(self, track_id: Hashable) -> None:
        self._state.pop(track_id, None)

    def __len__(self) -> int:
        return len(self._state)
