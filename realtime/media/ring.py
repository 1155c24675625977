"""Each camera's last seconds of annotated frames, JPEG-compressed in memory.

A clip starts `pre_s` before its episode: those frames were shown before anyone knew they
would be wanted, so every camera keeps its recent ones. As JPEG (30-60 kB a 640x480 frame
instead of 900 kB raw) eight cameras' few seconds fit in tens of megabytes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class RingFrame:
    t: float  # the source's own seconds (FrameRecord.t_media)
    index: int
    jpeg: bytes


class FrameRing:
    """Frames of the last `keep_s` seconds of source time (and at most `max_frames`)."""

    def __init__(self, keep_s: float, max_frames: int = 1000) -> None:
        self.keep_s = keep_s
        self._frames: deque[RingFrame] = deque(maxlen=max_frames)
        self.bytes = 0

    def add(self, frame: RingFrame) -> None:
        if self._frames and frame.t < self._frames[-1].t:  # a reconnected stream's clock started again
            self.clear()
        if len(self._frames) == self._frames.maxlen:
            self.bytes -= len(self._frames[0].jpeg)
        self._frames.append(frame)
        self.bytes += len(frame.jpeg)
        while self._frames and self._frames[0].t < frame.t - self.keep_s:
            self.bytes -= len(self._frames.popleft().jpeg)

    def since(self, t: float) -> list[RingFrame]:
        """The frames from the last one at or before `t` on (a clip's first frame covers `t`)."""
        frames = list(self._frames)
        first = 0
        for i, frame in enumerate(frames):
            if frame.t <= t:
                first = i
            else:
                break
        return frames[first:]

    def rate(self, default: float = 25.0) -> float:
        """Frames a second over the ring, for a clip's frame rate."""
        if len(self._frames) < 2:
            return default
        span = self._frames[-1].t - self._frames[0].t
        return min(60.0, max(1.0, (len(self._frames) - 1) / span)) if span > 0 else default

    def clear(self) -> None:
        self._frames.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._frames)
