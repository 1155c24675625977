"""Pose backend and inference worker on real frames; tracker and overlay behaviour."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from conftest import read_frames
from realtime.capture import CaptureThread, open_source
from realtime.classifier import ActionClassifier
from realtime.config import CaptureConfig
from realtime.inference_worker import ActionClassification, StageThread
from realtime.overlay import HudInfo, annotate
from realtime.pose import create_backend
from realtime.queues import BufferPolicy, EndOfStream, FrameQueue
from realtime.serial import SerialLoop
from realtime.tracker import Tracker
from realtime.types import FrameRecord, Poses, Prediction, Track


@pytest.fixture(scope="module")
def mediapipe():
    backend = create_backend("blazepose")
    yield backend
    backend.close()


def test_poses_found_on_most_weizmann_frames(weizmann_clip):
    backend = create_backend("blazepose")  # fresh: BlazePose tracks across calls
    frames = read_frames(weizmann_clip)
    found = 0
    for image in frames:
        poses = backend.estimate(image)
        if len(poses):
            found += 1
            h, w = image.shape[:2]
            assert poses.keypoints.shape == (1, 17, 2) and poses.scores.shape == (1, 17)
            seen = poses.keypoints[0][poses.scores[0] > 0.5]
            assert (seen[:, 0] > -5).all() and (seen[:, 0] < w + 5).all()
            assert (seen[:, 1] > -5).all() and (seen[:, 1] < h + 5).all()
    backend.close()
    assert found / len(frames) >= 0.9


def test_coco_mapping_puts_joints_in_anatomical_order(weizmann_clip, mediapipe):
    """Nose above shoulders above hips above ankles for a standing person."""
    poses = Poses.empty()
    for image in read_frames(weizmann_clip, 20):
        poses = mediapipe.estimate(image)
    assert len(poses) == 1
    kp = poses.keypoints[0]
    nose, shoulders, hips, ankles = kp[0, 1], kp[[5, 6], 1].mean(), kp[[11, 12], 1].mean(), kp[[15, 16], 1].mean()
    assert nose < shoulders < hips < ankles
    # The person's box holds the confident joints.
    x1, y1, x2, y2 = poses.boxes[0]
    assert x1 < kp[0, 0] < x2 and y1 <= nose <= y2


def test_skip_carries_the_last_pose(weizmann_clip, mediapipe):
    loop = SerialLoop(mediapipe, ActionClassification(None), skip=2)
    results = [
        loop.process(FrameRecord("cam0", i, 0.0, img, i / 25)) for i, img in enumerate(read_frames(weizmann_clip, 12))
    ]
    assert [r.posed for r in results] == [i % 3 == 0 for i in range(12)]
    assert loop.poses_run == 4
    for r in results:
        if not r.posed and r.tracks:
            posed = results[r.index - r.index % 3]
            assert r.tracks[0].keypoints is posed.tracks[0].keypoints


def test_worker_thread_classifies_windows_in_file_time(weizmann_clip, random_weights):
    """Real capture and inference threads, real queues: every frame comes out once, labelled after 1.24 s."""
    options = CaptureConfig()
    cap, info = open_source(str(weizmann_clip), options)
    stop = threading.Event()
    frames: FrameQueue[FrameRecord] = FrameQueue(4, BufferPolicy.LOSSLESS)
    results: FrameQueue[FrameRecord] = FrameQueue(4, BufferPolicy.LOSSLESS)
    classifier = ActionClassifier.load(random_weights)
    recognizer = SerialLoop(create_backend("blazepose"), ActionClassification(classifier))
    capture = CaptureThread(cap, info, frames, stop, options)
    worker = StageThread("inference", recognizer.process, frames, results, stop)
    capture.start()
    worker.start()
    out = []
    while True:
        item = results.get(timeout=30)
        assert item is not None
        if isinstance(item, EndOfStream):
            break
        out.append(item)
    capture.join(5)
    worker.join(5)
    recognizer.close()
    assert [r.index for r in out] == list(range(89))
    labelled = [r.index for r in out if r.tracks and r.tracks[0].prediction is not None]
    assert labelled, "no window was ever classified"
    # Time is the file's: 32 samples at 25 Hz span 1.24 s, i.e. frame 31, however fast the CPU is.
    assert labelled[0] == 31
    assert set(labelled) == set(range(31, 89))


def test_tracker_keeps_ids_and_separates_people():
    tracker = Tracker(max_age_s=0.5)

    def people(*xs):
        kp = np.zeros((len(xs), 17, 2))
        boxes = np.array([[x, 10, x + 40, 110] for x in xs], dtype=float)
        return Poses(kp, np.ones((len(xs), 17)), boxes)

    first, _ = tracker.update(people(0, 200), 0.0)
    ids = [t.track_id for t in first]
    assert len(set(ids)) == 2
    # Detector order flips and both move a little: ids follow the people, not the order.
    second, _ = tracker.update(people(205, 4), 0.1)
    assert [t.track_id for t in second] == [ids[1], ids[0]]
    # The left person leaves; after max_age their track expires.
    _, expired = tracker.update(people(210), 0.2)
    assert expired == []
    tracker.update(people(212), 0.4)
    _, expired = tracker.update(people(215), 0.75)
    assert expired == [ids[0]]
    third, _ = tracker.update(people(0, 220), 0.8)
    assert third[1].track_id == ids[1] and third[0].track_id not in ids


def test_overlay_draws_skeleton_label_and_hud(weizmann_clip, mediapipe):
    image = read_frames(weizmann_clip, 1)[0]
    original = image.copy()
    poses = mediapipe.estimate(image)
    track = Track(1, poses.keypoints[0], poses.scores[0], poses.boxes[0], Prediction("WAVING_1HAND", 0.87))
    out = annotate(FrameRecord("cam0", 0, 0.0, image, tracks=[track]), HudInfo(29.5, 30.0, 42.0, 3))
    changed = np.abs(out.astype(int) - original).max(axis=2) > 30
    x1, y1, x2, y2 = poses.boxes[0].astype(int)
    # Pixels change on the person (skeleton) and in the top-left corner (HUD), not everywhere.
    assert changed[y1:y2, x1:x2].mean() > 0.05
    assert changed[:12, :120].mean() > 0.3
    assert changed.mean() < 0.5


def test_smoothing_follows_time_not_update_count():
    from realtime.smoothing import ProbabilitySmoother

    before, after = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    for rate in (8.0, 10.0, 50.0):  # KTH-like, OpenPose-like and fast video pose rates
        smoother = ProbabilitySmoother(time_constant_s=0.5)
        smoother.update(1, 0.0, before)
        for k in range(1, int(rate * 0.5) + 1):
            out = smoother.update(1, k / rate, after)
        # After one time constant an EMA has moved 1 - 1/e of the way, at any update rate.
        assert out[1] == pytest.approx(1 - np.exp(-1), abs=1e-6)


def test_smoothing_stops_one_frame_flicker_and_forgets_people():
    from realtime.smoothing import ProbabilitySmoother

    smoother = ProbabilitySmoother(time_constant_s=0.5)
    steady, blip = np.array([0.9, 0.1]), np.array([0.1, 0.9])
    for i in range(25):
        smoother.update(7, i / 25, steady)
    assert np.argmax(smoother.update(7, 1.0, blip)) == 0  # one odd window does not flip the label
    off = ProbabilitySmoother(time_constant_s=0.0)
    off.update(7, 0.0, steady)
    assert np.argmax(off.update(7, 0.04, blip)) == 1
    smoother.forget(7)
    assert len(smoother) == 0
    assert np.allclose(smoother.update(7, 2.0, blip), blip)  # a returning id starts afresh


def test_captions_stay_off_the_neighbours_and_each_other():
    """Five people side by side, each narrower than their caption: no caption covers another person's
    box or another caption (a caption aligned to its box's left ran over the next person's head)."""
    from realtime.overlay import _overlaps, draw_captions

    image = np.zeros((480, 640, 3), np.uint8)
    tops = [200, 150, 210, 160, 205]  # people of different heights, 60 px wide, 10 px apart
    tracks = [
        Track(
            i + 1,
            np.zeros((17, 2), np.float32),
            np.zeros(17, np.float32),
            np.array([50 + 70 * i, top, 110 + 70 * i, 420], np.float32),
            Prediction("JUMPING_JACKS", 0.97),
        )
        for i, top in enumerate(tops)
    ]
    hud = (0, 0, 300, 20)
    rects = draw_captions(image, tracks, [hud])
    assert len(rects) == 5 and all(r[2] - r[0] > 60 for r in rects)  # wider than a person
    for track, rect in zip(sorted(tracks, key=lambda t: (t.box[1], t.box[0])), rects, strict=True):
        for other in tracks:
            if other is not track:
                assert not _overlaps(rect, tuple(int(v) for v in other.box)), (track.track_id, other.track_id)
    for a, b in itertools.combinations([hud, *rects], 2):
        assert not _overlaps(a, b)
