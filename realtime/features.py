"""Keypoint features shared by training and live inference (the only copy).

A window is a fixed number of samples on a fixed time grid. Poses arrive at whatever
rate the camera, the dataset or `skip` gives; they are resampled onto the grid from
their timestamps, so the model always sees the same time scale.

Per grid sample the features are, for the body joints in `FeatureSpec.joints`:
  - joint positions relative to that sample's anchor (the shoulder midpoint, which a person
    seen from the waist up has too), divided by body size;
  - the anchor relative to the window's mean anchor (keeps translation, which separates
    jumping forward from jumping in place);
  - optionally, bones: each limb's vector from its parent joint to its child, divided by
    body size (a forearm's direction does not depend on where the hips are);
  - optionally, reaches: the same for a few joints no bone joins (wrist to wrist, nose to
    each wrist, ankle to ankle), whose distance is the action (`REACHES`);
  - optionally, the per-sample change of all of these (velocities);
  - a visibility mask (1 = seen, 0 = missing or low confidence, values zeroed).
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np

from .types import COCO_KEYPOINTS, KEYPOINT_INDEX, NUM_KEYPOINTS, joint_pairs

J = KEYPOINT_INDEX

# Eyes and ears are left out: several sources (KTH) do not have them and they add
# little to whole-body actions.
BODY_JOINTS: tuple[int, ...] = (
    J["nose"],
    J["left_shoulder"],
    J["right_shoulder"],
    J["left_elbow"],
    J["right_elbow"],
    J["left_wrist"],
    J["right_wrist"],
    J["left_hip"],
    J["right_hip"],
    J["left_knee"],
    J["right_knee"],
    J["left_ankle"],
    J["right_ankle"],
)

# Index of each joint's mirror image, for left-right flipping.
MIRROR: tuple[int, ...] = tuple(
    J[name.replace("left_", "right_")]
    if name.startswith("left_")
    else J[name.replace("right_", "left_")]
    if name.startswith("right_")
    else i
    for i, name in enumerate(COCO_KEYPOINTS)
)

# Skeleton edges (parent, child) between body joints, for bone features.
BONES = joint_pairs(
    ("left_shoulder", "right_shoulder"),
    ("left_hip", "right_hip"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
    ("nose", "left_shoulder"),
    ("nose", "right_shoulder"),
)

# Vectors between joints no bone joins, whose closeness is the action itself rather than where
# the person holds it: hands meeting (a clap at any height), a hand at the face, feet apart
# (jumping jacks). Distances between joints are a usual skeleton input (DD-Net's joint distances).
REACHES = joint_pairs(
    ("left_wrist", "right_wrist"),
    ("nose", "left_wrist"),
    ("nose", "right_wrist"),
    ("left_ankle", "right_ankle"),
)

_HIPS = (J["left_hip"], J["right_hip"])
_SHOULDERS = (J["left_shoulder"], J["right_shoulder"])
# What a person seen from the waist up still shows, and what the whole-body actions need.
LEGS: tuple[int, ...] = (J["left_knee"], J["right_knee"], J["left_ankle"], J["right_ankle"])
UPPER_BODY: tuple[int, ...] = tuple(j for j in BODY_JOINTS if j not in (*_HIPS, *LEGS))
# A window shows the legs when a knee or an ankle is seen on at least this share of its samples.
LEGS_SEEN_SHARE = 0.5
# Body size (torso length) from the upper body when the hips are unseen: the torso is about
# SHOULDER_TO_TORSO shoulder widths seen from the front and NECK_TO_TORSO nose-to-neck lengths
# (Weizmann and KTH full-body poses).
SHOULDER_TO_TORSO = 1.45
NECK_TO_TORSO = 2.4


@dataclass(frozen=True)
class FeatureSpec:
    """How poses become model input. Stored inside every checkpoint."""

    rate_hz: float = 25.0
    window: int = 32
    joints: tuple[int, ...] = BODY_JOINTS
    min_score: float = 0.3
    velocities: bool = True
    max_gap_s: float = 0.6
    bones: bool = False
    reaches: bool = False  # REACHES as extra "bones"

    @property
    def bone_pairs(self) -> tuple[tuple[int, int], ...]:
        """The (from, to) joints of every vector input: bones, then reaches."""
        pairs = (BONES if self.bones else ()) + (REACHES if self.reaches else ())
        return tuple((a, b) for a, b in pairs if a in self.joints and b in self.joints)

    @property
    def duration_s(self) -> float:
        """Time covered from the first to the last sample of a window."""
        return (self.window - 1) / self.rate_hz

    @property
    def _positional_width(self) -> int:
        """Columns of one sample before the velocities: joints, body centre, bones and reaches."""
        return 2 * len(self.joints) + 2 + 2 * len(self.bone_pairs)

    @property
    def dim(self) -> int:
        return self._positional_width * (2 if self.velocities else 1) + len(self.joints)

    def joint_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each joint's own values sit in a sample, for networks that treat joints as graph nodes.

        Returns (per-joint columns (joints, k): x, y, then their velocities if any, then the mask;
        every other column: the body centre, bones and reaches, and their velocities).
        """
        n, static = len(self.joints), self._positional_width
        xy = 2 * np.arange(n)[:, None] + np.arange(2)[None, :]
        motion = [xy + static] if self.velocities else []
        mask = static * (2 if self.velocities else 1) + np.arange(n)[:, None]
        per_joint = np.concatenate([xy, *motion, mask], axis=1).astype(np.int64)
        return per_joint, np.setdiff1d(np.arange(self.dim), per_joint.ravel())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["joints"] = list(self.joints)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        d = dict(d)
        d["joints"] = tuple(int(j) for j in d["joints"])
        d.setdefault("bones", False)  # checkpoints older than bone features
        d.setdefault("reaches", False)
        return cls(**d)


@dataclass
class PoseSequence:
    """One person's poses over time, as every data loader yields them.

    keypoints (T,17,2) in pixels (or any unit with equal x and y scale); scores (T,17)
    where 0 marks a joint the source does not have or did not see; times (T,) seconds.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    times: np.ndarray
    label: str | None = None
    subject: str = ""
    clip: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32).reshape(-1, NUM_KEYPOINTS, 2)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1, NUM_KEYPOINTS)
        self.times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        if not (len(self.keypoints) == len(self.scores) == len(self.times)):
            raise ValueError("keypoints, scores and times must have the same length")
        if len(self.times) > 1 and np.any(np.diff(self.times) <= 0):
            raise ValueError(f"times of {self.clip or 'sequence'} must increase strictly")

    def __len__(self) -> int:
        return len(self.times)


def resample(
    times: np.ndarray,
    keypoints: np.ndarray,
    visible: np.ndarray,
    grid: np.ndarray,
    max_gap_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate each joint onto `grid` from its visible samples.

    A grid point is visible only between two visible samples at most `max_gap_s`
    apart (or within half a sample interval of one), so nothing is invented across
    long gaps or beyond the ends. Returns keypoints (G,17,2) and visibility (G,17).
    """
    out = np.zeros((len(grid), keypoints.shape[1], 2), dtype=np.float32)
    out_visible = np.zeros((len(grid), keypoints.shape[1]), dtype=bool)
    if len(times) == 0:
        return out, out_visible
    tolerance = 0.5 / max(1e-6, _typical_rate(times))
    # A grid point's visibility depends only on which samples saw the joint: most joints are seen on
    # the same samples, so it is worked out once per distinct pattern (a third of the live cost).
    visibility: dict[bytes, np.ndarray] = {}
    for j in range(keypoints.shape[1]):
        seen = visible[:, j]
        if not seen.any():
            continue
        t = times[seen]
        xy = keypoints[seen, j]
        out[:, j, 0] = np.interp(grid, t, xy[:, 0])
        out[:, j, 1] = np.interp(grid, t, xy[:, 1])
        pattern = seen.tobytes()
        if pattern not in visibility:
            right = np.searchsorted(t, grid, side="left").clip(0, len(t) - 1)
            left = (right - 1).clip(0, len(t) - 1)
            near = np.minimum(np.abs(t[right] - grid), np.abs(t[left] - grid)) <= tolerance
            bracketed = (t[left] <= grid) & (t[right] >= grid) & (t[right] - t[left] <= max_gap_s)
            visibility[pattern] = near | bracketed
        out_visible[:, j] = visibility[pattern]
    return out, out_visible


def _typical_rate(times: np.ndarray) -> float:
    if len(times) < 2:
        return 25.0
    return 1.0 / float(np.median(np.diff(times)))


def window_features(keypoints: np.ndarray, visible: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Features (W, spec.dim) of one resampled window: keypoints (W,17,2), visible (W,17)."""
    kp = keypoints.astype(np.float32)
    vis = visible.astype(bool)
    centre = _anchor(kp, vis)
    scale = body_size(kp, vis)
    rel = (kp[:, spec.joints] - centre[:, None, :]) / scale
    mask = vis[:, spec.joints]
    rel[~mask] = 0.0
    body = (centre - centre.mean(axis=0)) / scale
    pairs = spec.bone_pairs
    columns = [rel.reshape(len(kp), -1), body]
    # Per feature column, whether it is measured (joints and bones can be unseen; the body centre is filled in).
    seen = [np.repeat(mask, 2, axis=1), np.ones((len(kp), 2), bool)]
    if pairs:
        parent, child = np.array(pairs).T
        bone_seen = vis[:, parent] & vis[:, child]
        bones = (kp[:, child] - kp[:, parent]) / scale
        bones[~bone_seen] = 0.0
        columns.append(bones.reshape(len(kp), -1))
        seen.append(np.repeat(bone_seen, 2, axis=1))
    static = np.concatenate(columns, axis=1)
    parts = [static]
    if spec.velocities:
        velocity = np.diff(static, axis=0, prepend=static[:1])
        # A joint that appears or disappears is not motion.
        measured = np.concatenate(seen, axis=1)
        velocity *= np.concatenate([measured[:1], measured[1:] & measured[:-1]], axis=0)
        parts.append(velocity)
    parts.append(mask.astype(np.float32))
    return np.concatenate(parts, axis=1).astype(np.float32)


def _anchor(kp: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Per-sample shoulder midpoint (the hip midpoint where no shoulder is seen in the whole window)."""
    return _centre_of(kp, vis, (_SHOULDERS, _HIPS))


def hip_centre(kp: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Per-sample hip midpoint, for motion that is the hips' own (repetitions of a jump)."""
    return _centre_of(kp, vis, (_HIPS,))


def _centre_of(kp: np.ndarray, vis: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Per sample, the midpoint of the first pair of joints seen anywhere in the window; samples that see
    neither of them take their neighbours' value, and a window seeing no pair the mean of its joints."""
    for pair in pairs:
        centre = _midpoints(kp, vis, pair)
        missing = np.isnan(centre[:, 0])
        if not missing.all():
            idx = np.arange(len(kp))
            for d in range(2):
                centre[:, d] = np.interp(idx, idx[~missing], centre[~missing, d])
            return centre
    anything = vis.any(axis=1)
    return np.tile(kp[vis].mean(axis=0) if anything.any() else np.zeros(2, np.float32), (len(kp), 1)).astype(np.float32)


def _midpoints(kp: np.ndarray, vis: np.ndarray, pair: tuple[int, int]) -> np.ndarray:
    """Per sample, the mean of the seen joints of `pair` (NaN where neither is seen)."""
    seen = vis[:, pair]
    count = seen.sum(axis=1)
    out = np.full((len(kp), 2), np.nan, dtype=np.float32)
    have = count > 0
    out[have] = (kp[have][:, pair] * seen[have][..., None]).sum(axis=1) / count[have, None]
    return out


def body_size(kp: np.ndarray, vis: np.ndarray) -> float:
    """Torso length (shoulder midpoint to hip midpoint), the median over the window; from the
    shoulders and head when the hips are unseen, so a waist-up person keeps a comparable scale."""
    shoulders = vis[:, _SHOULDERS].all(axis=1)
    both = shoulders & vis[:, _HIPS].all(axis=1)
    if both.any():
        top = kp[both][:, _SHOULDERS].mean(axis=1)
        hips = kp[both][:, _HIPS].mean(axis=1)
        return max(float(np.median(np.linalg.norm(top - hips, axis=1))), 1e-3)
    head = shoulders & vis[:, J["nose"]]
    if shoulders.any():
        # The larger estimate: a side view shortens the shoulders, a bowed head the neck.
        width = np.linalg.norm(kp[shoulders][:, _SHOULDERS[0]] - kp[shoulders][:, _SHOULDERS[1]], axis=1)
        size = float(np.median(width)) * SHOULDER_TO_TORSO
        if head.any():
            neck = np.linalg.norm(kp[head][:, J["nose"]] - kp[head][:, _SHOULDERS].mean(axis=1), axis=1)
            size = max(size, float(np.median(neck)) * NECK_TO_TORSO)
        return max(size, 1e-3)
    seen = kp[vis]
    return max(float(np.ptp(seen[:, 1]) / 3.0) if len(seen) > 1 else 0.0, 1e-3)


def window_is_usable(visible: np.ndarray, spec: FeatureSpec, min_fraction: float = 0.6) -> bool:
    """Enough of the person is seen across the window to judge it: a shoulder on most samples and
    most of the upper body. Hips and legs are not needed (a person seen from the waist up)."""
    upper = [j for j in UPPER_BODY if j in spec.joints]
    return (
        bool(visible[:, _SHOULDERS].any(axis=1).mean() >= min_fraction)
        and float(visible[:, upper].mean()) >= min_fraction * 0.75
    )


def legs_seen(windows: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Per window of features (N, W, dim): whether the legs are in view (`LEGS_SEEN_SHARE`), read from
    the visibility mask the features end with, so every path that has the features can tell."""
    legs = [spec.joints.index(j) for j in LEGS if j in spec.joints]
    if not legs or len(windows) == 0:
        return np.ones(len(windows), dtype=bool)
    mask = windows[:, :, spec.dim - len(spec.joints) :][:, :, legs] > 0.5
    return mask.any(axis=2).mean(axis=1) >= LEGS_SEEN_SHARE


def sequence_grid(seq: PoseSequence, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A whole sequence on the model's time grid: (grid times, keypoints, visibility)."""
    if len(seq) == 0:
        return np.zeros(0), np.zeros((0, NUM_KEYPOINTS, 2), np.float32), np.zeros((0, NUM_KEYPOINTS), bool)
    grid = np.arange(seq.times[0], seq.times[-1] + 1e-9, 1.0 / spec.rate_hz)
    kp, vis = resample(seq.times, seq.keypoints, seq.scores >= spec.min_score, grid, spec.max_gap_s)
    return grid, kp, vis


def sequence_windows(seq: PoseSequence, spec: FeatureSpec, stride: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows over a sequence: features (N, W, dim) and each window's end time (N,)."""
    grid, kp, vis = sequence_grid(seq, spec)
    feats, ends = [], []
    for start in range(0, len(grid) - spec.window + 1, stride):
        sl = slice(start, start + spec.window)
        if not window_is_usable(vis[sl], spec):
            continue
        feats.append(window_features(kp[sl], vis[sl], spec))
        ends.append(grid[sl][-1])
    if not feats:
        return np.zeros((0, spec.window, spec.dim), np.float32), np.zeros(0)
    return np.stack(feats), np.asarray(ends)


class TrackWindow:
    """Live pose history of one person, turned into the latest window on demand."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._samples: deque[tuple[float, np.ndarray, np.ndarray]] = deque()

    def __len__(self) -> int:
        return len(self._samples)

    def with_spec(self, spec: FeatureSpec) -> TrackWindow:
        """The same pose history for a model that takes windows of another spec."""
        rebuilt = TrackWindow(spec)
        for sample in self._samples:
            rebuilt.add(*sample)
        return rebuilt

    def add(self, t: float, keypoints: np.ndarray, scores: np.ndarray) -> None:
        """Append a pose sample; a gap longer than max_gap_s starts the window afresh."""
        if self._samples and (t <= self._samples[-1][0]):
            return
        if self._samples and t - self._samples[-1][0] > self.spec.max_gap_s:
            self._samples.clear()
        self._samples.append((t, keypoints, scores))
        horizon = t - self.spec.duration_s - self.spec.max_gap_s
        while len(self._samples) > 2 and self._samples[1][0] < horizon:
            self._samples.popleft()

    def features(self) -> np.ndarray | None:
        """The window ending at the newest sample, or None until it covers a full window."""
        if len(self._samples) < 2:
            return None
        t_last = self._samples[-1][0]
        if t_last - self._samples[0][0] < self.spec.duration_s - 0.5 / self.spec.rate_hz:
            return None
        times = np.array([s[0] for s in self._samples])
        kp = np.stack([s[1] for s in self._samples])
        vis = np.stack([s[2] for s in self._samples]) >= self.spec.min_score
        grid = t_last - np.arange(self.spec.window - 1, -1, -1) / self.spec.rate_hz
        kp_grid, vis_grid = resample(times, kp, vis, grid, self.spec.max_gap_s)
        if not window_is_usable(vis_grid, self.spec):
            return None
        return window_features(kp_grid, vis_grid, self.spec)
