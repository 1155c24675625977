"""The pose pool: real MediaPipe models in real threads, results back in frame order."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from conftest import count_frames, read_events, read_frames, run_cli
from pose_wrappers import FailingPose, SlowPose
from realtime.capture import BufferPolicy, EndOfStream, FrameQueue
from realtime.config import Config
from realtime.pipeline import Pipeline, pose_workers
from realtime.pose import create_backend
from realtime.pose_pool import InOrder, PoseEstimate, PosePool, RoundRobinPose
from realtime.types import Frame


def _frames(clip, limit=None) -> list[Frame]:
    return [Frame(i, 0.0, image, t_source=i / 25) for i, image in enumerate(read_frames(clip, limit))]


def _run_pool(backends, frames, skip=0):
    """Feed `frames` through a pool; everything it hands on, in the order it came out."""
    stop = threading.Event()
    inbox, outbox = FrameQueue(4, BufferPolicy.LOSSLESS), FrameQueue(4, BufferPolicy.LOSSLESS)
    pool = PosePool(backends, skip, inbox, outbox, stop)
    pool.start()
    out = []

    def feed():
        for frame in frames:
            inbox.put(frame, stop)
        inbox.put(EndOfStream(), stop)

    feeder = threading.Thread(target=feed)
    feeder.start()
    while True:
        item = outbox.get(timeout=30)
        assert item is not None, "the pool stalled"
        out.append(item)
        if isinstance(item, EndOfStream):
            break
    stop.set()
    feeder.join()
    pool.join(timeout=10)
    pool.close()
    return out


def test_in_order_holds_early_arrivals_back():
    order = InOrder()
    frame = Frame(0, 0.0, np.zeros((2, 2, 3), np.uint8))
    assert order.push(PoseEstimate(2, frame, None)) == []
    assert order.push(PoseEstimate(1, frame, None)) == []
    assert [e.seq for e in order.push(PoseEstimate(0, frame, None))] == [0, 1, 2]
    assert [e.seq for e in order.push(PoseEstimate(3, frame, None))] == [3]
    assert order.push(PoseEstimate(5, frame, None)) == [] and len(order) == 1
    assert [e.seq for e in order.rest()] == [5] and len(order) == 0


@pytest.mark.mediapipe
@pytest.mark.parametrize("skip", [0, 2])
def test_a_slow_lane_changes_nothing_but_the_timing(weizmann_clip, skip):
    """Lane 0 sleeps 30 ms a frame, so lane 1 runs ahead; what comes out must still be the
    serial round-robin result, frame for frame, in order."""
    frames = _frames(weizmann_clip, 60)
    out = _run_pool([SlowPose(create_backend("mediapipe"), 0.03), create_backend("mediapipe")], frames, skip)
    assert isinstance(out[-1], EndOfStream) and out[-1].error is None
    estimates = out[:-1]
    assert [e.frame.index for e in estimates] == list(range(len(frames)))
    assert [e.poses is not None for e in estimates] == [i % (skip + 1) == 0 for i in range(len(frames))]

    reference = RoundRobinPose([create_backend("mediapipe"), create_backend("mediapipe")])
    for frame, got in zip(frames, estimates):
        if got.poses is None:
            continue
        want = reference.estimate(frame.image)
        assert len(got.poses) == len(want)
        np.testing.assert_array_equal(got.poses.keypoints, want.keypoints)
    reference.close()
    assert sum(1 for e in estimates if e.poses is not None and len(e.poses)) >= 0.9 * len(frames) / (skip + 1)


@pytest.mark.mediapipe
def test_a_failing_worker_ends_the_stream_with_its_error(weizmann_clip):
    frames = _frames(weizmann_clip, 40)
    out = _run_pool([FailingPose(create_backend("mediapipe"), fail_at=6), create_backend("mediapipe")], frames)
    end = out[-1]
    assert isinstance(end, EndOfStream) and "injected pose failure" in (end.error or "")
    # Lane 0 fails on its 6th frame, frame 10: every frame before it comes out, in order, and no later one.
    assert [e.frame.index for e in out[:-1]] == list(range(10))


@pytest.mark.mediapipe
def test_cli_reports_a_pose_failure_and_keeps_the_video(weizmann_clip, tmp_path):
    """Through the pipeline: the error is one line, the exit code non-zero, the video playable."""
    config = Config()
    config.source = str(weizmann_clip)
    config.output.headless = True
    config.output.video = str(tmp_path / "out.mp4")
    config.output.events = str(tmp_path / "events.jsonl")
    config.classifier.weights = str(tmp_path / "none.pt")  # poses only
    pipeline = Pipeline(config, notice=lambda message: None)
    healthy = pipeline.pose_pool.workers[0].backend
    pipeline.pose_pool.workers[0].backend = FailingPose(create_backend("mediapipe"), fail_at=11)
    summary = pipeline.run()
    healthy.close()
    assert summary.error and "injected pose failure" in summary.error
    assert summary.frames_out == 20  # lane 0's 11th frame is frame 20
    assert count_frames(tmp_path / "out.mp4") == summary.frames_out
    ended = [e for e in read_events(tmp_path / "events.jsonl") if e.get("status") == "ended"]
    assert ended and "injected pose failure" in ended[0]["error"]


def test_auto_workers_follow_the_backend():
    config = Config()
    assert pose_workers(config) == min(2, os.cpu_count() or 1)
    config.pose.backend = "detectron2"
    assert pose_workers(config) == 1
    config.pose.workers = 3
    assert pose_workers(config) == 3


@pytest.mark.slow
def test_cli_pose_workers_flag(exercise_clip, tmp_path):
    """--pose-workers reaches the pool: three models write every frame; a negative count is refused."""
    out, events = tmp_path / "w3.mp4", tmp_path / "w3.jsonl"
    proc = run_cli("--source", str(exercise_clip), "--headless", "--pose-workers", "3",
                   "--output", str(out), "--events", str(events), "--max-frames", "120")
    assert proc.returncode == 0, proc.stderr
    summary = read_events(events)[-1]
    assert summary["frames_in"] == summary["frames_out"] == 120 == count_frames(out)

    proc = run_cli("--source", str(exercise_clip), "--headless", "--pose-workers", "-1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("realtime: error: config: pose.workers must be at least 0, "
                                                    "got -1")


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
    config.classifier.weights = str(tmp_path / "none.pt")  # poses only
    pipeline = Pipeline(config, notice=lambda message: None)
    slow = [SlowPose(create_backend("mediapipe"), 0.25) for _ in range(2)]
    healthy = [worker.backend for worker in pipeline.pose_pool.workers]
    for worker, backend in zip(pipeline.pose_pool.workers, slow):
        worker.backend = backend
    summary = pipeline.run()
    for backend in healthy:
        backend.close()
    assert summary.error is None
    assert pipeline.frames.dropped > 0, "the models were meant to fall behind"
    assert pipeline.posed.dropped == 0 and pipeline.results.dropped == 0
    assert summary.frames_in == 60 and summary.frames_out + summary.dropped == summary.frames_in
