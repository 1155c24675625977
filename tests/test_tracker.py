"""The tracker (supervision's ByteTrack plus expiry by time) on real MoveNet poses of real clips."""

from __future__ import annotations

import numpy as np
import pytest

from clips import crossing_clip, read_all, tile_clips
from realtime.bench.tracking import TrackingClip, people_of, pose_every_frame, track_at
from realtime.config import Config
from realtime.pose.movenet_backend import MoveNetPose
from realtime.tracker import Tracker, box_iou
from realtime.types import Poses


@pytest.fixture(scope="module")
def movenet():
    model = MoveNetPose()
    yield model
    model.close()


@pytest.fixture(scope="module")
def movenet_small_people():
    # The tiled people (~110 px tall in 640x480) are found on every frame only at long side 384
    # (tests/test_movenet.py says how often at 256).
    model = MoveNetPose(long_side=384)
    yield model
    model.close()


def pose_clip(model: MoveNetPose, path) -> list[Poses]:
    return [model.estimate(frame) for frame in read_all(path)]


def test_four_tiled_people_keep_their_ids_for_the_whole_clip(movenet_small_people, datasets, tmp_path):
    clip = tile_clips(datasets / "weizmann", tmp_path / "tiled.avi")
    tracker = Tracker()
    ids: list[set[int]] = [set() for _ in clip.tiles]
    tracked = np.zeros((clip.frames, len(clip.tiles)), bool)
    for i, poses in enumerate(pose_clip(movenet_small_people, clip.path)):
        tracks, expired = tracker.update(poses, i / clip.fps)
        assert expired == []
        for track in tracks:
            cx, cy = (track.box[:2] + track.box[2:]) / 2
            k = next(k for k, (x1, y1, x2, y2) in enumerate(clip.tiles) if x1 <= cx < x2 and y1 <= cy < y2)
            ids[k].add(track.track_id)
            tracked[i, k] = True
    assert [len(s) for s in ids] == [1, 1, 1, 1], ids
    assert len(set.union(*ids)) == 4
    # Seen on the first and the last frame: one id for the whole clip, not for part of it.
    assert tracked[0].all() and tracked[-1].all(), tracked.mean(axis=0)


@pytest.fixture(scope="module")
def crossing(movenet, datasets, tmp_path_factory):
    clip = crossing_clip(datasets / "weizmann", tmp_path_factory.mktemp("clips") / "crossing.avi")
    return clip, pose_clip(movenet, clip.path)


@pytest.mark.parametrize("pose_every", [1, 3])
def test_a_person_walking_across_another_keeps_both_ids(crossing, pose_every):
    """Before and after the walker passes in front of the other person, each has their own id.

    Posing every 3rd frame (`--skip 2`) the people move three times as far between poses:
    the greedy IoU matcher this tracker replaced swapped the two ids there for good.
    """
    clip, poses = crossing
    tracker = Tracker()
    apart: dict[int, tuple[int, int]] = {}  # frame -> (walker's id, the other's id)
    together = []  # frames where the bodies overlap and two people are not seen apart
    for i in range(0, clip.frames, pose_every):
        tracks, expired = tracker.update(poses[i], i / clip.fps)
        assert expired == []
        fit = [box_iou(t.box, clip.walker_boxes[i]) for t in tracks]
        if len(tracks) == 2 and max(fit) >= 0.5:
            walker = int(np.argmax(fit))
            apart[i] = (tracks[walker].track_id, tracks[1 - walker].track_id)
        else:
            together.append(i)
    # The clip does cross: seen apart, then together, then apart again.
    assert together and min(apart) < min(together) and max(apart) > max(together), (sorted(apart), together)
    assert set(apart.values()) == {apart[min(apart)]}, apart


def test_a_gap_longer_than_max_age_starts_a_new_id_and_reports_the_expiry(movenet, weizmann_clip):
    frames = pose_clip(movenet, weizmann_clip)[:40]
    assert all(len(p) == 1 for p in frames)
    tracker = Tracker(max_age_s=1.0)
    t = 0.0
    (first,), _ = tracker.update(frames[0], t)
    # Hidden for 0.6 s (nobody found), then back: the same person, the same id.
    for _ in range(15):
        t += 0.04
        assert tracker.update(Poses.empty(), t) == ([], [])
    for poses in frames[1:20]:
        t += 0.04
        (track,), expired = tracker.update(poses, t)
        assert track.track_id == first.track_id and expired == []
    # Then gone for 1.5 s: the track expires, reported once, and the person comes back as someone new.
    expiries = []
    for _ in range(37):
        t += 0.04
        expiries += tracker.update(Poses.empty(), t)[1]
    assert expiries == [first.track_id]
    seen = []
    for poses in frames[20:]:
        t += 0.04
        tracks, expired = tracker.update(poses, t)
        assert expired == []
        seen += [track.track_id for track in tracks]
    assert seen and first.track_id not in seen and len(set(seen)) == 1


def test_a_person_whose_box_changes_fast_is_never_dropped(movenet, weizmann_clip):
    """Jumping jacks widen the box faster than ByteTrack's smoothed box follows; the person must
    still be on every frame they are found on, with one id (supervision alone drops frame 7)."""
    tracker = Tracker()
    found = [(poses, tracker.update(poses, i / 25)[0]) for i, poses in enumerate(pose_clip(movenet, weizmann_clip))]
    assert all(len(tracks) == len(poses) for poses, tracks in found)
    assert {track.track_id for _, tracks in found for track in tracks} == {1}


def test_three_people_keep_one_id_each_at_3_poses_a_second(movenet, exercise_clip):
    """exercise.avi (three people side by side) posed at 3 Hz as `pose_fps: 3` picks frames: at that rate a
    jumping jack's box changes far between poses, and the outer woman was cut into a second id."""
    clip = TrackingClip("exercise", exercise_clip, people=3)
    fps, poses = pose_every_frame(clip, Config())
    fed, seen = track_at(fps, poses, 3.0)
    assert fed >= 100
    owner = people_of(np.array([x for x, _ in seen]), clip.people)
    ids = [{track_id for (_, track_id), k in zip(seen, owner, strict=True) if k == person} for person in range(3)]
    assert [len(person) for person in ids] == [1, 1, 1], ids
    assert len(set.union(*ids)) == 3
