"""Command line: `python -m realtime [--source ...]`, `python -m realtime serve` for the web app, or
`python -m realtime train|evaluate|extract-poses ...` (realtime/commands/)."""

from __future__ import annotations

import argparse
import os
import sys

# Quiet the native libraries' start-up chatter (TensorFlow Lite, glog) before they load.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# OpenCV prints its own complaints about bad input (FFmpeg's are quieted in capture.py); the
# user gets ours, in one line. Set OPENCV_LOG_LEVEL yourself to see OpenCV's.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")

from .commands import COMMANDS, run_command  # noqa: E402
from .errors import RealtimeError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m realtime",
                                description="Recognise human actions live from a camera, file or stream.")
    p.add_argument("--source", help="camera index, video file, or rtsp:// / http(s):// URL (config: source)")
    p.add_argument("--config", help="YAML config file (default: ./config.yaml)")
    p.add_argument("--pose", choices=("mediapipe", "detectron2"), help="pose backend (config: pose.backend)")
    p.add_argument("--skip", type=int, help="pose every (skip+1)-th frame (config: pose.skip)")
    p.add_argument("--pose-workers", type=int, metavar="N",
                   help="pose threads, each with its own model; 0 = auto (config: pose.workers)")
    p.add_argument("--weights", help="action classifier checkpoint (config: classifier.weights)")
    p.add_argument("--weights-pose", help="Detectron2 weights file (config: pose.detectron2.weights)")
    p.add_argument("--headless", action="store_true", default=None, help="show no window")
    p.add_argument("--fullscreen", action="store_true", default=None, help="fill the screen (kiosk)")
    p.add_argument("--output", help="write the annotated video (.mp4, .avi, .webm)")
    p.add_argument("--events", help="write JSON-lines events")
    p.add_argument("--flush-events", action="store_true", default=None, help="flush events after each line")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--pace", action="store_true", default=None, help="read a file at its native frame rate")
    p.add_argument("--reconnect-attempts", type=int, metavar="N",
                   help="reconnects after a stream is lost; -1 = forever (config: capture.reconnect_attempts)")
    p.add_argument("--serve", metavar="HOST:PORT", help="also serve the annotated stream to browsers")
    return p


def overrides_from(args: argparse.Namespace) -> dict:
    """Only the flags actually given, as a nested dict in the config's shape."""
    pairs = {
        ("source",): args.source, ("pose", "backend"): args.pose, ("pose", "skip"): args.skip,
        ("pose", "workers"): args.pose_workers,
        ("classifier", "weights"): args.weights, ("pose", "detectron2", "weights"): args.weights_pose,
        ("output", "headless"): args.headless, ("output", "fullscreen"): args.fullscreen,
        ("output", "video"): args.output, ("output", "events"): args.events,
        ("output", "flush_events"): args.flush_events, ("max_frames",): args.max_frames,
        ("capture", "pace"): args.pace, ("capture", "reconnect_attempts"): args.reconnect_attempts,
    }
    nested: dict = {}
    for keys, value in pairs.items():
        if value is None:
            continue
        node = nested
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return nested


def main(argv: list[str] | None = None) -> int:
    from .logfilter import NativeLogFilter

    with NativeLogFilter():
        return _main(sys.argv[1:] if argv is None else argv)


def _main(argv: list[str]) -> int:
    try:
        if argv and argv[0] == "serve":
            from .web.app import main as serve_main

            return serve_main(argv[1:])
        if argv and argv[0] in COMMANDS:
            return run_command(argv[0], argv[1:])
        args = build_parser().parse_args(argv)
        return run(args)
    except RealtimeError as exc:
        print(f"realtime: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .pipeline import Pipeline

    config = load_config(args.config, overrides_from(args))
    extra_sinks = []
    if args.serve:
        from .web.live import LiveViewServer

        extra_sinks.append(LiveViewServer.from_address(args.serve))
    pipeline = Pipeline(config, weights_explicit=args.weights is not None, extra_sinks=extra_sinks)
    summary = pipeline.run()
    print(summary.line())
    if summary.error:
        print(f"realtime: error: {summary.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
