"""Capture with real files, real threads and real queues: the two buffer policies."""

from __future__ import annotations

import threading
import time

import pytest

from conftest import REPO
from realtime.capture import CaptureThread, SourceKind, classify_source, open_source
from realtime.config import CaptureConfig, load_config
from realtime.pipeline import Pipeline
from realtime.queues import BufferPolicy, EndOfStream, FrameQueue
from realtime.types import FrameRecord


def drain(queue: FrameQueue, stop: threading.Event, delay_s: float, max_size_seen: list[int]) -> list:
    """A consumer that is deliberately slow; returns what it got, ending with EndOfStream."""
    got = []
    while True:
        max_size_seen.append(queue.qsize())
        item = queue.get(timeout=5)
        assert item is not None, "the producer stalled"
        got.append(item)
        if isinstance(item, EndOfStream):
            return got
        time.sleep(delay_s)


def run_capture(clip, policy: BufferPolicy, delay_s: float, queue_size: int = 3, pace: bool = False):
    options = CaptureConfig(pace=pace)
    cap, info = open_source(str(clip), options)
    queue, stop = FrameQueue(queue_size, policy), threading.Event()
    thread = CaptureThread(cap, info, queue, stop, options)
    sizes: list[int] = []
    thread.start()
    got = drain(queue, stop, delay_s, sizes)
    thread.join(timeout=10)
    assert not thread.is_alive()
    return thread, queue, got, sizes


def test_lossless_never_drops_and_keeps_order(weizmann_clip):
    thread, queue, got, sizes = run_capture(weizmann_clip, BufferPolicy.LOSSLESS, delay_s=0.01)
    frames = [f for f in got if isinstance(f, FrameRecord)]
    assert queue.dropped == 0
    assert [f.index for f in frames] == list(range(thread.frames_read))
    assert thread.frames_read == 89
    assert isinstance(got[-1], EndOfStream) and got[-1].error is None
    assert max(sizes) <= 3
    # File time comes from the source, not the wall clock.
    assert frames[25].t_source == 1.0


def test_drop_oldest_bounds_the_queue_and_counts_drops(weizmann_clip):
    # The consumer takes 30 ms a frame while the file is read as fast as it decodes.
    thread, queue, got, sizes = run_capture(weizmann_clip, BufferPolicy.DROP_OLDEST, delay_s=0.03)
    frames = [f for f in got if isinstance(f, FrameRecord)]
    assert max(sizes) <= 3
    assert queue.dropped > 0
    assert len(frames) + queue.dropped == thread.frames_read == 89
    indices = [f.index for f in frames]
    assert indices == sorted(indices)
    assert indices[-1] == 88, "the newest frame must survive"


def test_paced_file_arrives_in_real_time(weizmann_clip):
    start = time.monotonic()
    _, queue, got, _ = run_capture(weizmann_clip, BufferPolicy.DROP_OLDEST, delay_s=0.0, pace=True)
    elapsed = time.monotonic() - start
    frames = [f for f in got if isinstance(f, FrameRecord)]
    span = frames[-1].t_capture - frames[0].t_capture
    assert span >= 88 / 25 * 0.9, "pacing must spread 89 frames over about 3.5 s"
    assert elapsed < 30
    assert queue.dropped == 0


def test_end_marker_waits_for_room_instead_of_evicting_the_last_frames():
    """A live queue's last frames are the ones the consumer is about to show: the end marker
    queues behind them rather than pushing one out."""
    queue, stop = FrameQueue(2, BufferPolicy.DROP_OLDEST), threading.Event()
    for i in range(5):
        assert queue.put(i, stop)
    assert queue.dropped == 3
    put_done = threading.Event()
    producer = threading.Thread(target=lambda: queue.put(EndOfStream(), stop) and put_done.set())
    producer.start()
    assert not put_done.wait(0.3), "the end marker must wait while the queue is full"
    taken = [queue.get(timeout=1) for _ in range(3)]
    producer.join(timeout=5)
    assert taken[:2] == [3, 4] and isinstance(taken[2], EndOfStream)
    assert queue.dropped == 3


def test_end_marker_survives_a_full_drop_oldest_queue_when_stopping():
    queue, stop = FrameQueue(2, BufferPolicy.DROP_OLDEST), threading.Event()
    for i in range(5):
        assert queue.put(i, stop)
    stop.set()
    assert queue.put(EndOfStream(), stop)
    assert queue.dropped == 4
    assert queue.put("late", stop)  # evicts frame 4
    assert queue.put("later", stop) is False  # would have to evict the end marker
    items = [queue.get(timeout=0.1) for _ in range(2)]
    assert any(isinstance(item, EndOfStream) for item in items)
    assert queue.dropped == 5


def test_lossless_put_gives_up_when_stopped():
    queue, stop = FrameQueue(1, BufferPolicy.LOSSLESS), threading.Event()
    assert queue.put("a", stop)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert queue.put("b", stop) is False
    assert 0.2 < time.monotonic() - started < 2


def test_source_kinds():
    assert classify_source("0") is SourceKind.CAMERA
    assert classify_source("rtsp://cam/stream") is SourceKind.STREAM
    assert classify_source("http://host:8080/video.mjpg") is SourceKind.STREAM
    assert classify_source("clips/a.avi") is SourceKind.FILE


class SlowSink:
    """A display that shows ~3 frames a second: the paced camera must not wait for it."""

    needs_image = False

    def __init__(self) -> None:
        self.latencies: list[float] = []

    def write(self, record: FrameRecord) -> None:
        self.latencies.append(time.monotonic() - record.t_capture)
        time.sleep(0.3)

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_a_paced_file_drops_frames_like_a_camera_instead_of_falling_behind(weizmann_clip):
    """`--pace` reads a file as a camera would send it: what cannot be shown in time is dropped
    (drop-oldest), so what is shown stays recent, as for a live stream."""
    config = load_config(REPO / "config.yaml", {"source": str(weizmann_clip), "output": {"headless": True}})
    config.capture.pace = True
    sink = SlowSink()
    pipeline = Pipeline(config, sinks=[sink])
    started = time.monotonic()
    summary = pipeline.run()
    elapsed = time.monotonic() - started
    assert summary.error is None
    assert summary.frames_in == 89 and summary.dropped > 0
    assert summary.frames_out + summary.dropped == summary.frames_in
    # Lossless, the 89 frames would take 89 x 0.3 s and the last one would wait ~20 s to be shown.
    assert elapsed < 89 * 0.3 / 2, f"the run took {elapsed:.1f} s: the file was not read like a camera"
    assert max(sink.latencies) < 3.0, f"a frame waited {max(sink.latencies):.1f} s to be shown"
