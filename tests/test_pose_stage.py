"""The pose stage: real pose models in real threads, results back in frame order, tracked."""

from __future__ import annotations

import itertools
import os
import threading

import numpy as np
import pytest

from conftest import count_frames, read_events, read_frames, run_cli
from realtime.config import CameraConfig, Config
from realtime.pipeline import Pipeline
from realtime.pose import create_backend, worker_count
from realtime.pose.faults import FailingPose, SlowPose
from realtime.pose_stage import InOrder, PoseSchedule, PoseStage, RoundRobinPose, _Numbered
from realtime.queues import BufferPolicy, CameraEnd, CameraInbox, CameraQueue, EndOfStream, FrameQueue
from realtime.types import FrameRecord


def _frames(clip, limit=None, camera="cam0") -> list[FrameRecord]:
    return [FrameRecord(camera, i, 0.0, image, t_source=i / 25) for i, image in enumerate(read_frames(clip, limit))]


def _run_stage(backends, frames, skip=0):
    """Feed `frames` through a pose stage; everything it hands on, in the order it came out."""
    stop = threading.Event()
    inbox = CameraInbox({"cam0": (4, BufferPolicy.LOSSLESS)})
    outbox: FrameQueue[FrameRecord] = FrameQueue(4, BufferPolicy.LOSSLESS)
    stage = PoseStage(backends, [CameraConfig("cam0", "clip", skip=skip)], inbox, outbox, stop)
    stage.start()
    out = []

    def feed():
        camera = CameraQueue(inbox, "cam0")
        for frame in frames:
            camera.put(frame, stop)
        camera.put(EndOfStream(), stop)

    feeder = threading.Thread(target=feed)
    feeder.start()
    while True:
        item = outbox.get(timeout=30)
        assert item is not None, "the pose stage stalled"
        out.append(item)
        if isinstance(item, EndOfStream):
            break
    stop.set()
    feeder.join()
    stage.join(timeout=10)
    stage.close()
    return out


def test_in_order_holds_early_arrivals_back():
    order = InOrder()
    record = FrameRecord("cam0", 0, 0.0, np.zeros((2, 2, 3), np.uint8))
    assert order.push(_Numbered(2, record)) == []
    assert order.push(_Numbered(1, record)) == []
    assert [e.seq for e in order.push(_Numbered(0, record))] == [0, 1, 2]
    assert [e.seq for e in order.push(_Numbered(3, record))] == [3]
    assert order.push(_Numbered(5, record)) == [] and len(order) == 1


def test_pose_schedule_skip_and_rate_cap():
    image = np.zeros((2, 2, 3), np.uint8)
    skip = PoseSchedule(skip=2)
    assert [skip.wants(FrameRecord("c", i, 0.0, image, t_source=i / 25)) for i in range(7)] == [
        True,
        False,
        False,
        True,
        False,
        False,
        True,
    ]
    capped = PoseSchedule(pose_fps=10)  # 25 fps in, at most 10 poses a second
    posed = [capped.wants(FrameRecord("c", i, 0.0, image, t_source=i / 25)) for i in range(250)]
    assert sum(posed) == 100  # 10 Hz over 10 s exactly: every 2nd and 3rd frame in turn
    assert not any(a and b for a, b in itertools.pairwise(posed))  # never two frames in a row at 25 fps


def test_pose_rate_cap_holds_its_average_on_a_jittery_camera_and_restarts_after_a_gap():
    rng = np.random.default_rng(0)
    # 30 fps with +-8 ms of grab jitter for 20 s, then the stream stalls for 3 s and goes on.
    times = [i / 30 + rng.uniform(-0.008, 0.008) for i in range(600)]
    times += [23 + i / 30 for i in range(60)]
    schedule = PoseSchedule(pose_fps=10)
    posed = [t for t in times if schedule.due(t)]
    before = [t for t in posed if t < 21]
    assert 198 <= len(before) <= 201  # 10 a second on average, not the 15 a too-loose cap gives
    after = [t for t in posed if t >= 23]
    assert after[0] == 23  # the first frame after the gap is posed...
    assert min(b - a for a, b in itertools.pairwise(after)) > 0.09  # ...with no burst to catch up
    assert 19 <= len(after) <= 21


def test_camera_inbox_takes_cameras_in_turn():
    """A camera with a backlog never starves one with a single frame waiting."""
    stop = threading.Event()
    inbox: CameraInbox[str] = CameraInbox({"a": (8, BufferPolicy.LOSSLESS), "b": (8, BufferPolicy.LOSSLESS)})
    for i in range(5):
        inbox.put("a", f"a{i}", stop)
    inbox.put("b", "b0", stop)
    inbox.put("b", CameraEnd(None, "b"), stop)
    taken = [inbox.take(stop) for _ in range(4)]
    assert taken[:3] == ["a0", "b0", "a1"] and isinstance(taken[3], CameraEnd)
    live: CameraInbox[str] = CameraInbox({"a": (1, BufferPolicy.DROP_OLDEST)})
    for i in range(3):
        live.put("a", f"a{i}", stop)
    assert live.take(stop) == "a2" and live.dropped["a"] == 2


@pytest.mark.mediapipe
@pytest.mark.parametrize("skip", [0, 2])
def test_a_slow_lane_changes_nothing_but_the_timing(weizmann_clip, skip):
    """Lane 0 sleeps 30 ms a frame, so lane 1 runs ahead; what comes out must still be the
    serial round-robin result, frame for frame, in order."""
    frames = _frames(weizmann_clip, 60)
    images = [frame.image.copy() for frame in frames]
    out = _run_stage([SlowPose(create_backend("blazepose"), 0.03), create_backend("blazepose")], frames, skip)
    assert isinstance(out[-1], EndOfStream) and out[-1].error is None
    estimates = out[:-1]
    assert [e.index for e in estimates] == list(range(len(frames)))
    assert [e.poses is not None for e in estimates] == [i % (skip + 1) == 0 for i in range(len(frames))]
    # Tracked in the stage, and carried over the unposed frames: one person, one id.
    assert sum(1 for e in estimates if len(e.tracks) == 1) >= 0.9 * len(estimates)
    assert len({t.track_id for e in estimates for t in e.tracks}) == 1

    reference = RoundRobinPose([create_backend("blazepose"), create_backend("blazepose")])
    for image, got in zip(images, estimates, strict=True):
        if got.poses is None:
            continue
        want = reference.estimate(image)
        assert len(got.poses) == len(want)
        np.testing.assert_array_equal(got.poses.keypoints, want.keypoints)
    reference.close()
    assert sum(1 for e in estimates if e.poses is not None and len(e.poses)) >= 0.9 * len(frames) / (skip + 1)


@pytest.mark.mediapipe
def test_a_failing_worker_ends_the_stream_with_its_error(weizmann_clip):
    frames = _frames(weizmann_clip, 40)
    out = _run_stage([FailingPose(create_backend("blazepose"), fail_at=6), create_backend("blazepose")], frames)
    end = out[-1]
    assert isinstance(end, EndOfStream) and "injected pose failure" in (end.error or "")
    # Lane 0 fails on its 6th frame, frame 10: every frame before it comes out, in order, and no later one.
    assert [e.index for e in out[:-1]] == list(range(10))


@pytest.mark.mediapipe
def test_cli_reports_a_pose_failure_and_keeps_the_video(weizmann_clip, tmp_path):
    """Through the pipeline: the error is one line, the exit code non-zero, the video playable."""
    config = Config()
    config.source = str(weizmann_clip)
    config.output.headless = True
    config.output.video = str(tmp_path / "out.mp4")
    config.output.events = str(tmp_path / "events.jsonl")
    backends = [FailingPose(create_backend("blazepose"), fail_at=11), create_backend("blazepose")]
    summary = Pipeline(config, backends=backends).run()
    assert summary.error and "injected pose failure" in summary.error
    assert summary.frames_out == 20  # lane 0's 11th frame is frame 20
    assert count_frames(tmp_path / "out.mp4") == summary.frames_out
    ended = [e for e in read_events(tmp_path / "events.jsonl") if e.get("status") == "ended"]
    assert ended and "injected pose failure" in ended[0]["error"]


def test_auto_workers_follow_the_backend():
    pose = Config().pose
    assert worker_count(pose) == min(2, os.cpu_count() or 1)
    pose.backend = "detectron2"
    assert worker_count(pose) == 1
    pose.workers = 3
    assert worker_count(pose) == 3


@pytest.mark.slow
def test_cli_pose_workers_flag(exercise_clip, tmp_path):
    """--pose-workers reaches the pool: three models write every frame; a negative count is refused."""
    out, events = tmp_path / "w3.mp4", tmp_path / "w3.jsonl"
    proc = run_cli(
        "--source",
        str(exercise_clip),
        "--headless",
        "--pose-workers",
        "3",
        "--output",
        str(out),
        "--events",
        str(events),
        "--max-frames",
        "120",
    )
    assert proc.returncode == 0, proc.stderr
    summary = read_events(events)[-1]
    assert summary["frames_in"] == summary["frames_out"] == 120 == count_frames(out)

    proc = run_cli("--source", str(exercise_clip), "--headless", "--pose-workers", "-1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("realtime: error: config: pose.workers must be at least 0, got -1")


@pytest.mark.mediapipe
@pytest.mark.slow
def test_live_frames_are_dropped_before_pose_never_after(exercise_clip, tmp_path):
    """A file paced like a 10 fps camera, two models at ~270 ms a frame (~7 frames/s together):
    frames must be dropped at the entry only, and every frame read is either shown or counted."""
    config = Config()
    config.source = str(exercise_clip)
    config.max_frames = 60
    config.capture.pace = True
    config.capture.policy = "drop_oldest"
    config.pose.workers = 2
    config.output.headless = True
    pipeline = Pipeline(config, backends=[SlowPose(create_backend("blazepose"), 0.25) for _ in range(2)])
    summary = pipeline.run()
    assert summary.error is None
    assert pipeline.inbox.dropped["cam0"] > 0, "the models were meant to fall behind"
    assert pipeline.posed.dropped == 0 and pipeline.results.dropped == 0
    assert summary.frames_in == 60 and summary.frames_out + summary.dropped == summary.frames_in
