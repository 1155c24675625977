"""Bounded queues between stages, with a policy for when they are full.

Files are read losslessly (the producer waits); live sources drop the oldest item so
what reaches the next stage is always recent. Every queue ends with one `EndOfStream`
per producer, which no policy ever drops, and which evicts nothing unless stopping.
"""

from __future__ import annotations

import enum
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class BufferPolicy(enum.Enum):
    LOSSLESS = "lossless"  # block the producer; never lose an item (files)
    DROP_OLDEST = "drop_oldest"  # evict the oldest item; bounded latency (live)


@dataclass(frozen=True)
class EndOfStream:
    """The last item of a queue. `error` says why the producer ended early, if it did."""

    error: str | None = None


class FrameQueue(Generic[T]):
    """A bounded queue of T (then EndOfStream) with a full-queue policy and a drop counter."""

    def __init__(self, maxsize: int, policy: BufferPolicy, on_drop: Callable[[T], None] | None = None) -> None:
        self._queue: queue.Queue[T | EndOfStream] = queue.Queue(maxsize=maxsize)
        self.policy = policy
        self.dropped = 0
        self.on_drop = on_drop  # told of each item dropped, e.g. to count drops per camera

    def qsize(self) -> int:
        return self._queue.qsize()

    def put(self, item: T | EndOfStream, stop: threading.Event) -> bool:
        """Queue an item by the policy; False if stopped before it could be queued.

        An end marker waits for room under either policy: evicting for it would lose the last
        items, which the consumer is about to take. Only once stopped does it make room.
        """
        ends = isinstance(item, EndOfStream)
        if self.policy is BufferPolicy.DROP_OLDEST and not ends:
            return self._put_evicting(item)
        while not stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        if ends:  # stopping: the consumer must still see the end
            # A lossless queue's items left behind were never going to be shown; a live one counts them.
            return self._put_evicting(item, count=self.policy is BufferPolicy.DROP_OLDEST)
        return False

    def _put_evicting(self, item: T | EndOfStream, count: bool = True) -> bool:
        while True:
            try:
                self._queue.put_nowait(item)
                return True
            except queue.Full:
                try:
                    evicted = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if isinstance(evicted, EndOfStream):  # never lose the end marker
                    self._queue.put_nowait(evicted)
                    return False
                if count:  # items discarded while stopping were never going to be shown
                    self.dropped += 1
                    if self.on_drop is not None:
                        self.on_drop(evicted)

    def get(self, timeout: float = 0.1) -> T | EndOfStream | None:
        """The next item, or None if none came within `timeout` (lets callers check stop)."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def items(self, stop: threading.Event, ends: int = 1) -> Iterator[T | EndOfStream]:
        """Each item in turn until `stop` is set or `ends` EndOfStreams (one per producer) have come.

        A `CameraEnd` ends one camera, not the queue: it is passed on like any item.
        """
        while not stop.is_set() and ends > 0:
            item = self.get(timeout=0.1)
            if item is None:
                continue  # wake up to look at `stop` again
            ends -= isinstance(item, EndOfStream) and not isinstance(item, CameraEnd)
            yield item


@dataclass(frozen=True)
class CameraEnd(EndOfStream):
    """One camera's last item in a `CameraInbox`; the others may go on."""

    camera: str = ""


class CameraInbox(Generic[T]):
    """One bounded queue per camera, taken from in turn, so no camera starves another.

    Each camera's producer (its capture thread) puts with that camera's policy; the one
    consumer takes the oldest item of the next camera in rotation that has one.
    """

    def __init__(self, cameras: dict[str, tuple[int, BufferPolicy]]) -> None:
        self._limits = dict(cameras)
        self._items: dict[str, deque[T | CameraEnd]] = {name: deque() for name in cameras}
        self._order = list(cameras)
        self._turn = 0
        self._changed = threading.Condition()
        self.dropped: dict[str, int] = dict.fromkeys(cameras, 0)

    def put(self, camera: str, item: T | CameraEnd, stop: threading.Event) -> bool:
        """Queue a camera's item by its policy; False if stopped before it could be queued."""
        size, policy = self._limits[camera]
        items = self._items[camera]
        with self._changed:
            while len(items) >= size and not isinstance(item, CameraEnd):
                if policy is BufferPolicy.DROP_OLDEST:
                    items.popleft()
                    self.dropped[camera] += 1
                    break
                if stop.is_set():
                    return False
                self._changed.wait(timeout=0.1)
            items.append(item)  # an end always fits: the consumer must see it
            self._changed.notify_all()
        return True

    def take(self, stop: threading.Event) -> T | CameraEnd | None:
        """The next camera's oldest item; None once stopped."""
        with self._changed:
            while not stop.is_set():
                for step in range(len(self._order)):
                    camera = self._order[(self._turn + step) % len(self._order)]
                    if self._items[camera]:
                        self._turn = (self._turn + step + 1) % len(self._order)
                        item = self._items[camera].popleft()
                        self._changed.notify_all()
                        return item
                self._changed.wait(timeout=0.1)
        return None

    def qsize(self, camera: str) -> int:
        return len(self._items[camera])


class CameraQueue(Generic[T]):
    """The `FrameQueue`-like face of one camera's queue in a `CameraInbox`, for its capture thread."""

    def __init__(self, inbox: CameraInbox[T], camera: str) -> None:
        self.inbox = inbox
        self.camera = camera

    def put(self, item: T | EndOfStream, stop: threading.Event) -> bool:
        if isinstance(item, EndOfStream) and not isinstance(item, CameraEnd):
            item = CameraEnd(item.error, self.camera)
        return self.inbox.put(self.camera, item, stop)

    @property
    def dropped(self) -> int:
        return self.inbox.dropped[self.camera]


def put_unless_failed(inbox: queue.Queue[T], item: T, failed: threading.Event) -> None:
    """Put `item`, waiting for room, unless `failed` is set first: a writer thread that gave up takes
    nothing more, and its producer must not wait for it forever."""
    while not failed.is_set():
        try:
            inbox.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
