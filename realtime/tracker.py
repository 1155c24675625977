"""Follow people across frames so each keeps one id and one pose history.

supervision's ByteTrack does the matching: a Kalman filter predicts each track's box, and
the pose boxes are assigned to the predictions by overlap (Hungarian), so a person who is
hidden behind another for a few frames keeps their track while ByteTrack holds it as lost.
On top of it this module keeps time, not frames: a track unseen for longer than `max_age_s`
is reported expired (its window and verdict are freed) and whoever is found there later is
a new person with a new id, so no history or label is carried across missing time.

Measured with MoveNet poses (scripts in tests/test_tracker.py's clips): four people tiled
2x2 keep 4 ids over 114 frames; a walker crossing in front of a waving person (the waver
is hidden for 7 frames) keeps both ids. The hand-written greedy IoU matcher this replaces
had no motion model.
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

    def update(self, poses: Poses, t: float) -> tuple[list[Track], list[int]]:
        """Match poses at time t to tracks. Returns (tracks seen now, in pose order; ids that expired).

        A person new to the scene gets a track on the second frame in a row they are found
        (ByteTrack confirms new tracks so; on the very first update, at once).
        """
        expired = [i for i, seen in self._last_seen.items() if t - seen > self.max_age_s]
        for track_id in expired:
            del self._last_seen[track_id], self._tracks[track_id]
        if expired:
            gone = set(expired)
            self._ids = {theirs: ours for theirs, ours in self._ids.items() if ours not in gone}
        detections = self._detections(xyxy=poses.boxes.astype(np.float32),
                                      confidence=np.full(len(poses), SURE, np.float32),
                                      data={"pose": np.arange(len(poses))})
        tracked = self._byte.update_with_detections(detections)
        # With no track in view supervision returns empty Detections without the data field.
        pose_index = tracked.data.get("pose", np.zeros(0, int))
        seen: dict[int, Track] = {}
        for theirs, c in zip(tracked.tracker_id, pose_index):
            track_id = self._ids.get(int(theirs))
            if track_id is None:
                # New to ByteTrack, or one it held while lost longer than max_age_s: a new person.
                track_id = self._ids[int(theirs)] = self._next_id
                self._next_id += 1
                self._tracks[track_id] = Track(track_id, poses.keypoints[c], poses.scores[c], poses.boxes[c])
            track = self._tracks[track_id]
            track.keypoints, track.scores, track.box = poses.keypoints[c], poses.scores[c], poses.boxes[c]
            self._last_seen[track_id] = t
            seen[int(c)] = track
        return [seen[c] for c in sorted(seen)], expired
