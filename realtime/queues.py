"""Bounded queues between stages, with a policy for when they are full.

Files are read losslessly (the producer waits); live sources drop the oldest item so
what reaches the next stage is always recent. Every queue ends with one `EndOfStream`
per producer, which no policy ever drops.
"""

from __future__ import annotations

import enum
import queue
import threading
from dataclasses import dataclass
from typing import Generic, Iterator, TypeVar, Union

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

    def __init__(self, maxsize: int, policy: BufferPolicy) -> None:
        self._queue: queue.Queue[Union[T, EndOfStream]] = queue.Queue(maxsize=maxsize)
        self.policy = policy
        self.dropped = 0

    def qsize(self) -> int:
        return self._queue.qsize()

    def put(self, item: T | EndOfStream, stop: threading.Event) -> bool:
        """Queue an item by the policy; False if stopped before it could be queued."""
        if self.policy is BufferPolicy.DROP_OLDEST:
            return self._put_evicting(item)
        while not stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        if isinstance(item, EndOfStream):  # stopping: the consumer must still see the end
            return self._put_evicting(item, count=False)
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

    def get(self, timeout: float = 0.1) -> T | EndOfStream | None:
        """The next item, or None if none came within `timeout` (lets callers check stop)."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def items(self, stop: threading.Event, ends: int = 1) -> Iterator[T | EndOfStream]:
        """Each item in turn until `stop` is set or `ends` EndOfStreams (one per producer) have come."""
        while not stop.is_set() and ends > 0:
            item = self.get(timeout=0.1)
            if item is None:
                continue  # wake up to look at `stop` again
            ends -= isinstance(item, EndOfStream)
            yield item
