"""The pose stage as a pool: N estimators in N threads, their results handed on in frame order.

Pose is ~85% of the work per frame, so one pose thread caps the whole pipeline. MediaPipe
runs its graph in native code with the GIL released, so two instances on two cores pose
nearly twice as many frames a second (scripts/benchmark.py: 46 -> 75 FPS for the pipeline).

Each instance keeps its own tracking state (BlazePose crops around the last pose it saw),
so posed frames are dealt round-robin: instance i always sees every N-th posed frame, the
same ones on every run of a file. `RoundRobinPose` is that rule in one thread, for serial
loops and tests that must match the pool frame for frame.

Live sources: a frame is taken from `inbox` for posing only once its worker is idle (each
worker posts a ready token). The newest frame then waits in `inbox` rather than behind a
busy worker, and drop-oldest discards the stale ones there, before any work is spent on
them. Files (`prefetch`): the next frame waits in the lane while the worker poses, so the
worker need not wait for the dispatcher to get a core (without it, exercise.avi ran at
about 66 FPS here instead of 70-77).
Frames that skipping leaves unposed go straight to the collector.

    inbox ─► dispatcher ─► lane 0 ─► pose-0 ─┐
               │       └─► lane 1 ─► pose-1 ─┼─► estimates ─► collector (reorders, then `after`) ─► outbox
               └──── unposed frames ─────────┘
"""

from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .capture import BufferPolicy, EndOfStream, FrameQueue
from .pose import PoseBackend
from .types import Frame, Poses


@dataclass
class PoseJob:
    """A frame on its way to a pose worker; `pose` False means pass it through (frame skipping)."""

    seq: int
    frame: Frame
    pose: bool


@dataclass(order=True)
class PoseEstimate:
    """A frame and the people found in it; `poses` is None for a frame that was not posed."""

    seq: int
    frame: Frame = field(compare=False)
    poses: Poses | None = field(compare=False)
    pose_ms: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class PoseFailure(EndOfStream):
    """A pose worker's last item when it failed on frame `seq`: that frame and its lane's later ones never come."""

    seq: int = 0


class PoseSchedule:
    """Which frames get posed: every (skip+1)-th one that reaches the pose stage."""

    def __init__(self, skip: int) -> None:
        self.skip = skip
        self._seen = 0

    def peek(self) -> bool:
        """Whether the next frame will be posed, without moving on."""
        return self._seen % (self.skip + 1) == 0

    def next(self) -> bool:
        posed = self.peek()
        self._seen += 1
        return posed


class RoundRobinPose:
    """Several backends used in turn, in one thread: the pool's dealing rule, serially."""

    def __init__(self, backends: Sequence[PoseBackend]) -> None:
        self.backends = list(backends)
        self.name = self.backends[0].name
        self._turn = 0

    def estimate(self, image_bgr) -> Poses:
        backend = self.backends[self._turn % len(self.backends)]
        self._turn += 1
        return backend.estimate(image_bgr)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()


def estimate(backend: PoseBackend, job: PoseJob) -> PoseEstimate:
    if not job.pose:
        return PoseEstimate(job.seq, job.frame, None)
    t0 = time.perf_counter()
    poses = backend.estimate(job.frame.image)
    return PoseEstimate(job.seq, job.frame, poses, (time.perf_counter() - t0) * 1000)


class InOrder:
    """Holds estimates that arrive early until every one before them has arrived."""

    def __init__(self) -> None:
        self._waiting: list[PoseEstimate] = []
        self._next = 0

    def push(self, item: PoseEstimate) -> list[PoseEstimate]:
        """`item` added; returns the estimates now ready, in order (often none, often several)."""
        heapq.heappush(self._waiting, item)
        ready = []
        while self._waiting and self._waiting[0].seq == self._next:
            ready.append(heapq.heappop(self._waiting))
            self._next += 1
        return ready

    def rest(self) -> list[PoseEstimate]:
        """Whatever is still waiting, in order (after a worker failed, gaps and all)."""
        ready = sorted(self._waiting)
        self._waiting.clear()
        return ready

    @property
    def next_seq(self) -> int:
        """The first sequence number not yet handed out."""
        return self._next

    def __len__(self) -> int:
        return len(self._waiting)


class _Dispatcher(threading.Thread):
    def __init__(self, pool: PosePool) -> None:
        super().__init__(name="pose-dispatch", daemon=True)
        self.pool = pool
        self.error: str | None = None

    def run(self) -> None:
        pool, end, seq, posed = self.pool, EndOfStream(), 0, 0
        frames = pool.inbox.items(pool.stop)
        try:
            while True:
                pose = pool.schedule.peek()
                lane = posed % len(pool.lanes)
                if pose and next(pool.ready[lane].items(pool.stop), None) is None:
                    break  # stopped while waiting for the worker
                frame = next(frames, None)
                if frame is None:
                    break
                if isinstance(frame, EndOfStream):
                    end = frame
                    break
                pool.schedule.next()
                if pose:
                    delivered = pool.lanes[lane].put(PoseJob(seq, frame, True), pool.stop)
                    posed += 1
                else:
                    delivered = pool.estimates.put(PoseEstimate(seq, frame, None), pool.stop)
                if not delivered:
                    break
                seq += 1
        except Exception as exc:
            self.error = f"pose dispatch failed: {type(exc).__name__}: {exc}"
            end = EndOfStream(self.error)
        finally:
            for lane_queue in pool.lanes:  # every worker passes the end on, after its last frame
                lane_queue.put(end, pool.stop)


class _PoseWorker(threading.Thread):
    def __init__(self, pool: PosePool, index: int, backend: PoseBackend) -> None:
        super().__init__(name=f"pose-{index}", daemon=True)
        self.pool = pool
        self.lane = pool.lanes[index]
        self.ready = pool.ready[index]
        self.backend = backend
        self.error: str | None = None

    def run(self) -> None:
        end, seq = EndOfStream(), 0
        try:
            self.ready.put(True, self.pool.stop)
            for job in self.lane.items(self.pool.stop):
                if isinstance(job, EndOfStream):
                    end = job
                    break
                seq = job.seq
                if self.pool.prefetch:  # the next job may wait in the lane while this one is posed
                    self.ready.put(True, self.pool.stop)
                if not self.pool.estimates.put(estimate(self.backend, job), self.pool.stop):
                    break
                if not self.pool.prefetch:
                    self.ready.put(True, self.pool.stop)
        except Exception as exc:
            self.error = f"pose failed: {type(exc).__name__}: {exc}"
            end = PoseFailure(self.error, seq)
        finally:
            self.pool.estimates.put(end, self.pool.stop)


class _Collector(threading.Thread):
    def __init__(self, pool: PosePool) -> None:
        super().__init__(name="pose-collect", daemon=True)
        self.pool = pool
        self.error: str | None = None

    def run(self) -> None:
        """Hand on estimates in order until every lane has ended.

        After a worker fails on frame k, every frame before k still comes out (the other
        lanes were given them before k, and finish them), then the stream ends there.
        """
        pool, order, end = self.pool, InOrder(), EndOfStream()
        failed_at: int | None = None
        try:
            for item in pool.estimates.items(pool.stop, ends=len(pool.lanes)):
                if isinstance(item, PoseFailure):
                    end = item if failed_at is None or item.seq < failed_at else end
                    failed_at = item.seq if failed_at is None else min(failed_at, item.seq)
                elif isinstance(item, EndOfStream):
                    end = end if end.error else item
                else:
                    ready = order.push(item)
                    if failed_at is not None:
                        ready = [e for e in ready if e.seq < failed_at]
                    if not self._hand_on(ready):
                        return
                if failed_at is not None and order.next_seq >= failed_at:
                    break
            if failed_at is None:  # empty after a clean end: every lane delivered in order
                self._hand_on(order.rest())
        except Exception as exc:
            self.error = f"tracking failed: {type(exc).__name__}: {exc}"
            end = EndOfStream(self.error)
        finally:
            pool.outbox.put(end, pool.stop)

    def _hand_on(self, ready: list[PoseEstimate]) -> bool:
        for item in ready:
            if not self.pool.outbox.put(self.pool.after(item), self.pool.stop):
                return False
        return True


class PosePool:
    """Frames from `inbox`, posed by `backends` in parallel, `after(estimate)` in frame order into `outbox`.

    `after` runs in the collector thread, one estimate at a time and in order: the place
    for the tracker, which must see frames in sequence.
    """

    def __init__(self, backends: Sequence[PoseBackend], skip: int, inbox: FrameQueue, outbox: FrameQueue,
                 stop: threading.Event, after: Callable[[PoseEstimate], Any] = lambda item: item,
                 prefetch: bool = True) -> None:
        if not backends:
            raise ValueError("a pose pool needs at least one backend")
        self.inbox, self.outbox, self.stop, self.after = inbox, outbox, stop, after
        self.prefetch = prefetch  # files: throughput; live (False): the newest frame, the lowest latency
        self.schedule = PoseSchedule(skip)
        # Lossless and short: a live source's frames are dropped at `inbox`, never after it.
        self.lanes = [FrameQueue(1, BufferPolicy.LOSSLESS) for _ in backends]
        self.ready = [FrameQueue(1, BufferPolicy.LOSSLESS) for _ in backends]  # "worker i is idle"
        self.estimates = FrameQueue(2 * len(backends), BufferPolicy.LOSSLESS)
        self.dispatcher = _Dispatcher(self)
        self.workers = [_PoseWorker(self, i, backend) for i, backend in enumerate(backends)]
        self.collector = _Collector(self)

    @property
    def threads(self) -> list[threading.Thread]:
        return [self.dispatcher, *self.workers, self.collector]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float | None = None) -> None:
        for thread in self.threads:
            thread.join(timeout)

    @property
    def error(self) -> str | None:
        return next((thread.error for thread in self.threads if thread.error), None)

    def close(self) -> None:
        for worker in self.workers:
            worker.backend.close()
