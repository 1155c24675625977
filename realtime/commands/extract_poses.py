"""`realtime extract-poses`: pose every clip of a video folder with the project's backend and cache it.

    python -m realtime extract-poses ../shared/datasets/weizmann [--pose-every 1 2 3]

Writes one .npz per clip under --cache, which the videos loader (and so `train` and
`evaluate` with --data videos:PATH) reads instead of re-posing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..datasets import DEFAULT_POSE_CACHE
from ..config import POSE_BACKENDS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m realtime extract-poses", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path, help="folder laid out as <action>/<subject>_<action>.avi")
    p.add_argument("--cache", type=Path, default=DEFAULT_POSE_CACHE, help="cache folder (default %(default)s)")
    p.add_argument("--pose-every", type=int, nargs="+", default=[1],
                   help="pose every Nth frame, as the pipeline's skip N-1 does (several allowed)")
    p.add_argument("--backend", default="blazepose", choices=POSE_BACKENDS, help="pose backend (default %(default)s)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from ..datasets.videos import find_clips, load_videos

    clips = find_clips(args.root)
    for every in args.pose_every:
        start = time.perf_counter()
        seqs = load_videos(args.root, cache_dir=args.cache, pose_every=every, backend=args.backend, clips=clips,
                           progress=lambda it, n=every: tqdm(it, desc=f"pose every {n}", unit="clip"))
        frames = sum(len(s) for s in seqs)
        print(f"pose every {every}: {len(seqs)} labelled clips, {frames} posed frames, "
              f"{time.perf_counter() - start:.1f} s, cache {args.cache}")
    return 0
