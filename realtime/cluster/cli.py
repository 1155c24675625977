"""`python -m realtime cluster [--config cams.yaml] [--address ADDR]` and `... cluster status --address ADDR`."""

from __future__ import annotations

import argparse
import sys

from ..arguments import ArgumentParser
from ..errors import RealtimeError

STATUS = "status"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m realtime cluster",
        description="Run every camera of a config on a Ray cluster, one actor per camera (or group).",
        epilog="python -m realtime cluster status --address ADDR lists the cameras of a running job.",
    )
    p.add_argument("--config", help="YAML config with the cameras and a cluster: section (default: ./config.yaml)")
    p.add_argument(
        "--address",
        help="Ray cluster: auto, HOST:PORT of the head, or ray://HOST:10001 (Ray Client); "
        "none = start a local cluster on this machine",
    )
    p.add_argument(
        "--source", action="append", metavar="NAME=SOURCE", help="a camera (repeatable) instead of the config's cameras"
    )
    p.add_argument(
        "--output",
        help="folder for the annotated videos, one <camera>.mp4 each (written by the actors, on their nodes)",
    )
    p.add_argument("--events", help="write every camera's events to this JSON-lines file (through the driver)")
    p.add_argument(
        "--flush-events", action="store_true", default=None, help="also sync the events file to disk after each write"
    )
    p.add_argument("--timeline", help="draw every camera's people and their actions to this .png at the end")
    p.add_argument("--max-frames", type=int, help="stop each camera after this many frames")
    p.add_argument(
        "--pace",
        action="store_true",
        default=None,
        help="read files like cameras: at their native frame rate, dropping the oldest frames when behind",
    )
    p.add_argument("--mqtt", metavar="URL", help="also publish events from every actor: mqtt://host:port")
    return p


def build_status_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m realtime cluster status", description="List each camera of the job running on a Ray cluster."
    )
    p.add_argument("--address", default="auto", help="Ray cluster: auto (default), HOST:PORT or ray://HOST:10001")
    p.add_argument("--namespace", default="realtime", help="the job's cluster.namespace (default: realtime)")
    p.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    return p


def overrides_from(args: argparse.Namespace) -> dict:
    from ..config import parse_camera_arg

    nested: dict = {}
    if args.source:
        cameras = [parse_camera_arg(value, i) for i, value in enumerate(args.source)]
        nested["cameras"] = [{"name": c.name, "source": c.source} for c in cameras]
    output = {
        key: value
        for key, value in (
            ("video", args.output),
            ("events", args.events),
            ("flush_events", args.flush_events),
            ("timeline", args.timeline),
        )
        if value is not None
    }
    if output:
        nested["output"] = output
    if args.max_frames is not None:
        nested["max_frames"] = args.max_frames
    if args.pace is not None:
        nested["capture"] = {"pace": args.pace}
    if args.mqtt:
        from ..mqtt import overrides_from_url

        nested.update(overrides_from_url(args.mqtt))
    return nested


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] == STATUS:
            from .status import print_status

            args = build_status_parser().parse_args(argv[1:])
            return print_status(args.address, args.namespace, args.json)
        return run(build_parser().parse_args(argv))
    except RealtimeError as exc:
        print(f"realtime: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from .job import ClusterJob

    config = load_config(args.config, overrides_from(args))
    job = ClusterJob(config, args.address, config.output.events, config.output.flush_events)
    summary = job.run()
    for line in summary.lines():
        print(line, flush=True)
    return 1 if summary.failed else 0
