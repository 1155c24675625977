"""`realtime benchmark`: measure the pipeline on real clips; report only where asked.

    python -m realtime benchmark                      # throughput: serial vs threaded, per clip and backend (~10 min)
    python -m realtime benchmark cameras             # how many 25 fps cameras one process poses at 10/s each
    python -m realtime benchmark soak --minutes 10   # a live RTSP stream against slow inference: drops, RSS drift
    python -m realtime benchmark web-job             # an upload through the web app, per result codec
    python -m realtime benchmark detectron2          # Detectron2 s/frame per input size (in .venv-d2)
    python -m realtime benchmark reps                # the repetition counter on clips counted by eye
    python -m realtime benchmark tracking            # track ids per person at 3, 5 and 10 poses/s
    python -m realtime benchmark teach               # ten 5 s clips of two new actions posed and trained

Progress and each measurement go to the log (stderr); stdout gets one line per target (met or
MISSED); `--json FILE` gets every number, and `--report DIR` a Markdown table and a PNG
(throughput, cameras). Nothing else is written: the clips are built in a temporary folder,
so a run leaves the checkout as it was. `--report docs` refreshes the published figures;
`--from-json FILE --report DIR` rebuilds a report without measuring. `--quick`: seconds of
input and one round, to check the machinery, not for figures.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..arguments import ArgumentParser
from ..errors import ConfigError, SourceError

MODES = ("throughput", "cameras", "soak", "web-job", "detectron2", "reps", "tracking", "teach")


def _csv(kind: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {kind.__name__}") from None

    return parse


def build_parser() -> argparse.ArgumentParser:
    from ..bench.clips import CLIP_NAMES
    from ..config import POSE_BACKENDS

    p = ArgumentParser(
        prog="python -m realtime benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="base config (default: ./config.yaml, else the shipped one)")
    common.add_argument("--weights", help="action classifier checkpoint (default: the config's, i.e. the shipped one)")
    common.add_argument("--json", type=Path, metavar="FILE", help="write the results here as JSON")
    common.add_argument("--quick", action="store_true", help="a few seconds of input, one round: checks, not figures")
    one_backend = ArgumentParser(add_help=False)
    one_backend.add_argument("--pose", choices=POSE_BACKENDS, help="pose backend (default: the config's)")
    sub = p.add_subparsers(dest="mode", metavar="MODE")
    t = sub.add_parser("throughput", parents=[common], help="serial loop vs threaded pipeline (the default mode)")
    t.add_argument("--clips", type=_csv(str), default=CLIP_NAMES, help=f"of {', '.join(CLIP_NAMES)} (default all)")
    t.add_argument(
        "--backends",
        type=_csv(str),
        default=("movenet", "blazepose"),
        help=f"pose backends side by side, of {', '.join(POSE_BACKENDS)} (default movenet,blazepose)",
    )
    t.add_argument("--skips", type=_csv(int), default=(0,), help="comma-separated pose skips (default 0)")
    t.add_argument("--rounds", type=int, help="alternating serial/threaded rounds (default 3, quick 1)")
    t.add_argument("--seconds", type=float, help="length of each clip (default 10, quick 2)")
    t.add_argument("--pose-workers", type=int, default=0, help="pose threads of the threaded run (default: config)")
    c = sub.add_parser("cameras", parents=[common, one_backend], help="cameras one process sustains at pose_fps each")
    c.add_argument("--counts", type=_csv(int), help="camera counts (default 1,2,4,8; quick 1,2)")
    c.add_argument("--more", type=_csv(int), help="counts tried while every camera keeps up (default 12,16)")
    c.add_argument("--seconds", type=float, help="length of each run (default 20, quick 4)")
    c.add_argument("--pose-fps", type=float, default=10.0, help="pose rate cap per camera (default 10)")
    c.add_argument(
        "--media",
        action="store_true",
        help="keep snapshots and clips of every episode (docs/media.md): adds ring memory and media CPU per run",
    )
    for mode in (t, c):
        mode.add_argument("--report", type=Path, metavar="DIR", help="write the Markdown, PNG and JSON report here")
        mode.add_argument("--from-json", type=Path, metavar="FILE", help="report this saved result; measure nothing")
    s = sub.add_parser(
        "soak", parents=[common, one_backend], help="a live RTSP stream against deliberately slow inference"
    )
    s.add_argument("--minutes", type=float, help="(default 10, quick 0.25)")
    s.add_argument("--fps", type=int, default=30, help="stream frame rate (default 30)")
    s.add_argument("--size", default="640x480", help="stream frame size WxH (default 640x480)")
    s.add_argument("--extra-ms", type=float, default=60.0, help="sleep added to every pose call (default 60)")
    s.add_argument("--every-s", type=float, help="report interval (default 60, quick 5)")
    s.add_argument(
        "--outage-every-s",
        type=float,
        default=0.0,
        help="kill the server this often and restart it 3 s later (default 0 = never)",
    )
    s.add_argument("--clip", type=Path, help="clip to stream (default: videos/exercise.avi)")
    w = sub.add_parser("web-job", parents=[common, one_backend], help="an upload through the web app, per result codec")
    w.add_argument("--video", type=Path, help="video to upload (default: videos/exercise.avi)")
    te = sub.add_parser("teach", parents=[common], help="the Teach page: ten 5 s clips posed and trained")
    te.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="KIND:PATH",
        help="base data besides the clips (default: weizmann and kth persons 21-23)",
    )
    te.add_argument("--epochs", type=int, default=12, help="(default %(default)s, the page's)")
    te.add_argument("--subset", type=int, default=0, help="base sequences per data set, 0 = all (default 0)")
    d = sub.add_parser("detectron2", parents=[common], help="Detectron2 seconds per frame per input size")
    d.add_argument("--sizes", type=_csv(int), default=(320, 480, 800), help="MIN_SIZE_TEST values")
    d.add_argument("--frames", type=int, help="timed frames per clip and size (default 4, quick 1)")
    d.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1 = one core)")
    d.add_argument("--pose-weights", help="Detectron2 weights (default: random init, same cost)")
    sub.add_parser("reps", parents=[common], help="repetition counts on real clips against counts taken by eye")
    k = sub.add_parser(
        "tracking", parents=[common, one_backend], help="track ids per person on real clips at low pose rates"
    )
    k.add_argument("--rates", type=_csv(float), default=(3.0, 5.0, 10.0), help="pose rates in Hz (default 3,5,10)")
    return p


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in (*MODES, "-h", "--help"):
        argv = ["throughput", *argv]
    args = build_parser().parse_args(argv)
    command = "python -m realtime benchmark " + shlex.join(argv)
    if getattr(args, "from_json", None):
        if not args.report:
            raise ConfigError("--from-json needs --report DIR (where to write the report)")
        try:
            saved = json.loads(args.from_json.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"--from-json {args.from_json}: cannot read a saved result ({exc}) — give the file that --json wrote"
            ) from None
        return _report(args, saved)
    result = _measure(args)
    if args.mode in ("throughput", "cameras"):
        result["meta"]["command"] = command
    else:
        result["command"] = command
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if getattr(args, "report", None):
        _report(args, result)
    if args.mode == "detectron2":
        from ..bench.detectron2 import markdown

        print(markdown(result))
    if args.mode == "reps":
        from ..bench.reps import markdown as reps_markdown

        print(reps_markdown(result))
    if args.mode == "tracking":
        print(result["table"])
    for target in result.get("targets", []):
        print(
            f"target {target['measure']}: {target['measured']} ({target['op']} {target['target']}) "
            f"{'met' if target['met'] else 'MISSED'}"
        )
    if args.mode == "soak":
        print(
            f"soak: RSS drift {result['rss_drift_mb']:+.1f} MB (target <= {result['rss_drift_target_mb']:g}), "
            f"error {result['error']} -> {'OK' if result['ok'] else 'FAIL'}"
        )
        return 0 if result["ok"] else 1
    return 0


def _report(args: argparse.Namespace, result: dict) -> int:
    from ..bench.report import write_report

    for path in write_report(args.mode, result, args.report):
        print(f"benchmark: wrote {path}")
    return 0


def _given(value: Any, default: Any) -> Any:
    """A flag's value, or the mode's default when the flag was not given (0 is a value, not "not given")."""
    return default if value is None else value


def _measure(args: argparse.Namespace) -> dict:
    from ..config import default_config_path, load_config
    from ..datasets import default_root

    overrides: dict = {}
    if args.weights:
        overrides["classifier"] = {"weights": args.weights}
    if getattr(args, "pose", None):
        overrides["pose"] = {"backend": args.pose}
    config_path = args.config or default_config_path()
    base = load_config(config_path, overrides)
    datasets = default_root()
    if args.mode == "throughput":
        from ..bench import throughput
        from ..bench.clips import CLIP_NAMES
        from ..config import POSE_BACKENDS

        for name, given, allowed in (("--clips", args.clips, CLIP_NAMES), ("--backends", args.backends, POSE_BACKENDS)):
            if not given or set(given) - set(allowed):
                raise ConfigError(f"{name} {','.join(given)!r} must name some of {', '.join(allowed)}")
        plan = throughput.ThroughputPlan(
            args.clips,
            args.backends,
            args.skips,
            _given(args.rounds, 1 if args.quick else 3),
            _given(args.seconds, 2.0 if args.quick else 10.0),
            args.pose_workers,
            args.quick,
        )
        if plan.rounds < 1 or plan.seconds <= 0 or min(plan.skips, default=-1) < 0 or plan.pose_workers < 0:
            raise ConfigError("--rounds must be >= 1, --seconds > 0, --skips >= 0 and --pose-workers >= 0")
        return throughput.measure(plan, base, config_path, datasets)
    if args.mode == "cameras":
        from ..bench import cameras

        camera_plan = cameras.CamerasPlan(
            _given(args.counts, (1, 2) if args.quick else (1, 2, 4, 8)),
            _given(args.more, () if args.quick else (12, 16)),
            _given(args.seconds, 4.0 if args.quick else 20.0),
            args.pose_fps,
            args.quick,
            args.media,
        )
        if min((*camera_plan.counts, *camera_plan.more), default=0) < 1 or not camera_plan.counts:
            raise ConfigError("--counts and --more must be camera counts of 1 or more, e.g. --counts 1,2,4")
        if camera_plan.seconds <= 0 or camera_plan.pose_fps <= 0:
            raise ConfigError("--seconds and --pose-fps must be more than 0")
        return cameras.measure(camera_plan, base, datasets)
    if args.mode == "soak":
        from ..bench import soak

        try:
            width, height = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--size {args.size!r} must be WIDTHxHEIGHT, e.g. 640x480") from None
        soak_plan = soak.SoakPlan(
            args.clip or datasets / "videos" / "exercise.avi",
            _given(args.minutes, 0.25 if args.quick else 10.0),
            args.fps,
            (width, height),
            args.extra_ms,
            _given(args.every_s, 5.0 if args.quick else 60.0),
            args.outage_every_s,
        )
        if soak_plan.minutes <= 0 or soak_plan.every_s <= 0:
            raise ConfigError("--minutes and --every-s must be more than 0")
        return soak.measure(soak_plan, base)
    if args.mode == "reps":
        from ..bench import reps
        from ..reps import RepSettings

        settings = RepSettings(base.reps.min_period_s, base.reps.max_period_s)
        return reps.measure(datasets, settings=settings, quick=args.quick)
    if args.mode == "web-job":
        from ..bench import web_job

        video = args.video or datasets / "videos" / "exercise.avi"
        if not video.is_file():
            raise SourceError(f"video {video} not found — pass an existing file to --video")
        return web_job.measure(base, video, max_frames=30 if args.quick else None)
    if args.mode == "tracking":
        from ..bench import tracking

        if not args.rates or min(args.rates) <= 0:
            raise ConfigError("--rates must be pose rates above 0 Hz, e.g. --rates 3,5,10")
        return tracking.run(base, datasets, tuple(args.rates))
    if args.mode == "teach":
        from ..bench import teach

        data = tuple(args.data) or (
            f"videos:{datasets / 'weizmann'}",
            f"kth:{datasets / 'kth_pose' / 'kth_pose_persons21-23.csv'}",
        )
        if args.epochs < 1 or args.subset < 0:
            raise ConfigError("--epochs must be 1 or more and --subset 0 or more")
        return teach.measure(datasets, data, 2 if args.quick else args.epochs, args.subset, args.quick)
    from ..bench import detectron2

    sources = [datasets / s for s in detectron2.SOURCES]
    frames = _given(args.frames, 1 if args.quick else 4)
    if frames < 1:
        raise ConfigError("--frames must be 1 or more")
    return detectron2.measure(sources, list(args.sizes), frames, 1, args.threads, args.pose_weights)
