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

import numpy as np

from .types import Poses, Track

# ByteTrack counts a lost track's age in frames, but the pose rate varies (the source's fps,
# skip, frames dropped live). So its buffer is sized for the fastest pose rate and expiry by
# time is done here; a longer buffer only keeps a lost track inside ByteTrack for longer.
MAX_POSE_RATE_HZ = 60.0
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


class Tracker:
    """Assigns stable ids to the people in successive `Poses`, fed in frame order."""

    def __init__(self, max_age_s: float = 1.0) -> None:
        import supervision as sv

        if not hasattr(sv, "ByteTrack"):
            raise ImportError(
                f"supervision {sv.__version__} has no ByteTrack (removed in 0.31); "
                "install the pinned supervision==0.30.9 from requirements.txt"
            )
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
        self._detections = sv.Detections
        self._ids: dict[int, int] = {}  # ByteTrack's id -> ours
        self._tracks: dict[int, Track] = {}
        self._last_seen: dict[int, float] = {}
        self._next_id = 1
        self._last_t: float | None = None  # the previous update's time

    def update(self, poses: Poses, t: float) -> tuple[list[Track], list[int]]:
        """Match poses at time t to tracks. Returns (tracks seen now, in pose order; ids that expired).

        Every pose gets a track. ByteTrack confirms a new person only on their second frame and
        reports a track only while its smoothed box overlaps the pose's by IoU 0.5, so on its
        own it leaves people out: new ones for a frame, and fast-moving ones (arms flung out in
        a jumping jack) now and then. A pose it left out goes to the track of the previous posed
        frame that overlaps it most (IoU >= MIN_HOLD_IOU), else to a new track that ByteTrack's
        own id adopts once it confirms the person.
        """
        expired = [i for i, seen in self._last_seen.items() if t - seen > self.max_age_s]
        for ours in expired:
            del self._last_seen[ours], self._tracks[ours]
        if expired:
            gone = set(expired)
            self._ids = {theirs: ours for theirs, ours in self._ids.items() if ours not in gone}
        detections = self._detections(
            xyxy=poses.boxes.astype(np.float32),
            confidence=np.full(len(poses), SURE, np.float32),
            data={"pose": np.arange(len(poses))},
        )
        tracked = self._byte.update_with_detections(detections)
        # With no track in view supervision returns empty Detections without the data field.
        their_ids = tracked.tracker_id if tracked.tracker_id is not None else np.zeros(0, int)
        pose_index = np.asarray(tracked.data.get("pose", np.zeros(0, int)))
        claimed = set(self._ids.values())
        previous = [track for tid, track in self._tracks.items() if self._last_seen.get(tid) == self._last_t]
        seen: dict[int, Track] = {}
        for theirs, c in zip(their_ids.tolist(), pose_index.tolist(), strict=True):
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
