"""Ctrl-C and SIGTERM as a clean stop: the run finalizes its outputs instead of dying mid-write."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass
class StopRequest:
    """A stop asked for, and why: the first reason given counts.

    Made before the pipeline exists, so that a signal while the models load or the cameras
    open is not lost: the pipeline, once built, sees its event set and stops at once.
    """

    event: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None

    def __call__(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()


@contextlib.contextmanager
def stop_on_signals(request_stop: Callable[[str], None]) -> Iterator[None]:
    """While inside, SIGINT calls `request_stop("interrupt")` and SIGTERM `request_stop("sigterm")`.

    Python delivers signals to the main thread only; elsewhere (a web job, a Ray actor) the
    owner of the run stops it, so nothing is installed. The previous handlers come back after.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, lambda *_: request_stop("interrupt"))
    signal.signal(signal.SIGTERM, lambda *_: request_stop("sigterm"))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
