"""One episode's clip: JPEG frames piped into an `ffmpeg` process that writes H.264 MP4.

OpenCV here cannot write H.264, the only MP4 every browser plays (docs: FIELD-NOTES). The frames
are already JPEG (the ring's), so ffmpeg decodes them itself and nothing is encoded twice here.

The clip has a constant rate: output frame k shows the newest frame at or before
`t0 + k / fps`, so its length follows the source's own clock even when frames were dropped.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from ..web.encode import find_ffmpeg


class ClipError(Exception):
    pass


class ClipEncoder:
    """Writes `path` (via `path.part`, renamed when whole) from frames given in time order."""

    def __init__(self, path: Path, fps: float, t0: float, ffmpeg: str | None = None) -> None:
        binary = ffmpeg or find_ffmpeg()
        if binary is None:
            raise ClipError(
                "clips need an ffmpeg binary — install ffmpeg (apt-get install ffmpeg) or set media.clips false"
            )
        self.path = path
        self.part = path.with_name(path.name + ".part")
        self.fps = fps
        self.t0 = t0
        self.t_first: float | None = None  # source time of the first frame given
        self.t_last: float | None = None
        self.frames_out = 0
        self._current: bytes | None = None
        self.failed: str | None = None
        command = [
            binary,
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "image2pipe",
            "-c:v",
            "mjpeg",
            "-framerate",
            f"{fps:.3f}",
            "-i",
            "-",
            # yuv420p with even sides: what every browser's H.264 decoder accepts.
            "-vf",
            "scale=trunc(iw/2)*2:trunc(ih/2)*2",
            "-c:v",
            "libx264",
            # ultrafast: 40% less CPU than veryfast for a few larger short clips (docs/media.md).
            "-preset",
            "ultrafast",
            "-crf",
            "26",
            "-pix_fmt",
            "yuv420p",
            "-threads",
            "1",
            "-movflags",
            "+faststart",
            "-an",
            "-f",
            "mp4",
            str(self.part),
        ]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    @property
    def span(self) -> tuple[float, float]:
        """The source seconds the clip covers."""
        return self.t0, self.t0 + self.frames_out / self.fps

    def add(self, t: float, jpeg: bytes) -> None:
        """The frame shown from `t` on."""
        if self._current is not None:
            self._emit_until(t)
        if self.t_first is None:
            self.t_first = t
        self._current, self.t_last = jpeg, t

    def finish(self, t_end: float, timeout_s: float = 60.0) -> None:
        """Show the last frame up to `t_end`, close the file, and rename it into place; ClipError if not whole."""
        if self._current is not None and self.failed is None:
            self._emit_until(t_end)
        stdin = self._process.stdin
        with contextlib.suppress(OSError):
            if stdin is not None:
                stdin.close()
        try:
            self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            self.failed = self.failed or f"ffmpeg took longer than {timeout_s:g} s"
        stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
        if self._process.stderr is not None:
            self._process.stderr.close()
        if self.failed is None and self._process.returncode != 0:
            self.failed = (stderr.strip().splitlines() or [f"ffmpeg exit {self._process.returncode}"])[-1]
        if self.failed is None and self.frames_out == 0:
            self.failed = "no frames"
        if self.failed is not None:
            self.part.unlink(missing_ok=True)
            raise ClipError(self.failed)
        try:
            os.replace(self.part, self.path)
        except OSError as exc:
            self.part.unlink(missing_ok=True)
            raise ClipError(f"cannot move the clip into place ({exc.strerror})") from None

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        self._process.kill()
        self._process.wait()
        if self._process.stderr is not None:
            self._process.stderr.close()
        self.part.unlink(missing_ok=True)

    def _emit_until(self, t: float) -> None:
        # Output frames whose time t0 + k/fps lies before t show the current frame.
        due = int((t - self.t0) * self.fps + 1e-6)
        stdin = self._process.stdin
        while self.frames_out < due and self.failed is None and stdin is not None and self._current is not None:
            try:
                stdin.write(self._current)
            except OSError as exc:  # ffmpeg gave up (a full disk): the clip is lost, the run goes on
                self.failed = f"ffmpeg stopped taking frames ({exc.strerror or exc})"
                return
            self.frames_out += 1
