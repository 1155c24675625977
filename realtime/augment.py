"""Random changes to resampled keypoint windows, for training only.

Each one imitates a difference between people, cameras or pose estimators that the
classifier should ignore: the other hand or mirrored view, camera roll, aspect ratio,
keypoint jitter, and joints the estimator loses for a while. Speed changes happen
earlier, when the window's time grid is chosen (see training.WindowDataset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import MIRROR


@dataclass(frozen=True)
class Augment:
    mirror_p: float = 0.5
    max_rotation_deg: float = 10.0
    scale_range: tuple[float, float] = (0.85, 1.15)  # x and y apart: aspect ratio differs between sources
    noise: float = 0.02  # standard deviation, in units of the window's body size
    dropout_p: float = 0.3  # chance that a window loses one joint for a stretch of time
    speed_range: tuple[float, float] = (0.75, 1.33)

    def speed(self, rng: np.random.Generator) -> float:
        lo, hi = self.speed_range
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))

    def __call__(self, keypoints: np.ndarray, visible: np.ndarray, rng: np.random.Generator,
                 joints: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """keypoints (W,17,2), visible (W,17) -> augmented copies."""
        kp = keypoints.astype(np.float32).copy()
        vis = visible.copy()
        if not vis.any():
            return kp, vis
        centre = kp[vis].mean(axis=0)
        kp -= centre
        if rng.random() < self.mirror_p:
            kp = kp[:, MIRROR]
            vis = vis[:, MIRROR]
            kp[..., 0] *= -1.0
        angle = np.deg2rad(rng.uniform(-self.max_rotation_deg, self.max_rotation_deg))
        c, s = np.cos(angle), np.sin(angle)
        kp = kp @ np.array([[c, s], [-s, c]], dtype=np.float32)
        kp *= rng.uniform(*self.scale_range, size=2).astype(np.float32)
        size = float(np.ptp(kp[vis][:, 1])) / 3.0 or 1.0  # about a torso length
        kp += rng.normal(0.0, self.noise * size, size=kp.shape).astype(np.float32)
        if rng.random() < self.dropout_p:
            joint = int(rng.choice(joints))
            start = int(rng.integers(0, len(kp)))
            stop = int(rng.integers(start + 1, len(kp) + 1))
            vis[start:stop, joint] = False
        kp += centre
        kp[~vis] = 0.0
        return kp, vis
