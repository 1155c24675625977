"""One producer, many slow consumers: each subscriber holds only the newest item.

The producer never waits for a consumer. A subscriber that falls behind loses the
items it did not take in time and gets the latest one next, so a slow browser
costs that browser frames, never the pipeline time.
"""

from __future__ import annotations

import queue
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Broadcaster(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the subscriber set and `latest`, never held while waiting
        self._subscribers: set[queue.Queue] = set()
        self._latest: T | None = None
        self._closed = False
        self.dropped = 0  # items replaced before their subscriber took them

    def publish(self, item: T) -> None:
        with self._lock:
            if self._closed:
                return
            self._latest = item
            subscribers = list(self._subscribers)
        for inbox in subscribers:
            self._offer(inbox, item)

    def subscribe(self) -> queue.Queue:
        """A one-slot inbox, primed with the latest item so a new viewer starts at once."""
        inbox: queue.Queue = queue.Queue(maxsize=1)
        with self._lock:
            if self._closed:
                inbox.put_nowait(None)
                return inbox
            self._subscribers.add(inbox)
            latest = self._latest
        if latest is not None:
            self._offer(inbox, latest)
        return inbox

    def unsubscribe(self, inbox: queue.Queue) -> None:
        with self._lock:
            self._subscribers.discard(inbox)

    @property
    def closed(self) -> bool:
        """Consumers waiting with a timeout check this too: a publish racing close() may replace its None."""
        return self._closed

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """Every subscriber's next get() returns None: the end."""
        with self._lock:
            self._closed = True
            subscribers = list(self._subscribers)
            self._subscribers.clear()
        for inbox in subscribers:
            self._offer(inbox, None)

    def _offer(self, inbox: queue.Queue, item: T | None) -> None:
        while True:
            try:
                inbox.put_nowait(item)
                return
            except queue.Full:
                try:
                    inbox.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
