"""The tracker (supervision's ByteTrack plus expiry by time) on real MoveNet poses of real clips."""

from __future__ import annotations

import numpy as np
import pytest
from clips import crossing_clip, read_all, tile_clips

from realtime.pose.movenet_backend import MoveNetPose
from realtime.tracker import Tracker
from realtime.types import Poses


@pytest.fixture(scope="module")
def movenet():
    model = MoveNetPose()
    yield model
    model.close()


def pose_clip(model: MoveNetPose, path) -> list[Poses]:
    return [model.estimate(frame) for frame in read_all(path)]


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def test_four_tiled_people_keep_their_ids_for_the_whole_clip(movenet, datasets, tmp_path):
    clip = tile_clips(datasets / "weizmann", tmp_path / "tiled.avi")
    tracker = Tracker()
    ids: list[set[int]] = [set() for _ in clip.tiles]
    tracked = np.zeros((clip.frames, len(clip.tiles)), bool)
    for i, poses in enumerate(pose_clip(movenet, clip.path)):
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


def test_a_person_walking_across_another_keeps_both_ids(movenet, datasets, tmp_path):
    clip = crossing_clip(datasets / "weizmann", tmp_path / "crossing.avi")
    tracker = Tracker()
    walker_ids, other_ids, overlapping = set(), set(), 0
    for i, poses in enumerate(pose_clip(movenet, clip.path)):
        tracks, expired = tracker.update(poses, i / clip.fps)
        assert expired == []
        if not tracks:
            continue
        fit = [box_iou(t.box, clip.walker_boxes[i]) for t in tracks]
        walker = int(np.argmax(fit))
        if fit[walker] >= 0.5:
            walker_ids.add(tracks[walker].track_id)
        others = [t for j, t in enumerate(tracks) if j != walker]
        other_ids |= {t.track_id for t in others}
        overlapping += any(box_iou(t.box, clip.walker_boxes[i]) > 0.1 for t in others)
    # The clip does cross: for a while the walker's silhouette covers part of the other's box.
    assert overlapping >= 3
    assert len(walker_ids) == 1 and len(other_ids) == 1 and walker_ids != other_ids, (walker_ids, other_ids)


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
