"""Train the action classifier on recorded pose data and write a checkpoint.

    python scripts/train.py --data videos:../shared/datasets/weizmann \
        --data kth:../shared/datasets/kth_pose/kth_pose_persons21-23.csv \
        --data openpose:../shared/datasets/openpose_chenge/skeleton_raw.csv \
        --out weights/action_lstm.pt --all

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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from realtime.datasets import DEFAULT_POSE_CACHE  # noqa: E402
from realtime.errors import RealtimeError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True, metavar="KIND:PATH",
                   help="training data, repeatable; KIND is mhad, kth, openpose or videos")
    p.add_argument("--out", type=Path, default=REPO / "weights" / "action_lstm.pt")
    p.add_argument("--epochs", type=int, default=30, help="most epochs (early stopping may end sooner)")
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--val-subjects", default="",
                   help="comma-separated subjects to validate on (default: about --val-fraction of each "
                        "source's subjects, chosen by --seed)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--all", action="store_true",
                   help="after validating, retrain on all data for the best epoch count")
    p.add_argument("--subset", type=int, default=0,
                   help="use only this many sequences per source (quick CI run)")
    p.add_argument("--max-windows", type=int, default=400, help="most training windows per sequence")
    p.add_argument("--epoch-windows", type=int, default=4000, help="windows drawn per epoch")
    p.add_argument("--threshold", type=float, default=None,
                   help="store this rejection threshold instead of the one chosen on the validation "
                        "subjects (e.g. evaluate.py's pooled_best_threshold)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--cache", type=Path, default=DEFAULT_POSE_CACHE, help="pose cache for videos data")
    p.add_argument("--pose-every", type=int, default=1, help="videos: pose every Nth frame")
    p.add_argument("--runs", type=Path, default=REPO / "runs", help="Lightning's working folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _progress_bar(iterable, description: str):
    from tqdm import tqdm

    return tqdm(iterable, desc=description, unit="clip", leave=False)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    try:
        from realtime.classifier import save_checkpoint
        from realtime.datasets import load_labelled
        from realtime.features import FeatureSpec
        from realtime.training import TrainConfig, describe, fit, split_by_subject

        start = time.perf_counter()
        sequences = load_labelled(args.data, args.cache, args.pose_every, subset=args.subset,
                                  progress=None if args.quiet else _progress_bar)
        if not sequences:
            raise RealtimeError("the given --data hold no labelled sequences")
        if args.val_subjects:
            names = {s.strip() for s in args.val_subjects.split(",") if s.strip()}
            train = [s for s in sequences if s.subject not in names]
            val = [s for s in sequences if s.subject in names]
            if not val:
                raise RealtimeError(f"--val-subjects {args.val_subjects}: none of them is in the data "
                                    f"(subjects: {sorted({s.subject for s in sequences})[:20]})")
        else:
            train, val = split_by_subject(sequences, args.val_fraction, args.seed)
        config = TrainConfig(hidden_size=args.hidden, num_layers=args.layers, dropout=args.dropout,
                             learning_rate=args.lr, batch_size=args.batch, max_epochs=args.epochs,
                             patience=args.patience, augment=not args.no_augment, seed=args.seed,
                             threads=args.threads, progress=not args.quiet,
                             max_windows_per_sequence=args.max_windows, epoch_windows=args.epoch_windows,
                             spec=FeatureSpec())
        print(f"train: {describe(train)}")
        print(f"val:   {describe(val) if val else 'none'}")
        result = fit(train, val, config, args.runs)
        print(f"validation: best epoch {result.best_epoch}, threshold {result.threshold}, "
              f"macro-F1 {result.val_macro_f1}, {result.train_windows} train / {result.val_windows} val windows, "
              f"{result.seconds:.0f} s")
        threshold, model, epochs = result.threshold, result.model, result.best_epoch
        if args.threshold is not None:
            threshold = args.threshold
        if args.all:
            final = fit(sequences, [], config, args.runs, fixed_epochs=max(1, result.best_epoch))
            model = final.model
            print(f"final fit on all {len(sequences)} sequences: {epochs} epochs, {final.seconds:.0f} s")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "data": args.data, "trained_on": "all" if args.all else "train split",
            "val_subjects": sorted({f"{s.source}:{s.subject}" for s in val}),
            "epochs": epochs, "val_macro_f1": result.val_macro_f1, "seed": args.seed,
            "val_threshold": result.threshold,
            "augment": not args.no_augment, "command": " ".join(["scripts/train.py", *(argv or sys.argv[1:])]),
        }
        save_checkpoint(args.out, model, config.labels, config.spec, threshold, info)
        print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s in all)")
        print(json.dumps({"out": str(args.out), "threshold": threshold, "best_epoch": epochs,
                          "val_macro_f1": result.val_macro_f1}))
    except RealtimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
