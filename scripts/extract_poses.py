"""Pose every clip of a video folder with the project's own backend and cache the results.

    python scripts/extract_poses.py ../shared/datasets/weizmann [--pose-every 1 2 3]

Writes one .npz per clip under --cache (default cache/poses/), which the videos loader
(and so train.py / evaluate.py with --data videos:PATH) reads instead of re-posing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from realtime.datasets import DEFAULT_POSE_CACHE  # noqa: E402
from realtime.errors import RealtimeError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="folder laid out as <action>/<subject>_<action>.avi")
    parser.add_argument("--cache", type=Path, default=DEFAULT_POSE_CACHE, help="cache folder (default %(default)s)")
    parser.add_argument("--pose-every", type=int, nargs="+", default=[1],
                        help="pose every Nth frame, as the pipeline's skip N-1 does (several allowed)")
    parser.add_argument("--backend", default="mediapipe")
    args = parser.parse_args(argv)
    try:
        from tqdm import tqdm

        from realtime.datasets.videos import find_clips, load_videos

        clips = find_clips(args.root)
        for every in args.pose_every:
            start = time.perf_counter()
            seqs = load_videos(args.root, cache_dir=args.cache, pose_every=every, backend=args.backend,
                               clips=clips,
                               progress=lambda it: tqdm(it, desc=f"pose every {every}", unit="clip"))
            frames = sum(len(s) for s in seqs)
            print(f"pose every {every}: {len(seqs)} labelled clips, {frames} posed frames, "
                  f"{time.perf_counter() - start:.1f} s, cache {args.cache}")
    except RealtimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
