"""The pose stage: which frames to pose, N models posing in N threads, tracking in frame order.

Pose is most of the work per frame, so one pose thread caps the whole pipeline. Both CPU
backends run their model in native code with the GIL released, so two models on two cores
pose nearly twice as many frames a second (docs/speed.md).

Posed frames are dealt round-robin: model i always sees every N-th posed frame, the same
ones on every run of a file. MoveNet keeps no state between frames, so the dealing costs it
nothing. BlazePose crops each frame around the pose it found on the previous frame *it*
saw, which is now N frames back (or another camera's): it re-finds the person more often
and its keypoints jitter more (docs/cameras.md, *Why these MoveNet settings*).
`RoundRobinPose` is the same rule in one thread, for serial loops that must match the pool.

Live sources: the dispatcher waits for the next model to be idle before it takes a frame,
so the frame it takes is the newest; drop-oldest discards stale ones in the inbox, before
any work is spent on them. Files (`prefetch`): one frame waits in each model's lane while it
poses, so a model never waits for the dispatcher to get a core. Frames that frame skipping
or a camera's pose-rate cap leave unposed go straight to the collector.

    cameras ─► inbox ─► dispatcher ─► lane i ─► pose-i ─┐
                            └───── unposed frames ──────┼─► collector (frame order, tracking) ─► outbox
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .config import CameraConfig
from .pose import PoseBackend
from .queues import BufferPolicy, CameraEnd, CameraInbox, EndOfStream, FrameQueue
from .tracker import Tracker
from .types import FrameRecord, Poses, Track

# A grab time this little before a due time still counts (a fraction of the interval): camera
# clocks jitter, and a frame just early would otherwise wait for the next one.
RATE_TOLERANCE = 0.1


class PoseSchedule:
    """Which of one camera's frames get posed: every (skip+1)-th, at most `pose_fps` a second.

    The cap keeps a grid of due times one interval apart and poses the first frame at or after
    each, so the rate averages `pose_fps` whatever the frame times are (10 of 25 fps is every
    2nd and 3rd frame in turn, not every 2nd). After a gap longer than an interval the grid
    starts again at the next frame, so a stalled stream does not get a burst of poses.
    """

    def __init__(self, skip: int = 0, pose_fps: float | None = None) -> None:
        self.skip = skip
        self.interval_s = 1.0 / pose_fps if pose_fps else 0.0
        self._seen = 0
        self._next_due: float | None = None

    def wants(self, record: FrameRecord) -> bool:
        """Whether to pose this frame (call once per frame, in order)."""
        return self.due(record.t_media)

    def due(self, t_media: float) -> bool:
        """Whether to pose the frame taken at `t_media` (once per frame, in order)."""
        due = self._seen % (self.skip + 1) == 0
        self._seen += 1
        if not due or not self.interval_s:
            return due
        if self._next_due is not None and t_media < self._next_due - RATE_TOLERANCE * self.interval_s:
            return False
        grid = self._next_due
        if grid is None or t_media - grid > self.interval_s:
            grid = t_media  # the first frame, or the first after a gap: the grid starts here
        self._next_due = grid + self.interval_s
        return True


class Tracking:
    """Each camera's people followed across its posed frames; frames must come in order."""

    def __init__(self, max_age_s: float = 1.0) -> None:
        self.max_age_s = max_age_s
        self._trackers: dict[str, Tracker] = {}
        self._last_tracks: dict[str, list[Track]] = {}

    def track(self, record: FrameRecord) -> FrameRecord:
        """Fill in `tracks` and `expired`; frames between poses carry the last tracks."""
        camera = record.camera
        if record.poses is not None:
            tracker = self._trackers.setdefault(camera, Tracker(max_age_s=self.max_age_s))
            tracks, record.expired = tracker.update(record.poses, record.t_media)
            # Snapshots: the tracker updates its own Track objects in place.
            self._last_tracks[camera] = [Track(t.track_id, t.keypoints, t.scores, t.box) for t in tracks]
        record.tracks = list(self._last_tracks.get(camera, []))
        return record


def pose(backend: PoseBackend, record: FrameRecord) -> FrameRecord:
    t0 = time.perf_counter()
    record.poses = backend.estimate(record.image)
    record.pose_ms = (time.perf_counter() - t0) * 1000
    return record


class RoundRobinPose:
    """Several backends used in turn, in one thread: the pool's dealing rule, serially."""

    def __init__(self, backends: Sequence[PoseBackend]) -> None:
        self.backends = list(backends)
        self.name = self.backends[0].name
        self._turn = 0

    def estimate(self, image_bgr: np.ndarray) -> Poses:
        backend = self.backends[self._turn % len(self.backends)]
        self._turn += 1
        return backend.estimate(image_bgr)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()


@dataclass(order=True)
class _Numbered:
    """A record (or a camera's end) with its place in the stage's order, so the collector can restore it."""

    seq: int
    record: FrameRecord | CameraEnd = field(compare=False)


@dataclass(frozen=True)
class PoseFailure(EndOfStream):
    """A pose worker's last item when it failed on `seq`: that frame and its lane's later ones never come."""

    seq: int = 0


class InOrder:
    """Holds items that arrive early until every one before them has arrived."""

    def __init__(self) -> None:
        self._waiting: list[_Numbered] = []
        self.next_seq = 0

    def push(self, item: _Numbered) -> list[_Numbered]:
        """`item` added; returns the items now ready, in order (often none, often several)."""
        heapq.heappush(self._waiting, item)
        ready = []
        while self._waiting and self._waiting[0].seq == self.next_seq:
            ready.append(heapq.heappop(self._waiting))
            self.next_seq += 1
        return ready

    def __len__(self) -> int:
        return len(self._waiting)


class PoseStage:
    """Frames from every camera's inbox, posed by `backends` in parallel, tracked, in frame order into `outbox`.

    Each camera's `CameraEnd` (with its error, if any) follows its last frame into the outbox;
    one `EndOfStream` follows when every camera has ended, or at once when a model failed.
    """

    def __init__(
        self,
        backends: Sequence[PoseBackend],
        cameras: Sequence[CameraConfig],
        inbox: CameraInbox[FrameRecord],
        outbox: FrameQueue[FrameRecord],
        stop: threading.Event,
        prefetch: bool = True,
        tracking: Tracking | None = None,
    ) -> None:
        if not backends:
            raise ValueError("a pose stage needs at least one backend")
        self.backends = list(backends)
        self.inbox, self.outbox, self.stop = inbox, outbox, stop
        self.prefetch = prefetch  # files: throughput; live (False): the newest frame, the lowest latency
        self.schedules = {c.name: PoseSchedule(c.skip or 0, c.pose_fps) for c in cameras}
        self.tracking = tracking or Tracking()
        # Lossless and short: a live source's frames are dropped in the inbox, never after it.
        self.lanes: list[FrameQueue[_Numbered]] = [FrameQueue(1, BufferPolicy.LOSSLESS) for _ in backends]
        self.ready: list[FrameQueue[bool]] = [FrameQueue(1, BufferPolicy.LOSSLESS) for _ in backends]
        self.estimates: FrameQueue[_Numbered] = FrameQueue(2 * len(backends), BufferPolicy.LOSSLESS)
        self.errors: list[str] = []
        self._threads = [
            threading.Thread(target=self._dispatch, name="pose-dispatch", daemon=True),
            *[
                threading.Thread(target=self._work, args=(i,), name=f"pose-{i}", daemon=True)
                for i in range(len(backends))
            ],
            threading.Thread(target=self._collect, name="pose-collect", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)

    @property
    def error(self) -> str | None:
        return self.errors[0] if self.errors else None

    def close(self) -> None:
        for backend in self.backends:
            backend.close()

    def _failed(self, what: str, exc: Exception) -> str:
        """Reported in the summary; the end marker carries it on so the main thread still finalizes outputs."""
        message = f"{what} failed: {type(exc).__name__}: {exc}"
        self.errors.append(message)
        return message

    # --- threads ---

    def _dispatch(self) -> None:
        """Deal posed frames round-robin to the lanes, unposed ones straight to the collector."""
        end, seq, posed, open_cameras = EndOfStream(), 0, 0, set(self.schedules)
        try:
            while open_cameras:
                lane = posed % len(self.lanes)
                # Wait for the model first, then take the newest frame (live) or the next one (files).
                if next(self.ready[lane].items(self.stop), None) is None:
                    return
                while True:
                    record = self.inbox.take(self.stop)
                    if record is None:
                        return
                    numbered = _Numbered(seq, record)
                    seq += 1
                    if isinstance(record, CameraEnd):  # in frame order, behind the camera's last frame
                        open_cameras.discard(record.camera)
                        if not self.estimates.put(numbered, self.stop):
                            return
                        if not open_cameras:
                            break
                        continue
                    if self.schedules[record.camera].wants(record):
                        if not self.lanes[lane].put(numbered, self.stop):
                            return
                        posed += 1
                        break
                    if not self.estimates.put(numbered, self.stop):
                        return
        except Exception as exc:
            end = EndOfStream(self._failed("pose dispatch", exc))
        finally:
            for lane_queue in self.lanes:  # every worker passes the end on, after its last frame
                lane_queue.put(end, self.stop)

    def _work(self, index: int) -> None:
        lane, ready, backend = self.lanes[index], self.ready[index], self.backends[index]
        end, seq = EndOfStream(), 0
        try:
            ready.put(True, self.stop)
            for item in lane.items(self.stop):
                if isinstance(item, EndOfStream):
                    end = item
                    break
                seq = item.seq
                if self.prefetch:  # the next frame may wait in the lane while this one is posed
                    ready.put(True, self.stop)
                assert isinstance(item.record, FrameRecord)  # lanes carry frames; camera ends bypass them
                pose(backend, item.record)
                if not self.estimates.put(item, self.stop):
                    break
                if not self.prefetch:
                    ready.put(True, self.stop)
        except Exception as exc:
            end = PoseFailure(self._failed("pose", exc), seq)
        finally:
            self.estimates.put(end, self.stop)

    def _collect(self) -> None:
        """Hand on records in order until every lane has ended.

        After a model fails on frame k, every frame before k still comes out (the other
        lanes were given them before k, and finish them), then the stream ends there.
        """
        order, end = InOrder(), EndOfStream()
        failed_at: int | None = None
        try:
            for item in self.estimates.items(self.stop, ends=len(self.lanes)):
                if isinstance(item, PoseFailure):
                    if failed_at is None or item.seq < failed_at:
                        end, failed_at = item, item.seq
                elif isinstance(item, EndOfStream):
                    end = end if end.error else item
                else:
                    ready = order.push(item)
                    if failed_at is not None:
                        ready = [n for n in ready if n.seq < failed_at]
                    for numbered in ready:
                        record = numbered.record
                        if not self.outbox.put(
                            record if isinstance(record, CameraEnd) else self.tracking.track(record), self.stop
                        ):
                            return
                if failed_at is not None and order.next_seq >= failed_at:
                    break
        except Exception as exc:
            end = EndOfStream(self._failed("tracking", exc))
        finally:
            self.outbox.put(end, self.stop)
