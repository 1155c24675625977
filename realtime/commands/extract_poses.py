"""`realtime extract-poses`: pose every clip of video folders with a pose backend and cache the results.

    python -m realtime extract-poses videos:../shared/datasets/weizmann wild:../shared/datasets/wild_dev \\
        [--pose movenet] [--pose-every 1 2 3]

Writes one .npz per clip under --cache (every person of every posed frame), which the
video loaders (and so `train` and `evaluate` with the same --data) read instead of re-posing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..arguments import ArgumentParser
from ..config import POSE_BACKENDS
from ..datasets import (
    DEFAULT_POSE_CACHE,
    KINDS,
    VIDEO_KINDS,
    DatasetError,
    default_pose_backend,
    labels_from,
    load_labelled,
)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m realtime extract-poses",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "data",
        nargs="+",
        metavar="KIND:PATH",
        help=f"video folders; KIND is one of {', '.join(VIDEO_KINDS)} (a bare PATH is videos:PATH)",
    )
    p.add_argument("--cache", type=Path, default=DEFAULT_POSE_CACHE, help="cache folder (default %(default)s)")
    p.add_argument(
        "--pose-every",
        type=int,
        nargs="+",
        default=[1],
        help="pose every Nth frame, as the pipeline's skip N-1 does (several allowed)",
    )
    p.add_argument(
        "--pose",
        default=default_pose_backend(),
        choices=POSE_BACKENDS,
        help="pose backend (default: the pipeline's, %(default)s)",
    )
    p.add_argument(
        "--labels",
        type=Path,
        default=None,
        metavar="FILE",
        help="your own label mapping, as train and evaluate take it (clips it maps to null are not posed)",
    )
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    data = [d if ":" in d else f"videos:{d}" for d in args.data]
    table = labels_from(args.labels)
    for d in data:
        kind = d.partition(":")[0]
        if kind not in VIDEO_KINDS:
            why = "holds poses already" if kind in KINDS else "is not a data kind"
            raise DatasetError(f"{d}: {kind!r} {why}; extract-poses takes video folders, videos:DIR or wild:DIR")
    for every in args.pose_every:
        start = time.perf_counter()

        def progress(it: Iterable[Any], name: str, n: int = every) -> Iterable[Any]:
            return tqdm(it, desc=f"{name}, every {n}", unit="clip")

        seqs = load_labelled(data, args.cache, every, backend=args.pose, progress=progress, labels=table)
        frames = sum(len(s) for s in seqs)
        print(
            f"pose every {every}: {len(seqs)} labelled clips, {frames} frames of the labelled people, "
            f"{time.perf_counter() - start:.1f} s, backend {args.pose}, cache {args.cache}"
        )
    return 0
