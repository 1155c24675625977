"""Random changes to keypoint windows, for training only.

Each one imitates a difference between cameras, people or pose estimators that the
classifier should ignore (issue 13: studio-trained models failed on phone, gym and webcam
clips):
  mirror      the other hand, or a mirrored view: flip x and swap left/right joints;
  roll        a tilted camera: rotate the image plane;
  yaw         a camera to the side: turning the body about the vertical axis shortens
              x (by cos of the angle, up to 60 degrees; depth is unknown in 2D);
  aspect      x and y scaled apart (stretched video, lens, pose-model box fits);
  cutoff      the frame edge cuts the legs (below the knees for the whole-body actions, anywhere
              below the hips for the rest) or the head;
  waist_up    the frame edge cuts at the waist or the chest, as a desk webcam, a kiosk or a film
              close-up sees people (never for the whole-body actions, which need the legs);
  frame_rate  the source films at 8-30 fps, so fewer poses fall in the window;
  speed       people move faster or slower;
  noise       keypoint jitter as large as the pose model's own (measured, see `noise`);
  dropout     the estimator loses one joint for a stretch of time;
  still       some OTHER windows are a real pose held still (with a sway): no motion, no action.
`speed`, `frame_rate` and `still` act when the window's samples are chosen (training.WindowDataset);
the rest act on the resampled window. `Augment().without(names)` turns some off, for
measuring what each one is worth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .features import MIRROR, J

# Joints a bottom or top frame edge removes.
_LEGS = (J["left_knee"], J["right_knee"], J["left_ankle"], J["right_ankle"])
_HEAD = (J["nose"], J["left_eye"], J["right_eye"], J["left_ear"], J["right_ear"])
_HIPS = (J["left_hip"], J["right_hip"])
_SHOULDERS = (J["left_shoulder"], J["right_shoulder"])
# Field values that turn each augmentation off.
_OFF: dict[str, dict] = {
    "mirror": {"mirror_p": 0.0},
    "roll": {"max_roll_deg": 0.0},
    "yaw": {"max_yaw_deg": 0.0},
    "aspect": {"aspect_range": (1.0, 1.0)},
    "cutoff": {"cutoff_p": 0.0},
    "waist_up": {"waist_up_p": 0.0},
    "frame_rate": {"frame_rate_p": 0.0},
    "speed": {"speed_range": (1.0, 1.0)},
    "noise": {"noise": 0.0},
    "dropout": {"dropout_p": 0.0},
    "still": {"still_p": 0.0},
}
NAMES: tuple[str, ...] = tuple(_OFF)


@dataclass(frozen=True)
class Augment:
    mirror_p: float = 0.5
    max_roll_deg: float = 10.0
    max_yaw_deg: float = 60.0
    aspect_range: tuple[float, float] = (0.85, 1.15)  # x and y apart
    cutoff_p: float = 0.15  # chance of a cut at the bottom, and again of one at the top
    waist_up_p: float = 0.3  # chance of a cut at the waist or chest, for windows of arm actions and OTHER
    frame_rate_p: float = 0.3  # chance that the source is re-timed to a rate in frame_rate_range
    frame_rate_range: tuple[float, float] = (8.0, 30.0)
    speed_range: tuple[float, float] = (0.75, 1.33)
    # Standard deviation in thirds of the body's height (about a torso length): MoveNet's own
    # frame-to-frame jitter, measured as the robust spread of each joint's second difference on
    # the wild_dev and Weizmann clips, is 0.009-0.010 torso lengths (BlazePose, which smooths: 0.003-0.005).
    noise: float = 0.01
    dropout_p: float = 0.3
    still_p: float = 0.2  # share of OTHER draws replaced by a person holding still (training.WindowDataset)

    def without(self, names: list[str] | tuple[str, ...]) -> Augment:
        unknown = [n for n in names if n not in _OFF]
        if unknown:
            raise ValueError(f"unknown augmentation {', '.join(unknown)}; known: {', '.join(NAMES)}")
        changes: dict = {}
        for name in names:
            changes.update(_OFF[name])
        return replace(self, **changes)

    def speed(self, rng: np.random.Generator) -> float:
        lo, hi = self.speed_range
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))

    def frame_rate(self, rng: np.random.Generator) -> float | None:
        """A source frame rate to re-time the samples to, or None to keep the source's own."""
        if rng.random() >= self.frame_rate_p:
            return None
        return float(rng.uniform(*self.frame_rate_range))

    def __call__(
        self,
        keypoints: np.ndarray,
        visible: np.ndarray,
        rng: np.random.Generator,
        joints: tuple[int, ...],
        whole_body: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """keypoints (W,17,2), visible (W,17) -> augmented copies. `whole_body`: the window's class
        needs the legs, so no cut may hide them."""
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
        if self.max_yaw_deg > 0:
            kp[..., 0] *= np.cos(np.deg2rad(rng.uniform(0.0, self.max_yaw_deg)))
        angle = np.deg2rad(rng.uniform(-self.max_roll_deg, self.max_roll_deg))
        c, s = np.cos(angle), np.sin(angle)
        kp = kp @ np.array([[c, s], [-s, c]], dtype=np.float32)
        kp *= rng.uniform(*self.aspect_range, size=2).astype(np.float32)
        size = float(np.ptp(kp[vis][:, 1])) / 3.0 or 1.0  # about a torso length
        kp += rng.normal(0.0, self.noise * size, size=kp.shape).astype(np.float32)
        if self.cutoff_p > 0:
            self._cut(kp, vis, rng, whole_body)
        if not whole_body and rng.random() < self.waist_up_p:
            self._cut_waist(kp, vis, rng)
        if rng.random() < self.dropout_p:
            joint = int(rng.choice(joints))
            start = int(rng.integers(0, len(kp)))
            stop = int(rng.integers(start + 1, len(kp) + 1))
            vis[start:stop, joint] = False
        kp += centre
        kp[~vis] = 0.0
        return kp, vis

    def _cut(self, kp: np.ndarray, vis: np.ndarray, rng: np.random.Generator, whole_body: bool) -> None:
        """A frame edge at a fixed height for the whole window hides every joint beyond it."""
        if rng.random() < self.cutoff_p:
            hips, ankles = _mean_y(kp, vis, _HIPS), _mean_y(kp, vis, _LEGS[2:])
            knees = _mean_y(kp, vis, _LEGS[:2])
            if hips is not None and ankles is not None and ankles > hips:
                lowest = hips + 0.25 * (ankles - hips)
                if whole_body:  # the knees stay in view: legs cut off above them are no jump
                    lowest = max(lowest, knees if knees is not None else hips + 0.6 * (ankles - hips))
                edge = rng.uniform(lowest, ankles)  # y grows downwards
                vis &= kp[..., 1] <= edge
        if rng.random() < self.cutoff_p:
            nose, shoulders = _mean_y(kp, vis, _HEAD[:1]), _mean_y(kp, vis, _SHOULDERS)
            if nose is not None and shoulders is not None and shoulders > nose:
                edge = rng.uniform(nose, nose + 0.6 * (shoulders - nose))  # through the head, above the shoulders
                vis &= kp[..., 1] >= edge

    @staticmethod
    def _cut_waist(kp: np.ndarray, vis: np.ndarray, rng: np.random.Generator) -> None:
        """A bottom frame edge between the middle of the chest and the hips."""
        shoulders, hips = _mean_y(kp, vis, _SHOULDERS), _mean_y(kp, vis, _HIPS)
        if shoulders is None:
            return
        torso = (hips - shoulders) if hips is not None and hips > shoulders else None
        if torso is None:  # hips already unseen: a cut through the lower chest at most
            height = float(np.ptp(kp[vis][:, 1])) or 1.0
            torso = height / 3.0
        edge = rng.uniform(shoulders + 0.45 * torso, shoulders + torso)
        vis &= kp[..., 1] <= edge


def _mean_y(kp: np.ndarray, vis: np.ndarray, joints: tuple[int, ...]) -> float | None:
    seen = vis[:, joints]
    return float(kp[:, joints, 1][seen].mean()) if seen.any() else None
