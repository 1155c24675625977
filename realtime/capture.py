"""Capture: open a camera, file or stream, and feed `FrameRecord`s into a bounded queue.

The queue's policy (lossless for files, drop-oldest for live sources) is the caller's
choice; `default_policy` gives the usual one. Live streams reconnect when lost. Status
changes (opened, lost, reconnected, gave_up, ended) go to a status queue for whoever logs
events, and so do reconnect attempts (`retrying`), which are for the log only.
"""

from __future__ import annotations

import enum
import math
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from .config import CaptureConfig
from .errors import SourceError
from .queues import BufferPolicy, CameraQueue, EndOfStream, FrameQueue
from .types import DEFAULT_CAMERA, FrameRecord


class SourceKind(enum.Enum):
    CAMERA = "camera"
    FILE = "file"
    STREAM = "stream"

    @property
    def live(self) -> bool:
        return self is not SourceKind.FILE


# Frame rates a real source runs at. A header outside them is damaged: 0.0102 fps puts each frame
# 98 s after the last, which a paced read waits out and which cuts every track and window apart.
SANE_FPS = (1.0, 240.0)
FILE_FALLBACK_FPS = 25.0
LIVE_FALLBACK_FPS = 30.0  # cameras and streams often report 0: most send 30


@dataclass(frozen=True)
class SourceInfo:
    source: str
    kind: SourceKind
    fps: float
    width: int
    height: int
    frame_count: int | None  # files only
    reported_fps: float | None = None  # the source's own rate, when it was not believed (fps is the fallback)


@dataclass(frozen=True)
class StreamStatus:
    """A change in the source's state, for the events log (`retrying`: for the log only)."""

    camera: str
    status: str  # opened | lost | retrying | reconnected | gave_up | looped | too_short | ended
    t: float
    detail: dict[str, Any]
    info: SourceInfo | None = None  # opened: what the source turned out to be
    note: str | None = None  # a longer explanation for the log, not the event


def classify_source(source: str) -> SourceKind:
    if not source.strip():
        raise SourceError("no source given — pass --source with a camera index, a video file or a URL")
    if source.strip().isdigit():
        return SourceKind.CAMERA
    if "://" in source:
        scheme = source.split("://", 1)[0].lower()
        if scheme in ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt"):
            return SourceKind.STREAM
        raise SourceError(
            f"source {source!r} has an unsupported scheme {scheme!r} — use rtsp://, http(s)://, "
            f"a file path or a camera index"
        )
    return SourceKind.FILE


# A clip shorter than this share of one window is not looped: too little movement to stand for an action.
MIN_LOOPED_SHARE = 0.5


def default_policy(kind: SourceKind, paced: bool = False) -> BufferPolicy:
    """Drop-oldest for live sources and for files paced like one (`--pace`), else lossless."""
    return BufferPolicy.DROP_OLDEST if kind.live or paced else BufferPolicy.LOSSLESS


def _open_capture(source: str, kind: SourceKind, options: CaptureConfig) -> cv2.VideoCapture:
    if kind is SourceKind.CAMERA:
        return cv2.VideoCapture(int(source))
    if kind is SourceKind.STREAM:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            options.open_timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            options.read_timeout_ms,
        ]
        return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG)


def truncation_error(source: str, frames_read: int, frames_reported: int) -> str | None:
    """Why a video file that stopped after `frames_read` frames is damaged, or None if it is whole.

    Containers' frame counts are estimates, so a shortfall of a couple of frames (or 1%) is normal.
    """
    if frames_read == 0:
        return f"no frame could be decoded from {source} — the file is corrupt or not a video"
    if frames_reported and frames_reported - frames_read > max(2, 0.01 * frames_reported):
        return f"video {source} ended at frame {frames_read} of {frames_reported} — the file is truncated or corrupt"
    return None


def open_source(source: str, options: CaptureConfig) -> tuple[cv2.VideoCapture, SourceInfo]:
    """Open the source or raise a one-line SourceError that says what to do."""
    kind = classify_source(source)
    if kind is SourceKind.FILE:
        check_file(source)
    started = time.monotonic()
    cap = _open_capture(source, kind, options)
    if not cap.isOpened():
        cap.release()
        if kind is SourceKind.CAMERA:
            raise SourceError(f"no camera at index {source} — use --source FILE or URL")
        if kind is SourceKind.STREAM:
            waited_ms = (time.monotonic() - started) * 1000
            # An instant failure is a refusal or a bad address, not a slow server.
            how = (
                f"within {options.open_timeout_ms} ms"
                if waited_ms >= 0.9 * options.open_timeout_ms
                else "(refused or not found)"
            )
            raise SourceError(f"cannot open stream {source} {how} — check the URL and that the server is reachable")
        raise SourceError(f"cannot decode video file {source} — it is corrupt or not a video")
    return cap, source_info(cap, source, kind)


def check_file(source: str) -> None:
    """A readable file, or a one-line SourceError (cheap: used before any model loads)."""
    path = Path(source)
    if not path.exists():
        raise SourceError(f"video file {source} not found — check the path, or use --source INDEX or URL")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise SourceError(f"video file {source} cannot be read — check it is a readable file")
    if path.stat().st_size == 0:
        raise SourceError(f"video file {source} is empty (0 bytes) — record or copy it again")


def unopened(source: str) -> SourceInfo:
    """A source its capture thread will open: rate and size are unknown (0) until it does."""
    return SourceInfo(source, classify_source(source), 0.0, 0, 0, None)


def source_info(cap: cv2.VideoCapture, source: str, kind: SourceKind) -> SourceInfo:
    fps, reported = sane_fps(cap.get(cv2.CAP_PROP_FPS), kind)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if kind is SourceKind.FILE else None
    return SourceInfo(
        source,
        kind,
        fps,
        int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        count if count and count > 0 else None,
        reported,
    )


def sane_fps(reported: float, kind: SourceKind) -> tuple[float, float | None]:
    """The rate to read at, and the reported one if it was replaced by a fallback worth a warning.

    A live source that reports no rate (0) gets the fallback silently: that is normal for them.
    """
    if math.isfinite(reported) and SANE_FPS[0] <= reported <= SANE_FPS[1]:
        return float(reported), None
    if kind.live:
        return LIVE_FALLBACK_FPS, (float(reported) if reported > 0 else None)
    return FILE_FALLBACK_FPS, float(reported)


def unbelieved_rate(label: str, info: SourceInfo) -> str | None:
    """The warning for a source whose reported frame rate was replaced, else None."""
    if info.reported_fps is None:
        return None
    low, high = SANE_FPS
    return (
        f"{label} reports {info.reported_fps:g} fps, outside {low:g}-{high:g} fps — "
        f"reading it at {info.fps:g} fps; re-encode it with its real rate (ffmpeg -r) if that is wrong"
    )


@dataclass
class _Outage:
    """A live source lost at `lost_at` and not yet delivering frames again."""

    lost_at: float
    attempt: int = 0  # reconnect attempts so far


class CaptureThread(threading.Thread):
    """Reads frames until the source ends, `max_frames` is reached or `stop` is set.

    `cap` None: the thread opens the source itself (a stream of several cameras, so that one
    slow or dead camera holds up no other), and keeps trying like a lost stream if it cannot.
    """

    def __init__(
        self,
        cap: cv2.VideoCapture | None,
        info: SourceInfo,
        out: FrameQueue[FrameRecord] | CameraQueue[FrameRecord],
        stop: threading.Event,
        options: CaptureConfig,
        status: queue.Queue[StreamStatus] | None = None,
        max_frames: int | None = None,
        camera: str = DEFAULT_CAMERA,
        label: str | None = None,
        min_clip_s: float = 0.0,
    ) -> None:
        super().__init__(name=f"capture-{camera}", daemon=True)
        self.camera = camera
        self.cap = cap
        self.info = info
        # How messages name the source: a server names an upload as its user knows it, never by a server path.
        self.label = label or info.source
        self.out = out
        self.stop = stop
        self.options = options
        self.status = status
        self.max_frames = max_frames
        # A file shorter than this (one classifier window) plays again until it is this long, as the GIF
        # such a clip often was loops: otherwise it would never fill a window and get no label.
        self.min_clip_s = min_clip_s
        self.passes = 1
        self.frames_read = 0
        self.error: str | None = None
        self.truncated = False  # the file ended early, after some good frames: those were all passed on
        self.reached_max_frames = False  # stopped by max_frames, not by the source's end
        self._outage: _Outage | None = None  # lost, and no good frame since

    def run(self) -> None:
        try:
            if self._open():
                self._read_loop()
        except Exception as exc:  # keep the pipeline alive long enough to finalize outputs
            self.error = f"capture failed: {type(exc).__name__}: {exc}"
        finally:
            if self.cap is not None:
                self.cap.release()
            self._report("ended", frames=self.frames_read)
            self.out.put(EndOfStream(self.error), self.stop)

    def _open(self) -> bool:
        """The source open and its `opened` status sent, with its real rate and size; False if it never opened."""
        if self.cap is None:
            if self.stop.is_set():
                return False
            try:
                self.cap, self.info = open_source(self.info.source, self.options)
            except SourceError as exc:
                self._report("lost", note=str(exc), frames=0, reason="not reachable at the start")
                # It just failed: the first retry waits, unlike after a loss mid-stream.
                reopened = self._retry(self.options.reconnect_delay_s)
                if reopened is None:
                    return False
                self.cap = reopened[0]
                self.info = source_info(self.cap, self.info.source, self.info.kind)
        self._report(
            "opened",
            info=self.info,
            fps=round(self.info.fps, 3),
            width=self.info.width,
            height=self.info.height,
            **self._rate_detail(),
        )
        return True

    def _rate_detail(self) -> dict[str, Any]:
        return {} if self.info.reported_fps is None else {"reported_fps": self.info.reported_fps}

    def _read_loop(self) -> None:
        assert self.cap is not None  # opened by _open
        interval = 1.0 / self.info.fps
        next_due = time.monotonic()
        while not self.stop.is_set():
            if self.max_frames is not None and self.frames_read >= self.max_frames:
                self.reached_max_frames = True
                return
            t_asked = time.monotonic()
            ok, image = self.cap.read()
            t_grab = time.monotonic()
            decode_ms = (t_grab - t_asked) * 1000
            # A read that waited out the read timeout means a hung peer. FFmpeg then still
            # returns the frames its decoder held back, one per timeout, before failing;
            # treating the first such read as the loss cuts detection from ~3x the timeout to 1x.
            stalled = (
                self.info.kind is SourceKind.STREAM and t_grab - t_asked >= 0.9 * self.options.read_timeout_ms / 1000
            )
            if not ok or image is None or stalled:
                if self.info.kind is SourceKind.FILE:
                    self._check_complete()
                    if self.error is None and self._replay_short_clip():
                        continue
                    return
                if not self._reconnect("read timed out" if stalled else "read failed"):
                    return
                next_due = time.monotonic()
                continue
            if self._outage is not None:
                self._report("reconnected", gap_s=round(t_grab - self._outage.lost_at, 3), attempt=self._outage.attempt)
                self._outage = None
            t_source = self.frames_read / self.info.fps if self.info.kind is SourceKind.FILE else None
            frame = FrameRecord(self.camera, self.frames_read, t_grab, image, t_source=t_source, decode_ms=decode_ms)
            self.frames_read += 1
            if not self.out.put(frame, self.stop):
                return
            if self.options.pace and self.info.kind is SourceKind.FILE:
                next_due += interval
                self.stop.wait(max(0.0, next_due - time.monotonic()))

    def _replay_short_clip(self) -> bool:
        """Start a whole file that is shorter than `min_clip_s` over again; False once it is long enough."""
        per_pass = self.frames_read // self.passes
        too_short = per_pass / self.info.fps < MIN_LOOPED_SHARE * self.min_clip_s
        if too_short and self.passes == 1 and self.frames_read > 0:
            self._report(
                "too_short",
                note=f"{self.label} lasts {per_pass / self.info.fps:.2f} s, less than half a window "
                f"({MIN_LOOPED_SHARE * self.min_clip_s:.2f} s): too short to be given an action",
            )
        if too_short or self.frames_read / self.info.fps >= self.min_clip_s:
            return False
        assert self.cap is not None
        self.cap.release()
        self.cap = _open_capture(self.info.source, self.info.kind, self.options)
        if not self.cap.isOpened():
            return False
        self.passes += 1
        self._report(
            "looped",
            note=f"{self.label} lasts {per_pass / self.info.fps:.2f} s, less than one window "
            f"({self.min_clip_s:.2f} s): playing it again (pass {self.passes})",
        )
        return True

    def _check_complete(self) -> None:
        damage = truncation_error(self.label, self.frames_read // self.passes, self.info.frame_count or 0)
        if damage:
            self.truncated = self.frames_read > 0
            self.error = damage + ("; frames before the damage were processed" if self.truncated else "")

    def _reconnect(self, reason: str) -> bool:
        """Reopen a lost live source: at once, then with backoff. False when giving up or stopping.

        Always a new VideoCapture: after a drop, FFmpeg's read() fails forever even once
        the server is back. The first try is immediate (a restarted server is often back
        already). `reconnected` waits for the first good frame (in `_read_loop`): a server
        just thawed from a freeze accepts a connection whose first reads still fail, and that
        is the same outage, not a second one.
        """
        assert self.cap is not None
        self.cap.release()
        if self._outage is None:
            self._outage = _Outage(time.monotonic())
            self._report("lost", frames=self.frames_read, reason=reason)
            delay = 0.0
        else:  # the reopened connection gave no frame: keep trying, with the backoff's pause
            delay = self.options.reconnect_delay_s
        reopened = self._retry(delay, self._outage.attempt)
        if reopened is None:
            return False
        self.cap, self._outage.attempt = reopened
        return True

    def _retry(self, delay: float, attempt: int = 0) -> tuple[cv2.VideoCapture, int] | None:
        """Open the source again and again, the first try after `delay`: the capture and the attempt that
        worked, or None when giving up or stopping. `attempt`: attempts already made in this outage.

        Later waits double from reconnect_delay_s up to reconnect_max_delay_s, kept to a few
        seconds so an outage costs little more than itself. Each attempt is a `retrying` status
        for the log, not an event: a camera down for an hour would otherwise be thousands of events.
        """
        limit = self.options.reconnect_attempts
        while not self.stop.is_set() and (limit < 0 or attempt < limit):
            attempt += 1
            if delay and self.stop.wait(delay):
                return None
            cap = _open_capture(self.info.source, self.info.kind, self.options)
            if cap.isOpened():
                return cap, attempt
            cap.release()
            self._report("retrying", attempt=attempt)
            delay = min(max(delay * 2, self.options.reconnect_delay_s), self.options.reconnect_max_delay_s)
        if not self.stop.is_set():
            self.error = (
                f"stream {self.label} lost and not back after {attempt} reconnect attempts — "
                f"check the camera or raise reconnect_attempts (capture's, or the camera's own under cameras:)"
            )
            self._report("gave_up", attempts=attempt)
        return None

    def _report(self, status: str, info: SourceInfo | None = None, note: str | None = None, **detail: Any) -> None:
        if self.status is not None:
            self.status.put(StreamStatus(self.camera, status, time.monotonic(), detail, info, note))
