"""What averaging several training seeds would give: the cross-validation of `realtime evaluate`,
run once per seed on the same folds, then scored on the mean of the seeds' held-out probabilities.

    python -m scripts.seed_ensemble_cv --seeds 0 1 2 -- \
        --data videos:../shared/datasets/weizmann \
        --data kth:../shared/datasets/kth_pose/kth_pose_persons21-23.csv \
        --data wild:../shared/datasets/wild_dev \
        --extra openpose:../shared/datasets/openpose_chenge/skeleton_raw.csv --folds 5 --threads 2

Everything after `--` is `realtime evaluate`'s own arguments. Training is deterministic for a
seed and thread count, so each seed's line (at its folds' own thresholds) repeats `realtime evaluate
--seed S`. Then the mean of the seeds' probabilities is scored at each threshold in THRESHOLDS,
overall and per data set. Grouped folds only (`--folds`), not `--lodo`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings

import numpy as np
import torch

from realtime.commands.evaluate import build_parser, score_line
from realtime.commands.training_args import train_config_from
from realtime.datasets import CLASSES, load_labelled
from realtime.evaluation import HeldOut, cross_validate, score, subject_folds

THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8)


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    own = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    own.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    seeds = own.parse_args(argv[:split]).seeds
    args = build_parser().parse_args(argv[split + 1 :])
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    pool = load_labelled(args.data, args.cache, 1, backend=args.pose)
    extra = load_labelled(args.extra, args.cache, 1, backend=args.pose) if args.extra else []
    folds = subject_folds(pool, args.folds)
    held: list[HeldOut] = []
    for seed in seeds:
        config = dataclasses.replace(train_config_from(args), seed=seed)
        by_variant, _ = cross_validate(pool, folds, config, args.runs, {"all": pool}, args.stride, extra)
        held.append(by_variant["all"])
        report = score(held[-1], CLASSES)
        print(f"seed {seed}: {score_line(report)}", flush=True)
    # Every seed scores the same windows in the same order (same folds, same sequences).
    assert all(np.array_equal(h.owner, held[0].owner) for h in held)
    mean = dataclasses.replace(held[0], probs=sum(h.probs for h in held) / len(held))
    for t in THRESHOLDS:
        at_t = dataclasses.replace(mean, thresholds=np.full(len(mean.owner), t))
        parts = [f"all {score_line(score(at_t, CLASSES))}"]
        for source in sorted({s.source for s in mean.sequences}):
            part = at_t.restrict(lambda s, source=source: s.source == source)
            parts.append(f"{source} {score_line(score(part, CLASSES))}")
        print(f"mean of seeds {seeds} at threshold {t}: " + "; ".join(parts), flush=True)


if __name__ == "__main__":
    main()
