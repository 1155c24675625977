"""`realtime train`: train the action classifier on recorded pose data and write a checkpoint.

    python -m realtime train --data videos:../shared/datasets/weizmann \\
        --data kth:../shared/datasets/kth_pose/kth_pose_persons21-23.csv \\
        --data openpose:../shared/datasets/openpose_chenge/skeleton_raw.csv \\
        --out weights/action_classifier.pt --all

Whole subjects are held out for validation (early stopping, ReduceLROnPlateau, and the
rejection threshold). With --all the model is then retrained on every sequence for the
best epoch count, keeping that threshold: the shipped weights are made this way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..arguments import ArgumentParser
from ..config import POSE_BACKENDS
from ..datasets import KINDS, DatasetError, default_pose_backend, load_labelled
from .training_args import add_training_arguments, label_table, train_config_from


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m realtime train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="KIND:PATH",
        help=f"training data, repeatable; KIND is one of {', '.join(KINDS)}",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("action_classifier.pt"),
        help="where to write the checkpoint (default %(default)s; the shipped one is weights/action_classifier.pt)",
    )
    p.add_argument(
        "--val-subjects",
        default="",
        help="comma-separated subjects to validate on (default: about --val-fraction of each "
        "source's subjects, chosen by --seed)",
    )
    p.add_argument("--val-fraction", type=float, default=0.2, help="(default %(default)s)")
    p.add_argument(
        "--exclude",
        default="",
        help="comma-separated subjects to leave out of training and validation altogether "
        "(e.g. to test on them afterwards)",
    )
    p.add_argument("--all", action="store_true", help="after validating, retrain on all data for the best epoch count")
    p.add_argument("--subset", type=int, default=0, help="use only this many sequences per source (quick CI run)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="store this rejection threshold instead of the one chosen on the validation "
        "subjects (e.g. evaluate's pooled_best_threshold)",
    )
    p.add_argument(
        "--pose",
        default=default_pose_backend(),
        choices=POSE_BACKENDS,
        help="pose backend for video data (default: the pipeline's, %(default)s)",
    )
    p.add_argument("--pose-every", type=int, default=1, help="videos: pose every Nth frame (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_training_arguments(p)
    return p


def _progress_bar(iterable: Iterable[Any], description: str) -> Iterable[Any]:
    from tqdm import tqdm

    return tqdm(iterable, desc=description, unit="clip", leave=False)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    config = train_config_from(args, progress=not args.quiet)  # a bad flag fails before minutes of posing
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    from ..classifier import save_checkpoint
    from ..training import describe, fit, split_by_subject, split_warnings

    start = time.perf_counter()
    sequences = load_labelled(
        args.data,
        args.cache,
        args.pose_every,
        subset=args.subset,
        backend=args.pose,
        labels=label_table(args),
        progress=None if args.quiet else _progress_bar,
    )
    if args.exclude:
        excluded = {s.strip() for s in args.exclude.split(",") if s.strip()}
        unknown = excluded - {s.subject for s in sequences}
        if unknown:
            raise DatasetError(f"--exclude {','.join(sorted(unknown))}: no such subject in the data")
        sequences = [s for s in sequences if s.subject not in excluded]
    if not sequences:
        raise DatasetError("the given --data hold no labelled sequences")
    if args.val_subjects:
        names = {s.strip() for s in args.val_subjects.split(",") if s.strip()}
        train = [s for s in sequences if s.subject not in names]
        val = [s for s in sequences if s.subject in names]
        if not val:
            raise DatasetError(
                f"--val-subjects {args.val_subjects}: none of them is in the data "
                f"(subjects: {sorted({s.subject for s in sequences})[:20]})"
            )
    else:
        train, val = split_by_subject(sequences, args.val_fraction, args.seed)
    print(f"train: {describe(train, config.labels)}")
    print(f"val:   {describe(val, config.labels) if val else 'none'}")
    for warning in split_warnings(train, val, threshold_given=args.threshold is not None):
        print(f"warning: {warning}", file=sys.stderr)
    result = fit(train, val, config, args.runs)
    print(
        f"validation: best epoch {result.best_epoch}, threshold {result.threshold}, "
        f"macro-F1 {result.val_macro_f1}, {result.train_windows} train / {result.val_windows} val windows, "
        f"{result.seconds:.0f} s"
    )
    threshold, model, epochs = result.threshold, result.model, result.best_epoch
    if args.threshold is not None:
        threshold = args.threshold
    if args.all:
        final = fit(sequences, [], config, args.runs, fixed_epochs=max(1, result.best_epoch))
        model = final.model
        print(f"final fit on all {len(sequences)} sequences: {epochs} epochs, {final.seconds:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "data": args.data,
        "trained_on": "all" if args.all else "train split",
        "val_subjects": sorted({f"{s.source}:{s.subject}" for s in val}),
        "excluded_subjects": sorted(s.strip() for s in args.exclude.split(",") if s.strip()),
        "epochs": epochs,
        "val_macro_f1": result.val_macro_f1,
        "seed": args.seed,
        "val_threshold": result.threshold,
        "pose": args.pose,
        "arch": config.arch,
        "augment": not args.no_augment,
        "augment_off": list(config.augment_off),
        "max_false_action": config.max_false_action,
        "command": " ".join(["python -m realtime train", *argv]),
    }
    save_checkpoint(args.out, model, config.labels, config.spec, threshold, info, config.whole_body)
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s in all); use it with --weights {args.out}")
    print(
        json.dumps(
            {"out": str(args.out), "threshold": threshold, "best_epoch": epochs, "val_macro_f1": result.val_macro_f1}
        )
    )
    return 0
