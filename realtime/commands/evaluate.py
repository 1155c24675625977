"""`realtime evaluate`: judge the action classifier on people and cameras it never saw.

Grouped cross-validation (the default): the subjects of all --data together are split
into folds (--folds K, or 0 for one subject at a time); for each fold a model is trained
on every other subject (plus any --extra data) and scores the held-out ones. --lodo holds
out one whole data set at a time instead (train without a studio, test on it).

    python -m realtime evaluate --data videos:../shared/datasets/weizmann \\
        --data kth:../shared/datasets/kth_pose/kth_pose_persons21-23.csv \\
        --data wild:../shared/datasets/wild_dev \\
        --extra openpose:../shared/datasets/openpose_chenge/skeleton_raw.csv --folds 5 --json

With --weights, that checkpoint is scored on all of --data (in-sample if it was trained
on them). Scores are given overall and per data set (`by_source`): window accuracy,
macro-F1, per class, clip accuracy (majority vote of each clip's windows), the confusion
matrix, and the false-action rate (the share of OTHER windows given one of the actions).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..arguments import ArgumentParser
from ..config import POSE_BACKENDS
from ..datasets import KINDS, DatasetError, default_pose_backend, load_labelled
from .training_args import add_training_arguments, label_table, train_config_from

if TYPE_CHECKING:
    from ..features import PoseSequence

REJECTION_CURVE = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)
WAIST_UP = "waist_up"  # the scored variant of every sequence cut at the waist (--waist-up)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m realtime evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="KIND:PATH",
        help=f"data to evaluate on, repeatable; KIND is one of {', '.join(KINDS)}",
    )
    p.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="KIND:PATH",
        help="cross-validation only: data always added to training, never scored",
    )
    p.add_argument("--weights", type=Path, help="score this checkpoint instead of cross-validating")
    p.add_argument("--folds", type=int, default=0, help="grouped folds; 0 = leave one subject out")
    p.add_argument(
        "--lodo",
        action="store_true",
        help="leave one data set out: one fold per data set of --data instead of subject folds",
    )
    p.add_argument(
        "--pose",
        default=default_pose_backend(),
        choices=POSE_BACKENDS,
        help="pose backend for video data (default: the pipeline's, %(default)s)",
    )
    p.add_argument(
        "--pose-every",
        type=int,
        nargs="+",
        default=[1],
        help="videos: score poses of every Nth frame (as the pipeline's skip N-1); "
        "the first N is the headline, training always uses every frame; "
        "by_pose_every in the JSON covers the video data only",
    )
    p.add_argument(
        "--pose-workers",
        type=int,
        nargs="+",
        default=[1],
        help="videos: also score poses dealt round-robin to N pose models, as the pipeline's "
        "pose.workers N does (with the first --pose-every); by_pose_workers in the JSON",
    )
    p.add_argument(
        "--pose-fps",
        type=float,
        nargs="+",
        default=[],
        metavar="HZ",
        help="also score every sequence thinned to at most HZ poses a second by the pipeline's pose_fps "
        "rule (training keeps every pose); by_pose_fps in the JSON",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--confusion",
        type=Path,
        default=None,
        help="write the confusion matrix PNG here, and one per data set beside it (NAME.<data set>.png)",
    )
    p.add_argument("--stride", type=float, default=0.16, help="seconds between scored windows")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="cross-validate N times, with seeds --seed, --seed+1, ...; the JSON's `seeds` gives each data set's "
        "and class's mean and spread over them (the headline is the first seed's)",
    )
    p.add_argument(
        "--waist-up",
        action="store_true",
        help="also score every sequence of the arm actions and OTHER as a camera framed at the waist would see "
        "it (hips, legs and hands below the hip line unseen): `waist_up` in the JSON",
    )
    p.add_argument(
        "--at-threshold",
        type=float,
        default=None,
        metavar="T",
        help="also score every held-out window at this one rejection threshold (e.g. the shipped model's), "
        "per data set: `at_threshold` in the JSON",
    )
    add_training_arguments(p)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch

    from ..classifier import load_checkpoint
    from ..evaluation import (
        at_threshold,
        brief,
        by_data_set,
        cross_fitted,
        cross_validate,
        cut_at_waist,
        dataset_folds,
        mean_over_seeds,
        pooled_threshold,
        rejection_curve,
        score,
        score_checkpoint,
        subject_folds,
        thin_to_rate,
    )

    config = None if args.weights else train_config_from(args)  # a bad flag fails before minutes of posing
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    everies, workers = args.pose_every, args.pose_workers
    # Each way of posing the videos: (pose every Nth frame, over W round-robin models).
    variants = list(dict.fromkeys([(n, 1) for n in everies] + [(everies[0], w) for w in workers]))
    table = label_table(args)
    data: dict[tuple[int, int] | float | str, list[PoseSequence]] = {
        v: load_labelled(args.data, args.cache, v[0], pose_workers=v[1], backend=args.pose, labels=table)
        for v in variants
    }
    # A pose-rate cap thins the headline posing; every data set has a rate to thin (KTH's is 8.3 Hz).
    for hz in args.pose_fps:
        data[hz] = [thin_to_rate(seq, hz) for seq in data[variants[0]]]
    if args.waist_up:
        whole_body = config.whole_body if config is not None else load_checkpoint(args.weights).whole_body
        data[WAIST_UP] = [cut_at_waist(seq) for seq in data[variants[0]] if seq.label not in whole_body]
    base = data[variants[0]]
    if not base:
        raise DatasetError("the given --data hold no labelled sequences")
    fold_info: list[dict] = []
    if args.weights:
        ckpt = load_checkpoint(args.weights)
        model, labels = ckpt.build_model().eval(), ckpt.labels
        foreign = sorted({s.label for s in base} - set(labels), key=str)
        if foreign:
            raise DatasetError(
                f"the data hold classes {foreign} that {args.weights} does not know (it knows {list(labels)}); "
                "pass the --labels FILE it was trained with"
            )
        results = {
            v: score_checkpoint(model, ckpt.spec, ckpt.threshold, labels, seqs, args.stride, ckpt.whole_body)
            for v, seqs in data.items()
        }
        mode = f"checkpoint {args.weights} (threshold {ckpt.threshold})"
        threshold: float | None = ckpt.threshold
        max_false_action = 1.0
    else:
        assert config is not None
        labels, max_false_action = config.labels, config.max_false_action
        threshold = None  # each fold's own, in "folds"
        extra = load_labelled(args.extra, args.cache, 1, backend=args.pose, labels=table) if args.extra else []
        # Training always sees every-frame poses of one model; only scoring varies the posing.
        pool = (
            data[(1, 1)] if (1, 1) in data else load_labelled(args.data, args.cache, 1, backend=args.pose, labels=table)
        )
        folds = dataset_folds(base) if args.lodo else subject_folds(base, args.folds)
        if args.lodo and len(folds) < 2:
            raise DatasetError("--lodo needs at least two data sets in --data")
        results, fold_info = cross_validate(pool, folds, config, args.runs, data, args.stride, extra)
        seed_runs = [{"head": results[variants[0]]} | ({WAIST_UP: results[WAIST_UP]} if args.waist_up else {})]
        for k in range(1, args.seeds):
            again = dataclasses.replace(config, seed=config.seed + k)
            scored = {"head": base} | ({WAIST_UP: data[WAIST_UP]} if args.waist_up else {})
            seed_runs.append(cross_validate(pool, folds, again, args.runs, scored, args.stride, extra)[0])
        mode = (
            "leave-one-data-set-out"
            if args.lodo
            else "leave-one-subject-out"
            if args.folds <= 0
            else f"{args.folds}-fold grouped"
        ) + f" cross-validation, {len(folds)} folds"
    head = results[variants[0]]
    report = score(head, labels)
    report.update(
        {
            "mode": mode,
            **({"threshold": threshold} if threshold is not None else {}),
            "data": args.data,
            "extra": args.extra,
            "pose": args.pose,
            "pose_every": everies[0],
            "seconds": round(time.perf_counter() - start, 1),
        }
    )
    if config is not None:
        report["train_config"] = {k: v for k, v in vars(config).items() if k not in ("labels", "spec", "progress")}
        report["feature_spec"] = config.spec.to_dict()
    if fold_info:
        report["folds"] = fold_info
        report["pooled_best_threshold"] = pooled_threshold(head, labels, max_false_action)
    sources = sorted({s.source for s in head.sequences})

    def of_source(src: str) -> Callable[[PoseSequence], bool]:
        return lambda s: s.source == src

    by_source = {src: score(head.restrict(of_source(src)), labels) for src in sources}
    report["by_source"] = {src: brief(r) for src, r in by_source.items()}
    if len(fold_info) > 1:
        tuned, thresholds = cross_fitted(head, labels, max_false_action)
        report["cross_fitted"] = {"thresholds": thresholds, "all": brief(score(tuned, labels))} | {
            src: brief(score(tuned.restrict(of_source(src)), labels)) for src in sources
        }
        report["rejection_curve"] = rejection_curve(head, labels, REJECTION_CURVE)

    def video_only(variant: tuple[int, int]) -> dict:
        return brief(score(results[variant].restrict(lambda s: "backend" in s.meta), labels))

    if len(everies) > 1:
        report["by_pose_every"] = {str(n): video_only((n, 1)) for n in everies}
    if workers != [1]:
        report["by_pose_workers"] = {str(w): video_only((everies[0], w)) for w in workers}
    if args.pose_fps:
        report["by_pose_fps"] = {
            f"{hz:g}": {"all": brief(score(results[hz], labels))}
            | {src: brief(score(results[hz].restrict(of_source(src)), labels)) for src in sources}
            for hz in args.pose_fps
        }
    if args.at_threshold is not None:
        report["at_threshold"] = {"threshold": args.at_threshold} | by_data_set(
            at_threshold(head, args.at_threshold), labels
        )
    if args.waist_up:
        cut = results[WAIST_UP]
        report[WAIST_UP] = by_data_set(cut, labels)
        if args.at_threshold is not None:
            report[WAIST_UP]["at_threshold"] = by_data_set(at_threshold(cut, args.at_threshold), labels)
    if config is not None and args.seeds > 1:

        def seed_scores(run: dict, threshold: float | None) -> dict:
            judged = {name: at_threshold(h, threshold) if threshold is not None else h for name, h in run.items()}
            return by_data_set(judged["head"], labels) | (
                {WAIST_UP: brief(score(judged[WAIST_UP], labels))} if WAIST_UP in judged else {}
            )

        per_seed = [seed_scores(run, None) for run in seed_runs]
        if args.at_threshold is not None:
            for scores, run in zip(per_seed, seed_runs, strict=True):
                scores["at_threshold"] = seed_scores(run, args.at_threshold)
        report["seeds"] = {"seeds": [config.seed + k for k in range(args.seeds)]} | mean_over_seeds(per_seed)
    if args.confusion:
        report["confusion_png"] = _save_confusions(args.confusion, report, by_source, labels, mode)
    if args.json:
        print(json.dumps(report))
    else:
        print_human(report)
    return 0


def _save_confusions(
    path: Path, report: dict, by_source: dict[str, dict], labels: tuple[str, ...], mode: str
) -> list[str]:
    import numpy as np

    from ..metrics import save_confusion_png

    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for name, r, target in [
        ("all data", report, path),
        *((src, r, path.with_name(f"{path.stem}.{src}{path.suffix}")) for src, r in by_source.items()),
    ]:
        title = (
            f"{name}: {mode}\nwindows: accuracy {r['accuracy']:.3f}, macro-F1 {r['macro_f1']:.3f}, "
            f"false actions {_pct(r['false_action_rate'])}; clips {r['clips_right']}/{r['clips']}"
        )
        save_confusion_png(np.array(r["confusion"]["matrix"]), labels, str(target), title)
        written.append(str(target))
    return written


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}%"


def score_line(r: dict) -> str:
    """A score's macro-F1, false actions and clips right, in one line."""
    far = _pct(r["false_action_rate"])
    return f"macro-F1 {r['macro_f1']:.3f}, false actions {far}, clips {r['clips_right']}/{r['clips']}"


def print_human(r: dict) -> None:
    print(r["mode"])
    print(f"{'class':<16}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}")
    for name, v in r["per_class"].items():
        print(f"{name:<16}{v['precision']:>10.3f}{v['recall']:>8.3f}{v['f1']:>8.3f}{v['support']:>9}")
    print(
        f"window accuracy {r['accuracy']:.3f}  macro-F1 {r['macro_f1']:.3f}  "
        f"false actions on OTHER {_pct(r['false_action_rate'])}  "
        f"clip accuracy {r['clip_accuracy']:.3f} ({r['clips_right']}/{r['clips']} clips)  {r['seconds']:.0f} s"
    )
    for src, v in r.get("by_source", {}).items():
        print(
            f"{src}: window accuracy {v['accuracy']:.3f}, macro-F1 {v['macro_f1']:.3f}, "
            f"false actions {_pct(v['false_action_rate'])}, "
            f"clip accuracy {v['clip_accuracy']:.3f} ({v['clips_right']}/{v['clips']} clips)"
        )
    for n, v in r.get("by_pose_every", {}).items():
        print(
            f"pose every {n}: window accuracy {v['accuracy']:.3f}, macro-F1 {v['macro_f1']:.3f}, "
            f"clip accuracy {v['clip_accuracy']:.3f}"
        )
    for n, v in r.get("by_pose_workers", {}).items():
        print(
            f"{n} pose model(s), round-robin: window accuracy {v['accuracy']:.3f}, macro-F1 {v['macro_f1']:.3f}, "
            f"clip accuracy {v['clip_accuracy']:.3f}"
        )
    for hz, by_set in r.get("by_pose_fps", {}).items():
        print(
            f"at most {hz} poses/s: "
            + "; ".join(f"{name} window accuracy {v['accuracy']:.3f}, {score_line(v)}" for name, v in by_set.items())
        )
    if r["clips_wrong"]:
        print("wrong clips: " + "; ".join(r["clips_wrong"][:30]))
    if "cross_fitted" in r:
        xfit = r["cross_fitted"]
        print(
            f"threshold tuned on the other folds' held-out windows ({', '.join(map(str, xfit['thresholds']))}): "
            + "; ".join(f"{name} {score_line(v)}" for name, v in xfit.items() if name != "thresholds")
        )
    if "rejection_curve" in r:
        print(
            "every model at threshold: "
            + "; ".join(
                f"{p['threshold']}: macro-F1 {p['macro_f1']:.3f}, false actions {_pct(p['false_action_rate'])}"
                for p in r["rejection_curve"]
            )
        )
    if "pooled_best_threshold" in r:
        print(f"pooled best threshold: {r['pooled_best_threshold']}")
