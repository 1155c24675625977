"""Command line: `python -m realtime [--source ...]`, and the subcommands beside it."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import native
from .arguments import ArgumentParser
from .errors import ConfigError, RealtimeError

if TYPE_CHECKING:
    from .demo import DemoRun
    from .pipeline import RunSummary
    from .signals import StopRequest

# name -> module with build_parser() and main(argv) -> int; imported only when used.
COMMANDS = {
    "serve": "realtime.web.app",
    "train": "realtime.commands.train",
    "evaluate": "realtime.commands.evaluate",
    "extract-poses": "realtime.commands.extract_poses",
    "benchmark": "realtime.commands.benchmark",
    "cluster": "realtime.cluster.cli",
}


def build_parser() -> argparse.ArgumentParser:
    from .config import POSE_BACKENDS

    p = ArgumentParser(
        prog="python -m realtime",
        description="Recognise human actions live from cameras, files or streams.",
        epilog=f"subcommands: {', '.join(COMMANDS)} (python -m realtime COMMAND --help)",
    )
    p.add_argument(
        "--source",
        action="append",
        metavar="[NAME=]SOURCE",
        help="camera index, video file, or rtsp:// / http(s):// URL; repeat as NAME=SOURCE for several "
        "cameras (config: source, cameras)",
    )
    p.add_argument("--config", help="YAML config file (default: ./config.yaml, else the shipped one)")
    p.add_argument("--pose", choices=POSE_BACKENDS, help="pose backend (config: pose.backend)")
    p.add_argument("--skip", type=int, help="pose every (skip+1)-th frame (config: pose.skip)")
    p.add_argument(
        "--pose-fps", type=float, metavar="HZ", help="at most this many poses a second per camera (config: pose_fps)"
    )
    p.add_argument(
        "--pose-workers",
        type=int,
        metavar="N",
        help="pose threads, each with its own model; 0 = auto (config: pose.workers)",
    )
    p.add_argument("--weights", help="action classifier checkpoint (config: classifier.weights)")
    p.add_argument("--weights-pose", help="Detectron2 weights file (config: pose.detectron2.weights)")
    p.add_argument("--headless", action="store_true", default=None, help="show no window")
    p.add_argument("--fullscreen", action="store_true", default=None, help="fill the screen (kiosk)")
    p.add_argument(
        "--output", help="write the annotated video (.mp4, .avi, .mkv, .webm); a folder with several cameras"
    )
    p.add_argument(
        "--hud",
        action="store_true",
        default=None,
        help="draw the HUD (FPS, latency, drops) on the recording too; the window always shows it (config: output.hud)",
    )
    p.add_argument("--events", help="write JSON-lines events")
    p.add_argument("--timeline", metavar="PNG", help="draw each person's actions over the run to a PNG at the end")
    p.add_argument(
        "--mqtt",
        metavar="URL",
        help="publish events to an MQTT broker: mqtt://[user:pass@]host[:port] (mqtts:// for TLS; config: mqtt)",
    )
    p.add_argument(
        "--media",
        metavar="DIR",
        help="keep a snapshot and a clip of every action episode in DIR, indexed (config: media.dir; docs/media.md)",
    )
    p.add_argument(
        "--flush-events", action="store_true", default=None, help="also sync the events file to disk after each write"
    )
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument(
        "--pace",
        action="store_true",
        default=None,
        help="read a file like a camera: at its native frame rate, dropping the oldest frames when behind "
        "(config capture.policy: lossless keeps every frame)",
    )
    p.add_argument(
        "--reconnect-attempts",
        type=int,
        metavar="N",
        help="reconnects after a stream is lost; -1 = forever (config: capture.reconnect_attempts)",
    )
    p.add_argument("--serve", metavar="HOST:PORT", help="also serve the annotated stream to browsers")
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="with --serve: a host name browsers may use besides loopback ones (repeatable)",
    )
    p.add_argument(
        "--models",
        metavar="DIR",
        help="classify with the active model of this folder (a `serve --work-dir`, see docs/teach.md) and "
        "switch to whichever is activated there, live (instead of --weights)",
    )
    p.add_argument(
        "--teach-url",
        metavar="URL",
        help="with --serve: the live page links to this Teach page (the `serve` whose --work-dir is --models)",
    )
    p.add_argument(
        "--demo-if-no-camera",
        action="store_true",
        help="(make run) without --source: if the configured webcam or the display is missing, "
        "play the demo clip videos/exercise.avi headless into out/ instead",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log more (debug)")
    return p


def overrides_from(args: argparse.Namespace) -> dict:
    """Only the flags actually given, as a nested dict in the config's shape."""
    pairs = {
        ("pose", "backend"): args.pose,
        ("pose", "skip"): args.skip,
        ("pose_fps",): args.pose_fps,
        ("pose", "workers"): args.pose_workers,
        ("classifier", "weights"): args.weights,
        ("pose", "detectron2", "weights"): args.weights_pose,
        ("output", "headless"): args.headless,
        ("output", "fullscreen"): args.fullscreen,
        ("output", "video"): args.output,
        ("output", "hud"): args.hud,
        ("output", "events"): args.events,
        ("output", "timeline"): args.timeline,
        ("output", "flush_events"): args.flush_events,
        ("media", "dir"): args.media,
        ("max_frames",): args.max_frames,
        ("capture", "pace"): args.pace,
        ("capture", "reconnect_attempts"): args.reconnect_attempts,
    }
    nested: dict = {}
    if args.mqtt:
        from .mqtt import overrides_from_url

        nested.update(overrides_from_url(args.mqtt))
    if args.source:
        from .config import parse_camera_arg

        cameras = [parse_camera_arg(value, i) for i, value in enumerate(args.source)]
        nested["cameras"] = [{"name": c.name, "source": c.source} for c in cameras]
    for keys, value in pairs.items():
        if value is None:
            continue
        node = nested
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return nested


def setup_logging(verbose: bool = False) -> None:
    """One line per message on stderr, prefixed like the errors, for every module's logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("realtime: %(message)s"))
    root = logging.getLogger("realtime")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def main(argv: list[str] | None = None) -> int:
    native.configure()  # before anything loads cv2 or a pose model
    setup_logging()
    from .logfilter import NativeLogFilter

    with NativeLogFilter():
        return _main(sys.argv[1:] if argv is None else argv)


def _main(argv: list[str]) -> int:
    try:
        if argv and argv[0] in COMMANDS:
            return int(importlib.import_module(COMMANDS[argv[0]]).main(argv[1:]))
        args = build_parser().parse_args(argv)
        if args.verbose:
            setup_logging(verbose=True)
        return run(args)
    except RealtimeError as exc:
        print(f"realtime: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace) -> int:
    from .signals import StopRequest, stop_on_signals

    demo = _plan_demo(args) if args.demo_if_no_camera and not args.source else None
    # Signals are caught from here on, not only once the pipeline runs: a SIGTERM while the
    # models load or the cameras open must still finalize the outputs and print the summary.
    stop = StopRequest()
    with stop_on_signals(stop):
        summary = _run_pipeline(args, stop)
    for line in summary.lines():
        print(line, flush=True)
    if summary.error:
        print(f"realtime: error: {summary.error}", file=sys.stderr)
        return 1
    for line in demo.results(args) if demo else []:
        print(line, flush=True)
    return 0


def _plan_demo(args: argparse.Namespace) -> DemoRun | None:
    """`make run`'s fallback to the demo clip, announced in one line, or None to run as configured."""
    from .config import load_config
    from .demo import plan_demo

    demo = plan_demo(load_config(args.config, overrides_from(args)))
    if demo:
        demo.apply_to(args)
        print(demo.announcement(Path(args.output).parent), file=sys.stderr, flush=True)
    return demo


def _run_pipeline(args: argparse.Namespace, stop: StopRequest) -> RunSummary:
    from .config import cameras_of, load_config
    from .pipeline import Pipeline

    overrides = overrides_from(args)
    registry = None
    if args.models:
        from .model_follower import active_checkpoint, open_registry

        if args.weights:
            raise ConfigError("--models and --weights both choose the classifier — give one of them")
        registry = open_registry(args.models)
        overrides.setdefault("classifier", {})["weights"] = str(active_checkpoint(registry)[1])
    config = load_config(args.config, overrides)
    sinks = []
    if args.serve:
        from .web.live import LiveViewServer

        sinks.append(
            LiveViewServer.from_address(
                args.serve,
                args.allowed_host,
                cameras=[camera.name for camera in cameras_of(config)],
                teach_url=teach_url(args.teach_url),
                media=config.media.dir,
            )
        )
    pipeline = Pipeline(config, sinks=sinks, stop=stop)
    if registry is not None:
        from .model_follower import ModelFollower

        follower = ModelFollower(registry, pipeline.classification.switch, pipeline.stop)
        follower.poll()  # the active model's name is on the first events too
        follower.start()
    return pipeline.run()


def teach_url(value: str | None) -> str | None:
    """The Teach page's URL as given, checked: the live page links to it."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--teach-url {value!r} is not an http(s) URL — e.g. http://127.0.0.1:8000/teach")
    return value


if __name__ == "__main__":
    sys.exit(main())
