"""Follow people across frames so each keeps one id and one pose history.

Greedy matching on box overlap (IoU), falling back to centre distance for small or
fast people. Cheap enough for every posed frame; good enough for the handful of
people a kiosk or a camera sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import Poses, Track


@dataclass
class _TrackState:
    track: Track
    last_seen: float


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boxes a (N,4) and b (M,4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


class Tracker:
    """Assigns stable ids to the people in successive `Poses`."""

    def __init__(self, max_age_s: float = 1.0, min_iou: float = 0.2) -> None:
        self.max_age_s = max_age_s
        self.min_iou = min_iou
        self._states: dict[int, _TrackState] = {}
        self._next_id = 1

    def update(self, poses: Poses, t: float) -> tuple[list[Track], list[int]]:
        """Match poses at time t to tracks. Returns (tracks seen now, ids that expired)."""
        # Retire first: after an outage longer than max_age_s the person in the same
        # spot is a new track, so no history or label is carried across missing time.
        expired = [i for i, s in self._states.items() if t - s.last_seen > self.max_age_s]
        for i in expired:
            del self._states[i]
        ids = list(self._states)
        old_boxes = np.array([self._states[i].track.box for i in ids], dtype=np.float32).reshape(-1, 4)
        affinity = self._affinity(old_boxes, poses.boxes)
        assigned: dict[int, int] = {}
        taken: set[int] = set()
        # Greedy: best pairs first.
        for flat in np.argsort(-affinity, axis=None):
            r, c = np.unravel_index(flat, affinity.shape)
            if affinity[r, c] <= 0:
                break
            if r in taken or c in assigned:
                continue
            assigned[c] = ids[r]
            taken.add(r)
        seen: list[Track] = []
        for c in range(len(poses)):
            track_id = assigned.get(c)
            if track_id is None:
                track_id = self._next_id
                self._next_id += 1
                self._states[track_id] = _TrackState(Track(track_id, poses.keypoints[c], poses.scores[c],
                                                           poses.boxes[c]), t)
            state = self._states[track_id]
            state.track.keypoints = poses.keypoints[c]
            state.track.scores = poses.scores[c]
            state.track.box = poses.boxes[c]
            state.last_seen = t
            seen.append(state.track)
        return seen, expired

    def _affinity(self, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        iou = box_iou(old, new)
        if len(old) == 0 or len(new) == 0:
            return iou
        # Centre distance relative to box size rescues matches IoU misses (fast motion).
        centre_old = (old[:, :2] + old[:, 2:]) / 2
        centre_new = (new[:, :2] + new[:, 2:]) / 2
        size = np.maximum(old[:, 2:] - old[:, :2], 1.0).max(axis=1)
        dist = np.linalg.norm(centre_old[:, None] - centre_new[None], axis=2) / size[:, None]
        near = np.clip(1.0 - dist, 0, None) * 0.5
        score = np.where(iou >= self.min_iou, 1.0 + iou, near)
        return score
