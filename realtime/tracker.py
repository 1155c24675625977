"""Follow people across frames so each keeps one id and one pose history.

supervision's ByteTrack does the matching: a Kalman filter predicts each track's box, and
the pose boxes are assigned to the predictions by overlap (Hungarian), so a person who is
hidden behind another for a few frames keeps their track while ByteTrack holds it as lost.
On top of it this module keeps time, not frames: a track unseen for longer than `max_age_s`
is reported expired (its window and verdict are freed) and whoever is found there later is
a new person with a new id, so no history or label is carried across missing time.

Measured with MoveNet poses on the clips of tests/clips.py (tests/test_tracker.py): four
people tiled 2x2 keep 4 ids over 114 frames; a walker crossing in front of a waving person
(who is not found at all for 7 frames, while the two bodies overlap) keeps both ids, also
when only every 3rd frame is posed, where the greedy IoU matcher this replaces swapped the
two ids for good; the three people of exercise.avi keep 3 ids over 393 frames. No
keypoint-aware matching was added: on these clips the boxes alone never swapped an id.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .types import Poses, Track

# ByteTrack counts in frames (its buffer of lost tracks, its frame_rate), but the pose rate varies:
# the source's fps, skip, pose_fps, frames dropped live. So the tracker measures the rate from the
# update times and sets ByteTrack's buffer to the poses that fit in the max age at that rate;
# expiry itself is by time, here.
MAX_POSE_RATE_HZ = 60.0  # the rate assumed until two updates have measured it
# At a low pose rate (a loaded machine: 3-5 poses/s) a second is only a few poses: a person missed
# on a couple of them must not become someone new, so a track lives at least this many intervals.
MIN_MISSED_POSES = 3
RATE_SMOOTHING = 0.2  # weight of the newest interval in the running mean
# A pose ByteTrack left out, or a person it just confirmed, goes to the previous frame's track it overlaps this much.
MIN_HOLD_IOU = 0.3

# Every pose handed in is a person by the backend's own threshold, so ByteTrack sees each as
# sure (confidence 1). Given MoveNet's raw person scores instead (a clearly visible person
# scores 0.3-0.5), ByteTrack, made for detectors whose objects score 0.5-0.9, weighs box
# overlap by the score and starts tracks only above its activation threshold + 0.1: on the
# tiled clip one of the four people never got a track (another got 5 ids with the threshold
# lowered to 0.1), and the crossing swapped the two ids. With confidence 1: 4 ids, 417 of
# the 418 poses tracked; the crossing kept both ids.
SURE = 1.0


def load_supervision() -> Any:
    """supervision, checked to have ByteTrack. Its import takes 0.5-1 s of CPU: a pipeline calls
    this while it builds, so the first posed frame does not pay for it while the cameras run."""
    import supervision as sv

    if not hasattr(sv, "ByteTrack"):
        raise ImportError(
            f"supervision {sv.__version__} has no ByteTrack (removed in 0.31); "
            "install the pinned supervision==0.30.9 from requirements.txt"
        )
    return sv


class Tracker:
    """Assigns stable ids to the people in successive `Poses`, fed in frame order."""

    def __init__(self, max_age_s: float = 1.0) -> None:
        sv = load_supervision()
        self.max_age_s = max_age_s
        with warnings.catch_warnings():
            # supervision (0.28-0.30) marks its ByteTrack deprecated for the `trackers` package,
            # which needs numpy >= 2; mediapipe needs numpy < 2.
            warnings.simplefilter("ignore")
            self._byte = sv.ByteTrack(
                lost_track_buffer=max(1, math.ceil(max_age_s * MAX_POSE_RATE_HZ)),
                frame_rate=30,  # ByteTrack scales the buffer by frame_rate / 30: keep it in frames
                minimum_consecutive_frames=1,
            )
        self._iou = sv.box_iou_batch
        self._interval_s: float | None = None  # running mean of the time between updates
        self._ids: dict[int, int] = {}  # ByteTrack's id -> ours
        self._tracks: dict[int, Track] = {}
        self._last_seen: dict[int, float] = {}
        self._next_id = 1
        self._last_t: float | None = None  # the previous update's time

    def update(self, poses: Poses, t: float) -> tuple[list[Track], list[int]]:
        """Match poses at time t to tracks. Returns (tracks seen now, in pose order; ids that expired).

        Every pose gets a track. ByteTrack confirms a new person only on their second frame, and
        a track whose smoothed box overlaps no pose by MIN_HOLD_IOU is not read back (`_match`),
        so on its own it leaves people out: new ones for a frame, fast-moving ones now and then.
        A pose it left out goes to the track of the previous posed frame that overlaps it most
        (IoU >= MIN_HOLD_IOU), else to a new track that ByteTrack's own id adopts once it
        confirms the person.
        """
        self._follow_rate(t)
        max_age = self.max_age_s_now
        expired = [i for i, seen in self._last_seen.items() if t - seen > max_age]
        for ours in expired:
            del self._last_seen[ours], self._tracks[ours]
        if expired:
            gone = set(expired)
            self._ids = {theirs: ours for theirs, ours in self._ids.items() if ours not in gone}
        boxes = poses.boxes.astype(np.float32)
        tensors = np.hstack([boxes.reshape(-1, 4), np.full((len(poses), 1), SURE, np.float32)])
        their_ids, pose_index = self._match(self._byte.update_with_tensors(tensors), boxes)
        claimed = set(self._ids.values())
        previous = [track for tid, track in self._tracks.items() if self._last_seen.get(tid) == self._last_t]
        seen: dict[int, Track] = {}
        for theirs, c in zip(their_ids, pose_index, strict=True):
            if theirs not in self._ids:
                # New to ByteTrack: the person we gave a track last frame, or a new one.
                unclaimed = [track for track in previous if track.track_id not in claimed]
                adopted = _best_overlap(unclaimed, poses.boxes[c])
                self._ids[theirs] = adopted.track_id if adopted else self._new_track(poses, c).track_id
                claimed.add(self._ids[theirs])
            seen[c] = self._follow(self._tracks[self._ids[theirs]], poses, c, t)
        shown = {track.track_id for track in seen.values()}
        left_out = [track for track in previous if track.track_id not in shown]
        for c in range(len(poses)):
            if c not in seen:
                held = _best_overlap(left_out, poses.boxes[c])
                if held is not None:
                    left_out.remove(held)
                seen[c] = self._follow(held or self._new_track(poses, c), poses, c, t)
        self._last_t = t
        return [seen[c] for c in sorted(seen)], expired

    @property
    def max_age_s_now(self) -> float:
        """How long an unseen track lives at the measured pose rate: max_age_s, or a few poses if longer."""
        if self._interval_s is None:
            return self.max_age_s
        return max(self.max_age_s, MIN_MISSED_POSES * self._interval_s)

    def _follow_rate(self, t: float) -> None:
        """Measure the pose rate from the update times and size ByteTrack's lost-track buffer by it."""
        if self._last_t is not None and 0 < t - self._last_t <= self.max_age_s_now:  # a longer gap is an outage
            dt = t - self._last_t
            previous = self._interval_s if self._interval_s is not None else dt
            self._interval_s = (1 - RATE_SMOOTHING) * previous + RATE_SMOOTHING * dt
            # Poses within the max age, plus one: ByteTrack keeps a lost track that long (our expiry is by time).
            self._byte.max_time_lost = math.ceil(self.max_age_s_now / self._interval_s) + 1

    def _match(self, tracks: list[Any], boxes: np.ndarray) -> tuple[list[int], list[int]]:
        """Which pose each of ByteTrack's current tracks is: (their ids, pose indices).

        ByteTrack matched them itself but does not say to which box; supervision's own read-back
        needs IoU 0.5 between the smoothed and the raw box, which a jumping jack's arms flung out
        between two poses at 3 poses/s miss (the person was then given a new id). Read back
        greedily, best overlap first, down to MIN_HOLD_IOU.
        """
        if not tracks or not len(boxes):
            return [], []
        overlap = self._iou(boxes, np.array([track.tlbr for track in tracks], np.float32))
        their_ids, pose_index = [], []
        for c, k in zip(*np.unravel_index(np.argsort(-overlap, axis=None), overlap.shape), strict=True):
            if overlap[c, k] < MIN_HOLD_IOU:
                break
            if c in pose_index or int(tracks[k].external_track_id) in their_ids:
                continue
            their_ids.append(int(tracks[k].external_track_id))
            pose_index.append(int(c))
        return their_ids, pose_index

    def _new_track(self, poses: Poses, c: int) -> Track:
        track = self._tracks[self._next_id] = Track(self._next_id, poses.keypoints[c], poses.scores[c], poses.boxes[c])
        self._next_id += 1
        return track

    def _follow(self, track: Track, poses: Poses, c: int, t: float) -> Track:
        track.keypoints, track.scores, track.box = poses.keypoints[c], poses.scores[c], poses.boxes[c]
        self._last_seen[track.track_id] = t
        return track


def _best_overlap(tracks: list[Track], box: np.ndarray) -> Track | None:
    """The track whose box overlaps `box` most, if by at least MIN_HOLD_IOU."""
    if not tracks:
        return None
    overlap = [box_iou(track.box, box) for track in tracks]
    best = int(np.argmax(overlap))
    return tracks[best] if overlap[best] >= MIN_HOLD_IOU else None


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1,y1,x2,y2 boxes."""
    w = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    h = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    inter = w * h
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0
