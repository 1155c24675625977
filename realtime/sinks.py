"""Where annotated frames and events go: one `Sink` interface (`write(record)`, `close()`).

Sinks: a video file, the live window, the events sink (which turns records into action
events by its label-change rule and hands every event to its writers: a JSON-lines
file, MQTT) and the web live view.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from .errors import DisplayError, OutputError
from .linefile import LineFile
from .overlay import tile
from .recording import SUFFIXES, Recorder, frame_size_problem, recording_format
from .types import FrameRecord, RepCount

# Last shown label per person, for action events; people not in view are forgotten beyond this many.
MAX_LABELLED_PEOPLE = 256


class Sink(Protocol):
    """Takes each finished record on the output thread.

    `annotated` is drawn only when some sink has `needs_image`: a headless run that only
    sends events saves the drawing (1-2 ms a frame, per camera).
    """

    needs_image: bool

    def write(self, record: FrameRecord) -> None: ...

    def close(self) -> None: ...


class EventWriter(Protocol):
    """Somewhere events go: a JSON-lines file, an MQTT broker."""

    def send(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class VideoSink:
    """Records annotated frames at the source rate from its own thread (realtime/recording.py);
    opened on the first frame (size known then).

    A failure (a full disk, a frame too small to record) goes to `on_fault` once, and the frames
    after it are let go; without `on_fault` it is raised, at the latest by `close`.
    `hud`: record the HUD too (output.hud); recordings carry no HUD by default.
    """

    needs_image = True

    def __init__(
        self,
        path: str | Path,
        fps: float,
        *,
        hud: bool = False,
        on_fault: Callable[[OutputError], None] | None = None,
        source: str | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise OutputError(f"output {self.path} is a folder — give a file name such as {self.path / 'out.mp4'}")
        if self.path.suffix.lower() not in SUFFIXES:
            raise OutputError(f"output {self.path} has an unsupported extension — use one of {', '.join(SUFFIXES)}")
        prepare_folder(self.path, "output")
        self.format = recording_format(self.path)
        self.fps = fps
        self.hud = hud
        self.source = source  # what a too-small frame is blamed on
        self.on_fault = on_fault
        self.error: OutputError | None = None
        self._recorder: Recorder | None = None

    def write(self, record: FrameRecord) -> None:
        if self.error is not None:
            return
        image = record.shown(self.hud)
        if self._recorder is None:
            height, width = image.shape[:2]
            problem = frame_size_problem(width, height)
            if problem:
                self._fail_now(OutputError(f"{self.source or f'camera {record.camera}'} {problem}"))
                return
            if not self.fps > 0:  # a guessed rate would play the video too fast or too slow
                self._fail_now(OutputError(f"cannot write {self.path}: the source's frame rate is not known yet"))
                return
            self._recorder = Recorder(self.format, self.fps, (width, height), self._fault)
        width, height = self._recorder.size
        if image.shape[:2] != (height, width):  # a stream back at another size: one size per file
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        self._recorder.put(image)

    def _fault(self, error: OutputError) -> None:
        """A failure, from the output thread or the recorder's; the first one counts."""
        if self.error is None:
            self.error = error
            if self.on_fault is not None:
                self.on_fault(error)

    def _fail_now(self, error: OutputError) -> None:
        self._fault(error)
        if self.on_fault is None:
            raise error

    def close(self) -> None:
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None
        if self.error is not None and self.on_fault is None:
            raise self.error


class VideoFiles:
    """One video file per camera: the path as given for one camera, `<folder>/<camera>.mp4` for several.

    A camera whose rate is not known yet (0: a stream still opening) gets it from `set_fps`,
    which must come before its first frame.
    """

    needs_image = True

    def __init__(
        self,
        target: str | Path,
        fps_by_camera: dict[str, float],
        *,
        hud: bool = False,
        on_fault: Callable[[OutputError], None] | None = None,
        sources: dict[str, str] | None = None,
    ) -> None:
        target = Path(target)
        if len(fps_by_camera) == 1:
            paths = dict.fromkeys(fps_by_camera, target)
        else:
            if target.suffix:
                raise OutputError(
                    f"output {target} must be a folder with several cameras — each gets <folder>/<camera>.mp4"
                )
            paths = {camera: target / f"{camera}.mp4" for camera in fps_by_camera}
        self.hud = hud
        self.sinks = {
            camera: VideoSink(paths[camera], fps, hud=hud, on_fault=on_fault, source=(sources or {}).get(camera))
            for camera, fps in fps_by_camera.items()
        }

    def set_fps(self, camera: str, fps: float) -> None:
        self.sinks[camera].fps = fps

    def write(self, record: FrameRecord) -> None:
        self.sinks[record.camera].write(record)

    def close(self) -> None:
        errors = []
        for sink in self.sinks.values():
            try:
                sink.close()
            except OutputError as exc:  # every other camera's file is still finished
                errors.append(exc)
        if errors:
            raise errors[0]


def wants_hud(sink: Sink) -> bool:
    """Whether a sink shows the HUD: the live window and page do; a recording when asked."""
    return bool(getattr(sink, "hud", False))


def prepare_folder(path: Path, what: str) -> None:
    """Create the folder of an output file now, so a path that cannot be written fails at the
    start in one line, not with a traceback or, for files written at the end, after the run."""
    blocking = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise OutputError(f"cannot write {what} {path}: {blocking} is a file, not a folder — choose another path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the folder of {what} {path} ({exc.strerror}) — choose a path in a writable folder"
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"cannot write {what} {path} — its folder is not writable")


class JsonlWriter:
    """One JSON object per line, written from its own thread as events come (realtime/linefile.py),
    so the file holds every event up to a crash or a full disk; `flush_each` also syncs each write
    to the disk.

    A failure (a full disk) goes to `on_fault` once, and later events are let go; without
    `on_fault` it is raised by `close`.
    """

    def __init__(
        self,
        path: str | Path,
        flush_each: bool = False,
        on_fault: Callable[[OutputError], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.on_fault = on_fault
        self.error: OutputError | None = None
        if self.path.is_dir():
            raise OutputError(f"events path {self.path} is a folder — give a file name such as events.jsonl")
        prepare_folder(self.path, "events")
        try:
            self._file: LineFile | None = LineFile(self.path, self._failed, sync=flush_each)
        except OSError as exc:
            raise OutputError(f"cannot write events to {self.path} ({exc.strerror}) — choose another path") from None

    def send(self, event: dict[str, Any]) -> None:
        if self._file is None or self.error is not None:
            return
        self._file.put((json.dumps(event, separators=(",", ":")) + "\n").encode())

    def _failed(self, exc: OSError) -> None:
        written = self._file.lines if self._file is not None else 0
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            message = (
                f"no space left on device for events {self.path}: the {written} events written before it "
                "filled are in the file — free some space or write elsewhere"
            )
        else:
            message = (
                f"cannot write events to {self.path} ({exc.strerror}): the {written} events before are in "
                "the file — check the disk or write elsewhere"
            )
        self.error = OutputError(message)
        if self.on_fault is not None:
            self.on_fault(self.error)

    def close(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        if self.error is not None and self.on_fault is None:
            raise self.error


class EventSink:
    """Turns records into events and hands every event to its writers.

    Its rule: an `action` event when a person's shown label changes, a `person` `left`
    event when a labelled person's track ends, and, with repetition counting on, a `reps`
    event when a labelled person's count of repetitions rises. Every event carries its camera;
    the three about a person carry their count (`reps`: this run, `reps_total`: in all). A `reps`
    event comes with each repetition and when a run ends (its count back to 0).
    """

    needs_image = False

    def __init__(self, writers: list[EventWriter]) -> None:
        self.writers = writers
        # The media sink, when media is kept: an `action` event names its episode's id and files.
        self.media: Any = None
        self._shown: dict[tuple[str, int], str] = {}
        self._model: dict[tuple[str, int], str | None] = {}  # the model behind each shown label
        self._reps: dict[tuple[str, int], RepCount] = {}  # last count told, per labelled person
        self._t0_media: dict[str, float] = {}
        self._retired_until: dict[str, float] = {}  # camera -> grab time of the loss that retired its people

    def emit(self, camera: str, event: dict[str, Any]) -> None:
        event = {"type": event["type"], "camera": camera, **event}
        for writer in self.writers:
            writer.send(event)

    def retire(self, camera: str, t_lost: float, frame: int) -> None:
        """The camera's stream is lost: everyone shown on it has left, at grab time `t_lost`.

        Frames grabbed before the loss may still be on their way; they announce nobody again.
        """
        self._retired_until[camera] = t_lost
        t0 = self._t0_media.get(camera)
        for key in [key for key in self._shown if key[0] == camera]:
            self._left(camera, key[1], round(t_lost - (t0 if t0 is not None else t_lost), 3), frame)

    def _left(self, camera: str, track_id: int, t: float, frame: int) -> None:
        label = self._shown.pop((camera, track_id), None)
        self._model.pop((camera, track_id), None)
        reps = self._reps.pop((camera, track_id), None)
        if label is not None:
            self.emit(
                camera,
                {
                    "type": "person",
                    "status": "left",
                    "t": t,
                    "frame": frame,
                    "track": track_id,
                    "label": label,
                    **_rep_fields(reps),
                },
            )

    def write(self, record: FrameRecord) -> None:
        camera = record.camera
        t0 = self._t0_media.setdefault(camera, record.t_media)
        if record.t_capture <= self._retired_until.get(camera, float("-inf")):
            return
        t = round(record.t_media - t0, 3)
        for track_id in record.expired:
            self._left(camera, track_id, t, record.index)
        for track in record.tracks:
            if track.prediction is None:
                continue
            label, model = track.prediction.label, track.prediction.model
            key = (camera, track.track_id)
            told = self._reps.get(key)
            if track.reps is not None:
                self._reps[key] = track.reps
            # A model switched live announces everyone again, so their events name the new model.
            if self._shown.get(key) != label or self._model.get(key) != model:
                self._shown[key] = label
                self._model[key] = model
                self.emit(
                    camera,
                    {
                        "type": "action",
                        "t": t,
                        "frame": record.index,
                        "track": track.track_id,
                        "label": label,
                        "score": round(track.prediction.score, 4),
                        **({"model": track.prediction.model} if track.prediction.model else {}),
                        **_rep_fields(track.reps),
                        **(self.media.media_of(camera, track.track_id) if self.media is not None else {}),
                    },
                )
            elif track.reps is not None and _counted(track.reps) != (_counted(told) if told else (0, 0)):
                self.emit(
                    camera,
                    {
                        "type": "reps",
                        "t": t,
                        "frame": record.index,
                        "track": track.track_id,
                        "label": label,
                        **_rep_fields(track.reps),
                    },
                )
        if len(self._shown) > MAX_LABELLED_PEOPLE:  # a crowd whose expiries were missed: keep those in view
            present = {(camera, track.track_id) for track in record.tracks}
            self._shown = {key: label for key, label in self._shown.items() if key[0] != camera or key in present}
            self._model = {key: model for key, model in self._model.items() if key in self._shown}
            self._reps = {key: reps for key, reps in self._reps.items() if key in self._shown}

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def _rep_fields(reps: RepCount | None) -> dict[str, int]:
    """A person's count as events carry it; nothing when counting is off."""
    return {} if reps is None else {"reps": reps.run, "reps_total": reps.total}


def _counted(reps: RepCount) -> tuple[int, int]:
    """What a `reps` event tells: a repetition more, or a run that ended (the period alone changes often)."""
    return reps.run, reps.total


def display_problem() -> str | None:
    """Why no live window can open here, or None.

    OpenCV's Qt window aborts the whole process (exit 134, nothing to catch) when it cannot
    reach an X server, so ask first. Its wheels carry only Qt's xcb plugin: a Wayland session
    shows it through XWayland's DISPLAY. A DISPLAY left over from another session (ssh, a kiosk
    started before X is up) is the same abort, so the server is knocked on, not just named.
    """
    if not sys.platform.startswith("linux"):
        return None
    display = os.environ.get("DISPLAY", "")
    if not display:
        return "no display to show the live window (DISPLAY is not set)"
    if not x_server_answers(display):
        return f"no X server answers at DISPLAY={display}"
    return None


def x_server_answers(display: str, timeout_s: float = 1.0) -> bool:
    """Whether something accepts connections where `display` ([host]:N[.screen]) points."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        # Xorg and Xvfb listen on the socket file, and on Linux also on its abstract twin.
        addresses = [f"/tmp/.X11-unix/X{number}", f"\0/tmp/.X11-unix/X{number}"]
        family = socket.AF_UNIX
        targets: list = addresses
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        targets = [(host.strip("[]"), 6000 + int(number))]
    for target in targets:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout_s)
            try:
                probe.connect(target)
                return True
            except OSError:
                continue
    return False


KEY_QUIT = {ord("q"), ord("Q"), 27}  # q or ESC


class WindowSink:
    """The live OpenCV window; several cameras share it as a grid. Must be used from the main thread."""

    needs_image = True
    hud = True  # live: the viewer sees how the pipeline keeps up

    def __init__(self, title: str, fullscreen: bool = False, on_quit: Callable[[], None] = lambda: None) -> None:
        problem = display_problem()
        if problem:
            raise DisplayError(f"{problem} — use --headless (and --output/--events), or start X first")
        self.title = title
        self.on_quit = on_quit
        self._latest: dict[str, np.ndarray] = {}  # each camera's last frame, for the grid
        flags = cv2.WINDOW_NORMAL if fullscreen else cv2.WINDOW_AUTOSIZE
        cv2.namedWindow(title, flags)
        self._screen: tuple[int, int] | None = None
        if fullscreen:
            cv2.setWindowProperty(title, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN)
            # A fullscreen window covers the screen but does not scale the image itself.
            self._screen = screen_size()
            if self._screen is not None:
                # Fullscreen is a request to a window manager; a kiosk's bare X server has none
                # and left the window small, so it is also placed and sized over the screen.
                cv2.moveWindow(title, 0, 0)
                cv2.resizeWindow(title, *self._screen)

    def write(self, record: FrameRecord) -> None:
        """Show a frame; q/ESC or closing the window calls `on_quit` (the pipeline's stop)."""
        image = record.shown(hud=True)
        self._latest[record.camera] = image
        if len(self._latest) > 1:
            image = tile(list(self._latest.values()))
        if not self.show(image):
            self.on_quit()

    def show(self, image: np.ndarray) -> bool:
        """Show an image; False when the user pressed q/ESC or closed the window."""
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
    canvas[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    return canvas
