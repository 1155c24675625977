"""Capture: open a camera, file or stream, and feed frames into a bounded queue.

Files are read losslessly (the reader waits when the queue is full); live sources drop
the oldest queued frame instead, so what reaches inference is always recent. Live
streams reconnect with backoff when lost. Status changes (opened, lost, reconnected,
ended) go to a status queue for whoever logs events.
"""

from __future__ import annotations

import enum
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

# Set before cv2 opens any stream. OpenCV 4.11 ignores this variable through an
# inverted check, but FFmpeg tries UDP first when it is unset, so set it anyway.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
# FFmpeg's own errors (one "connection refused" per reconnect attempt, decoder complaints
# after a drop) would flood stderr; the stream events say what happened. 16 shows them.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")

import cv2  # noqa: E402

from .config import CaptureConfig  # noqa: E402
from .errors import SourceError  # noqa: E402
from .types import Frame  # noqa: E402


class SourceKind(enum.Enum):
    CAMERA = "camera"
    FILE = "file"
    STREAM = "stream"

    @property
    def live(self) -> bool:
        return self is not SourceKind.FILE


class BufferPolicy(enum.Enum):
    LOSSLESS = "lossless"  # block the producer; never lose a frame (files)
    DROP_OLDEST = "drop_oldest"  # evict the oldest frame; bounded latency (live)


@dataclass(frozen=True)
class SourceInfo:
    source: str
    kind: SourceKind
    fps: float
    width: int
    height: int
    frame_count: int | None  # files only


@dataclass(frozen=True)
class EndOfStream:
    """The last item of a queue. `error` says why the source ended early, if it did."""

    error: str | None = None


@dataclass(frozen=True)
class StreamStatus:
    """A change in the source's state, for the events log."""

    status: str  # opened | lost | reconnecting | reconnected | ended | gave_up
    t: float
    detail: dict


def classify_source(source: str) -> SourceKind:
    if source.strip().isdigit():
        return SourceKind.CAMERA
    if "://" in source:
        scheme = source.split("://", 1)[0].lower()
        if scheme in ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt"):
            return SourceKind.STREAM
        raise SourceError(f"source {source!r} has an unsupported scheme {scheme!r} — use rtsp://, http(s)://, "
                          f"a file path or a camera index")
    return SourceKind.FILE


def default_policy(kind: SourceKind) -> BufferPolicy:
    return BufferPolicy.DROP_OLDEST if kind.live else BufferPolicy.LOSSLESS


def _open_capture(source: str, kind: SourceKind, options: CaptureConfig) -> cv2.VideoCapture:
    if kind is SourceKind.CAMERA:
        return cv2.VideoCapture(int(source))
    if kind is SourceKind.STREAM:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, options.open_timeout_ms,
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, options.read_timeout_ms]
        return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG)


def open_source(source: str, options: CaptureConfig) -> tuple[cv2.VideoCapture, SourceInfo]:
    """Open the source or raise a one-line SourceError that says what to do."""
    kind = classify_source(source)
    if kind is SourceKind.FILE:
        path = Path(source)
        if not path.exists():
            raise SourceError(f"video file {source} not found — check the path, or use --source INDEX or URL")
        if not path.is_file() or not os.access(path, os.R_OK):
            raise SourceError(f"video file {source} cannot be read — check it is a readable file")
    if kind is SourceKind.STREAM and source.lower().startswith("rtsp"):
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{options.rtsp_transport}"
    cap = _open_capture(source, kind, options)
    if not cap.isOpened():
        cap.release()
        if kind is SourceKind.CAMERA:
            raise SourceError(f"no camera at index {source} — use --source FILE or URL")
        if kind is SourceKind.STREAM:
            raise SourceError(f"cannot open stream {source} within {options.open_timeout_ms} ms — check the URL "
                              f"and that the server is reachable")
        raise SourceError(f"cannot decode video file {source} — it is corrupt or not a video")
    fps = cap.get(cv2.CAP_PROP_FPS)
    if not (0 < fps < 1000):
        fps = 30.0  # cameras and some streams report 0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if kind is SourceKind.FILE else None
    info = SourceInfo(source, kind, float(fps), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                      int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), count if count and count > 0 else None)
    return cap, info


class FrameQueue:
    """A bounded queue with a policy for when it is full, and a drop counter."""

    def __init__(self, maxsize: int, policy: BufferPolicy) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.policy = policy
        self.dropped = 0
        self.maxsize = maxsize

    def qsize(self) -> int:
        return self._queue.qsize()

    def put(self, item: Any, stop: threading.Event) -> bool:
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

    def _put_evicting(self, item: Any, count: bool = True) -> bool:
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
                if count:  # frames discarded while stopping were never going to be shown
                    self.dropped += 1

    def get(self, timeout: float = 0.1) -> Any | None:
        """The next item, or None if none came within `timeout` (lets callers check stop)."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def items(self, stop: threading.Event, ends: int = 1) -> Iterator[Any]:
        """Each item in turn until `stop` is set or `ends` EndOfStreams (one per producer) have come."""
        while not stop.is_set() and ends > 0:
            item = self.get(timeout=0.1)
            if item is None:
                continue  # wake up to look at `stop` again
            ends -= isinstance(item, EndOfStream)
            yield item


class CaptureThread(threading.Thread):
    """Reads frames until the source ends, `max_frames` is reached or `stop` is set."""

    def __init__(self, cap: cv2.VideoCapture, info: SourceInfo, out: FrameQueue, stop: threading.Event,
                 options: CaptureConfig, status: queue.Queue | None = None, max_frames: int | None = None) -> None:
        super().__init__(name="capture", daemon=True)
        self.cap = cap
        self.info = info
        self.out = out
        self.stop = stop
        self.options = options
        self.status = status
        self.max_frames = max_frames
        self.frames_read = 0
        self.error: str | None = None

    def run(self) -> None:
        try:
            self._read_loop()
        except Exception as exc:  # keep the pipeline alive long enough to finalize outputs
            self.error = f"capture failed: {type(exc).__name__}: {exc}"
        finally:
            self.cap.release()
            self._report("ended", frames=self.frames_read)
            self.out.put(EndOfStream(self.error), self.stop)

    def _read_loop(self) -> None:
        interval = 1.0 / self.info.fps
        next_due = time.monotonic()
        while not self.stop.is_set():
            if self.max_frames is not None and self.frames_read >= self.max_frames:
                return
            t_asked = time.monotonic()
            ok, image = self.cap.read()
            t_grab = time.monotonic()
            decode_ms = (t_grab - t_asked) * 1000
            # A read that waited out the read timeout means a hung peer. FFmpeg then still
            # returns the frames its decoder held back, one per timeout, before failing;
            # treating the first such read as the loss cuts detection from ~3x the timeout to 1x.
            stalled = self.info.kind is SourceKind.STREAM and \
                t_grab - t_asked >= 0.9 * self.options.read_timeout_ms / 1000
            if not ok or image is None or stalled:
                if self.info.kind is SourceKind.FILE:
                    self._check_complete()
                    return
                if not self._reconnect("read timed out" if stalled else "read failed"):
                    return
                next_due = time.monotonic()
                continue
            t_source = self.frames_read / self.info.fps if self.info.kind is SourceKind.FILE else None
            frame = Frame(index=self.frames_read, t_capture=t_grab, image=image, t_source=t_source,
                          decode_ms=decode_ms)
            self.frames_read += 1
            if not self.out.put(frame, self.stop):
                return
            if self.options.pace and self.info.kind is SourceKind.FILE:
                next_due += interval
                self.stop.wait(max(0.0, next_due - time.monotonic()))

    def _check_complete(self) -> None:
        expected = self.info.frame_count
        if self.frames_read == 0:
            self.error = f"no frame could be decoded from {self.info.source} — the file is corrupt or not a video"
        elif expected and expected - self.frames_read > max(2, 0.01 * expected):
            self.error = (f"video {self.info.source} ended at frame {self.frames_read} of {expected} — "
                          f"the file is truncated or corrupt; frames before the damage were processed")

    def _reconnect(self, reason: str) -> bool:
        """Reopen a lost live source with backoff. False when giving up or stopping.

        Always a new VideoCapture: after a drop, FFmpeg's read() fails forever even once
        the server is back.
        """
        lost_at = time.monotonic()
        self._report("lost", frames=self.frames_read, reason=reason)
        self.cap.release()
        attempts = self.options.reconnect_attempts
        delay = self.options.reconnect_delay_s
        attempt = 0
        while not self.stop.is_set() and (attempts < 0 or attempt < attempts):
            attempt += 1
            if self.stop.wait(delay):
                return False
            self._report("reconnecting", attempt=attempt)
            cap = _open_capture(self.info.source, self.info.kind, self.options)
            if cap.isOpened():
                self.cap = cap
                self._report("reconnected", gap_s=round(time.monotonic() - lost_at, 3), attempt=attempt)
                return True
            cap.release()
            delay = min(max(delay * 2, 0.1), self.options.reconnect_max_delay_s)
        if not self.stop.is_set():
            self.error = (f"stream {self.info.source} lost and not back after {attempt} reconnect attempts — "
                          f"check the camera or raise capture.reconnect_attempts")
            self._report("gave_up", attempts=attempt)
        return False

    def _report(self, status: str, **detail: Any) -> None:
        if self.status is not None:
            self.status.put(StreamStatus(status, time.monotonic(), detail))
