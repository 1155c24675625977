"""`make run`'s first-run demo: the shipped clip instead of a webcam or a display that is not there.

Only the make target asks for it (`--demo-if-no-camera`): `python -m realtime --source 0` keeps its
one-line error, so a script or a service never gets a demo it did not ask for.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2

from .capture import SourceKind, classify_source
from .config import Config, cameras_of
from .errors import SourceError
from .sinks import display_problem

DEMO_CLIP = Path(__file__).resolve().parent.parent / "videos" / "exercise.avi"
OUT_DIR = Path("out")


@dataclass(frozen=True)
class DemoRun:
    """Why the demo runs, and the clip and the outputs it runs with."""

    reason: str
    clip: Path
    video: Path
    events: Path
    timeline: Path

    def announcement(self, video_folder: Path) -> str:
        """`video_folder`: where the annotated video goes (out/ unless --output says otherwise)."""
        return (
            f"realtime: {self.reason} — `make run` plays the demo clip {_shown(self.clip)} instead, "
            f"headless, into {video_folder}/ (make run SOURCE=FILE|URL|INDEX for your own)"
        )

    def apply_to(self, args: argparse.Namespace) -> None:
        """Point the run at the clip, headless; output paths the user gave are kept."""
        args.source = [str(self.clip)]
        args.headless = True
        args.output = args.output or str(self.video)
        args.events = args.events or str(self.events)
        args.timeline = args.timeline or str(self.timeline)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.events).parent.mkdir(parents=True, exist_ok=True)
        Path(args.timeline).parent.mkdir(parents=True, exist_ok=True)

    def results(self, args: argparse.Namespace) -> list[str]:
        return [
            f"realtime: demo outputs: {args.output} (annotated video), {args.events} (events, one JSON "
            f"object a line), {args.timeline} (each person's actions over time)",
            # Said so a newcomer does not read the clip's OTHER as the model failing.
            "realtime: the demo's calisthenics (arm raises, side steps) are none of the six actions, so "
            "they are mostly OTHER, with a wave or a clap where an arm movement looks like one",
            "realtime: next: make run SOURCE=clip.mp4 | make run SOURCE=rtsp://camera/stream | "
            "python -m realtime serve (upload in a browser); more in README.md",
        ]


def _shown(path: Path) -> str:
    """`path` as a user in the checkout would type it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def camera_opens(index: int) -> bool:
    """Whether camera `index` can be opened. On Linux a missing /dev/videoN is answered without
    OpenCV, whose failed open prints several lines of its own."""
    if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
        return False
    capture = cv2.VideoCapture(index)
    try:
        return bool(capture.isOpened())
    finally:
        capture.release()


def fallback_reason(
    sources: list[str],
    headless: bool,
    *,
    display: Callable[[], str | None] = display_problem,
    camera: Callable[[int], bool] = camera_opens,
) -> str | None:
    """Why the configured run cannot show a live camera here, or None to run it as configured.

    Only local cameras fall back: a file or URL someone configured keeps its own errors.
    """
    if not sources or not all(classify_source(source) is SourceKind.CAMERA for source in sources):
        return None
    if not headless:
        problem = display()
        if problem:
            return problem
    missing = [source for source in sources if not camera(int(source))]
    if missing:
        return f"no camera at index {missing[0]}"
    return None


def plan_demo(config: Config, clip: Path = DEMO_CLIP, out_dir: Path = OUT_DIR) -> DemoRun | None:
    """The demo run when the configured cameras or the display are missing, else None."""
    sources = [camera.source for camera in cameras_of(config)]
    reason = fallback_reason(sources, config.output.headless)
    if reason is None:
        return None
    if not clip.is_file():
        raise SourceError(f"{reason}, and the demo clip {clip} is missing — use --source FILE or URL")
    return DemoRun(
        reason=reason,
        clip=clip,
        video=out_dir / "demo.mp4",
        events=out_dir / "events.jsonl",
        timeline=out_dir / "timeline.png",
    )
