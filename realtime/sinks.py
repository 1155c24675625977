"""Where annotated frames and events go: a video file, a JSON-lines log, a window."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import DisplayError, SourceError

# A container's usual codec that OpenCV here can write.
FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".avi": "MJPG", ".webm": "VP80", ".mkv": "MJPG"}


class VideoSink:
    """Writes annotated frames at the source rate; opened on the first frame (size known then)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC_BY_SUFFIX:
            raise SourceError(f"output {self.path} has an unsupported extension — use one of "
                              f"{', '.join(FOURCC_BY_SUFFIX)}")
        self.fourcc = FOURCC_BY_SUFFIX[suffix]
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self.frames_written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(self.path.parent, os.W_OK):
            raise SourceError(f"cannot write output {self.path} — its folder is not writable")

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            height, width = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps,
                                           (width, height))
            if not self._writer.isOpened():
                raise SourceError(f"cannot open {self.path} for writing with codec {self.fourcc}")
        self._writer.write(image)
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class EventLog:
    """One JSON object per line; optionally flushed per event so other tools can tail it."""

    def __init__(self, path: str | Path | None, flush_each: bool = False) -> None:
        self.path = Path(path) if path else None
        self.flush_each = flush_each
        self._file = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._file = open(self.path, "w", encoding="utf-8")
            except OSError as exc:
                raise SourceError(f"cannot write events to {self.path} ({exc.strerror}) — choose another path") \
                    from None

    def emit(self, event: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
        if self.flush_each:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


def display_available() -> bool:
    """OpenCV's Qt window aborts the whole process without a display, so ask first."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


KEY_QUIT = {ord("q"), ord("Q"), 27}  # q or ESC


class WindowSink:
    """The live OpenCV window. Must be used from the main thread."""

    def __init__(self, title: str, fullscreen: bool = False) -> None:
        if not display_available():
            raise DisplayError("no display to show the live window — use --headless (and --output/--events)")
        self.title = title
        flags = cv2.WINDOW_NORMAL if fullscreen else cv2.WINDOW_AUTOSIZE
        cv2.namedWindow(title, flags)
        self._screen: tuple[int, int] | None = None
        if fullscreen:
            cv2.setWindowProperty(title, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
            # A fullscreen window covers the screen but does not scale the image itself.
            self._screen = screen_size()

    def show(self, image: np.ndarray) -> bool:
        """Show a frame; False when the user pressed q/ESC or closed the window."""
        if self._screen is not None:
            image = _fit(image, self._screen)
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        if key in KEY_QUIT:
            return False
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            return False

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


def screen_size() -> tuple[int, int] | None:
    """The display's size in pixels, asked of Tk (OpenCV has no call for it)."""
    try:
        import tkinter

        root = tkinter.Tk()
        root.withdraw()
        size = (int(root.winfo_screenwidth()), int(root.winfo_screenheight()))
        root.destroy()
        return size
    except Exception:  # no Tk on this Python: show the image unscaled
        return None


def _fit(image: np.ndarray, screen: tuple[int, int]) -> np.ndarray:
    """Scale to fill the screen keeping the aspect ratio, letterboxed."""
    sw, sh = screen
    h, w = image.shape[:2]
    scale = min(sw / w, sh / h)
    resized = cv2.resize(image, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((sh, sw, 3), dtype=image.dtype)
    y, x = (sh - resized.shape[0]) // 2, (sw - resized.shape[1]) // 2
    canvas[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return canvas
