"""How much a pose backend's joints jitter from frame to frame, in torso lengths.

    python -m scripts.measure_pose_jitter --pose movenet [--cache cache/poses]

For each body joint seen on three evenly spaced frames in a row, the residual of its
second difference, x[t] - (x[t-1] + x[t+1]) / 2, divided by the clip's median torso length.
For white jitter of standard deviation s the residual's is s * sqrt(1.5); its robust spread
(1.4826 * median absolute deviation) keeps real accelerations from counting as jitter.
Measured on the wild_dev and Weizmann clips (posed into the cache by `realtime extract-poses`);
augment.Augment.noise is set from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from realtime.datasets import DEFAULT_POSE_CACHE, default_root, load_labelled
from realtime.features import BODY_JOINTS, J


def residuals(keypoints: np.ndarray, scores: np.ndarray, times: np.ndarray, min_score: float = 0.3) -> np.ndarray:
    """Second-difference residuals (n, 2) of the body joints, in torso lengths."""
    if len(times) < 3:
        return np.zeros((0, 2))
    dt = np.diff(times)
    even = np.abs(dt[:-1] - dt[1:]) < 1e-3
    shoulders = keypoints[:, [J["left_shoulder"], J["right_shoulder"]]].mean(axis=1)
    hips = keypoints[:, [J["left_hip"], J["right_hip"]]].mean(axis=1)
    torso = float(np.median(np.linalg.norm(shoulders - hips, axis=1))) or 1.0
    out = []
    for j in BODY_JOINTS:
        seen = (scores[:-2, j] >= min_score) & (scores[1:-1, j] >= min_score) & (scores[2:, j] >= min_score) & even
        r = keypoints[1:-1, j] - (keypoints[:-2, j] + keypoints[2:, j]) / 2
        out.append(r[seen] / torso)
    return np.concatenate(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pose", required=True, help="pose backend whose cached poses to measure")
    p.add_argument("--cache", type=Path, default=DEFAULT_POSE_CACHE)
    args = p.parse_args()
    root = default_root()
    seqs = load_labelled([f"wild:{root / 'wild_dev'}", f"videos:{root / 'weizmann'}"], args.cache, backend=args.pose)
    r = np.concatenate([residuals(s.keypoints, s.scores, s.times) for s in seqs])
    spread = 1.4826 * np.median(np.abs(r - np.median(r, axis=0)), axis=0)
    sigma = spread / np.sqrt(1.5)
    print(
        f"{args.pose}: {len(r)} joint residuals from {len(seqs)} clips; jitter (x, y) "
        f"{sigma[0]:.4f}, {sigma[1]:.4f} torso lengths"
    )


if __name__ == "__main__":
    main()
