"""Recording frames to a video file from a thread of its own, in a format that survives being cut short.

An ordinary MP4 writes its index only when it is closed: a killed process or a full disk leaves a
file nothing can play. So:
- .mp4 and .mkv: frames are piped to the `ffmpeg` command and encoded to H.264, which browsers
  play, in fragmented MP4 (a self-contained piece every second) or in Matroska.
- .avi (Motion-JPEG) and .webm (VP8): OpenCV's writer; both play up to their last frame when cut.
- Without ffmpeg, an .mp4 is recorded as Motion-JPEG in Matroska beside it (`out.mkv`), said once.
docs/outputs.md has the measurements.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import cv2
import numpy as np

from .errors import OutputError
from .queues import put_unless_failed

log = logging.getLogger("realtime")

SUFFIXES = (".mp4", ".mkv", ".avi", ".webm")
FFMPEG_MUXERS = {".mp4": "mp4", ".mkv": "matroska"}
OPENCV_FOURCC = {".avi": "MJPG", ".webm": "VP80", ".mkv": "MJPG"}
# Smaller frames break encoders: OpenCV's VP8 aborts the whole process at 4x4, its MP4 and
# Matroska writers do not open at 1x1. 16x16 (one H.264 macroblock) records in every format.
MIN_SIDE = 16
# Frames waiting for the encoder, at most; beyond, the output step waits (a recording loses nothing).
QUEUE_BYTES = 64 << 20
QUEUE_FRAMES = 64
# OpenCV's writer says nothing when a write fails: with less than this free (a few frames), the
# disk counts as full.
OPENCV_FULL_BELOW = 256 << 10
DISK_FULL_SIGNS = ("No space left on device", "Disk quota exceeded")
FFMPEG_CLOSE_TIMEOUT_S = 60.0  # to encode what it holds (a second of frames) and write the last piece


def find_ffmpeg() -> str | None:
    """The ffmpeg binary: on PATH (Debian's ffmpeg), else the one the imageio-ffmpeg wheel ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg  # optional: a PyPI wheel that bundles an ffmpeg binary
    except ImportError:
        return None
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:
        return None


@dataclass(frozen=True)
class RecordingFormat:
    path: Path  # the file written: an .mp4 becomes .mkv when there is no ffmpeg
    ffmpeg: str | None  # the binary that encodes H.264, or None: OpenCV writes `fourcc`
    fourcc: str = ""

    def describe(self) -> str:
        if self.ffmpeg:
            return "H.264 in fragmented MP4" if self.path.suffix.lower() == ".mp4" else "H.264 in Matroska"
        return f"{self.fourcc} by OpenCV"


def recording_format(path: Path, ffmpeg: str | None = None) -> RecordingFormat:
    """How `path` is recorded (its suffix must be one of SUFFIXES): ffmpeg's H.264 when it can."""
    suffix = path.suffix.lower()
    if suffix in FFMPEG_MUXERS:
        ffmpeg = ffmpeg or find_ffmpeg()
        if ffmpeg:
            return RecordingFormat(path, ffmpeg)
        if suffix == ".mp4":
            fallback = path.with_suffix(".mkv")
            log.warning(
                "no ffmpeg found: recording %s (Motion-JPEG, plays when cut short) instead of %s — "
                "install ffmpeg (apt-get install ffmpeg) for H.264 MP4 that browsers play",
                fallback,
                path,
            )
            return RecordingFormat(fallback, None, OPENCV_FOURCC[".mkv"])
    return RecordingFormat(path, None, OPENCV_FOURCC[suffix])


def frame_size_problem(width: int, height: int) -> str | None:
    """Why frames of this size cannot be recorded, or None."""
    if width >= MIN_SIDE and height >= MIN_SIDE:
        return None
    return f"is {width}x{height} pixels, too small to record — a recording needs at least {MIN_SIDE}x{MIN_SIDE}"


class EncodeError(Exception):
    """The encoder stopped; `disk_full` when the device ran out of space."""

    def __init__(self, detail: str, disk_full: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.disk_full = disk_full


class FrameEncoder(Protocol):
    def write(self, image: np.ndarray) -> None: ...  # raises EncodeError

    def close(self) -> None: ...  # raises EncodeError


class FfmpegEncoder:
    """Raw BGR frames on ffmpeg's stdin, H.264 out; a keyframe, and so an MP4 fragment, every second."""

    def __init__(self, fmt: RecordingFormat, fps: float, width: int, height: int) -> None:
        assert fmt.ffmpeg is not None
        muxer = FFMPEG_MUXERS[fmt.path.suffix.lower()]
        command = [
            fmt.ffmpeg,
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-video_size",
            f"{width}x{height}",
            "-framerate",
            f"{fps:.6g}",
            "-i",
            "pipe:0",
            # yuv420p needs even sides; padding keeps every pixel.
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-c:v",
            "libx264",
            # ultrafast: 2.4 ms a 640x480 frame, 1.4x the bytes of the slower presets (docs/outputs.md);
            # the cores are for pose.
            "-preset",
            "ultrafast",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            "-g",
            str(max(1, round(fps))),
            "-threads",
            "1",  # one core at most, however many cameras record
            *(["-movflags", "frag_keyframe+empty_moov+default_base_moof"] if muxer == "mp4" else []),
            # Each piece goes to the file as it is made, not held in ffmpeg's 32 KB buffer: a killed
            # ffmpeg then loses only the second it was encoding.
            "-flush_packets",
            "1",
            "-f",
            muxer,
            str(fmt.path),
        ]
        self.path = fmt.path
        self._messages: deque[str] = deque(maxlen=20)
        try:
            # A session of its own: Ctrl-C in a terminal reaches the pipeline, which closes the
            # file, not ffmpeg mid-write. If the pipeline is killed, ffmpeg reads the end of its
            # input and finishes the file by itself.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise EncodeError(f"cannot start {fmt.ffmpeg} ({exc.strerror})") from None
        assert self._process.stdin is not None and self._process.stderr is not None
        self._stdin: IO[bytes] = self._process.stdin
        self._reader = threading.Thread(
            target=self._read_messages, args=(self._process.stderr,), name="ffmpeg-stderr", daemon=True
        )
        self._reader.start()

    def _read_messages(self, stream: IO[bytes]) -> None:
        for line in stream:  # drained as it comes, so ffmpeg never blocks on a full pipe
            text = line.decode(errors="replace").strip()
            if text:
                self._messages.append(text)

    def write(self, image: np.ndarray) -> None:
        try:
            self._stdin.write(np.ascontiguousarray(image).data)
        except (BrokenPipeError, ValueError):  # ffmpeg has ended: its messages say why
            raise self._failure() from None

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):  # ffmpeg has ended: its exit code says why
            self._stdin.close()
        try:
            code = self._process.wait(timeout=FFMPEG_CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            raise EncodeError(f"ffmpeg did not finish within {FFMPEG_CLOSE_TIMEOUT_S:g} s") from None
        if code != 0:
            raise self._failure()
        self._reader.join(timeout=5)

    def _failure(self) -> EncodeError:
        try:
            self._process.wait(timeout=FFMPEG_CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._reader.join(timeout=5)
        said = " ".join(self._messages)
        if any(sign in said for sign in DISK_FULL_SIGNS):
            return EncodeError("no space left on device", disk_full=True)
        return EncodeError(f"ffmpeg stopped: {self._messages[-1] if self._messages else 'no message'}")


class OpenCvEncoder:
    """OpenCV's VideoWriter, for the formats ffmpeg is not used for."""

    def __init__(self, fmt: RecordingFormat, fps: float, width: int, height: int) -> None:
        self.path = fmt.path
        self._writer = cv2.VideoWriter(str(fmt.path), cv2.VideoWriter.fourcc(*fmt.fourcc), fps, (width, height))
        if not self._writer.isOpened():
            raise EncodeError(f"OpenCV cannot write codec {fmt.fourcc}")

    def write(self, image: np.ndarray) -> None:
        self._writer.write(image)
        if free_bytes(self.path.parent) < OPENCV_FULL_BELOW:
            self._writer.release()  # what is in the file stays playable
            raise EncodeError("no space left on device", disk_full=True)

    def close(self) -> None:
        self._writer.release()


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def open_encoder(fmt: RecordingFormat, fps: float, width: int, height: int) -> FrameEncoder:
    if fmt.ffmpeg:
        return FfmpegEncoder(fmt, fps, width, height)
    return OpenCvEncoder(fmt, fps, width, height)


class Recorder:
    """One video file, written by its own thread from a bounded queue.

    `put` waits while the queue is full: a recording keeps every frame, and live cameras drop
    theirs before pose instead. If writing fails, `on_fault` is called once (from the writer's
    thread) with a one-line OutputError, and later frames are let go.
    """

    def __init__(
        self,
        fmt: RecordingFormat,
        fps: float,
        size: tuple[int, int],
        on_fault: Callable[[OutputError], None],
    ) -> None:
        self.format, self.fps, self.size = fmt, fps, size
        self.on_fault = on_fault
        self.frames = 0  # written to the encoder
        width, height = size
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(
            max(2, min(QUEUE_FRAMES, QUEUE_BYTES // max(1, width * height * 3)))
        )
        self._failed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"record-{fmt.path.name}", daemon=True)
        self._thread.start()

    def put(self, image: np.ndarray | None) -> None:
        put_unless_failed(self._queue, image, self._failed)

    def close(self) -> None:
        self.put(None)
        self._thread.join()

    def _run(self) -> None:
        encoder: FrameEncoder | None = None
        try:
            encoder = open_encoder(self.format, self.fps, *self.size)
            while (image := self._queue.get()) is not None:
                encoder.write(image)
                self.frames += 1
            encoder.close()
        except EncodeError as exc:
            self._fail(self._message(exc))
        except Exception as exc:  # a bug, not the disk: still one line, and the run ends
            self._fail(f"recording {self.format.path} failed: {type(exc).__name__}: {exc}")
            if encoder is not None:
                with contextlib.suppress(Exception):  # finish what was written, if it can be
                    encoder.close()

    def _fail(self, message: str) -> None:
        self._failed.set()
        self.on_fault(OutputError(message))

    def _message(self, exc: EncodeError) -> str:
        path = self.format.path
        if exc.disk_full:
            return (
                f"no space left on device for {path}: the recording stopped at frame {self.frames} "
                f"({self.frames / self.fps:.1f} s) and plays up to where the disk filled — "
                "free some space or record elsewhere"
            )
        if self.frames == 0:
            return f"cannot record {path} as {self.format.describe()}: {exc.detail}"
        return f"recording {path} stopped after {self.frames} frames: {exc.detail}"
