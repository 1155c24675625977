"""`realtime evaluate`: judge the action classifier on people it never saw.

Cross-validation (no --weights): the subjects of --data are split into groups
(leave-one-subject-out, or --folds K grouped folds); for each group a model is trained
on every other subject (plus any --extra data) and scored on the held-out one.

    python -m realtime evaluate --data videos:../shared/datasets/weizmann \\
        --extra kth:../shared/datasets/kth_pose/kth_pose_persons21-23.csv \\
        --extra openpose:../shared/datasets/openpose_chenge/skeleton_raw.csv --pose-every 1 2 3 --json

With --weights, that checkpoint is scored on all of --data (in-sample if it was trained
on them). --json prints one JSON object: accuracy (windows), macro_f1, per_class,
clip_accuracy (majority vote of each clip's windows), threshold, confusion matrix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ..datasets import CLASSES, KINDS, DatasetError, load_labelled
from .training_args import add_training_arguments, train_config_from


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m realtime evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True, metavar="KIND:PATH",
                   help=f"data to evaluate on, repeatable; KIND is one of {', '.join(KINDS)}")
    p.add_argument("--extra", action="append", default=[], metavar="KIND:PATH",
                   help="cross-validation only: data always added to training, never scored")
    p.add_argument("--weights", type=Path, help="score this checkpoint instead of cross-validating")
    p.add_argument("--folds", type=int, default=0, help="grouped folds; 0 = leave one subject out")
    p.add_argument("--pose-every", type=int, nargs="+", default=[1],
                   help="videos: score poses of every Nth frame (as the pipeline's skip N-1); "
                        "the first N is the headline, training always uses every frame; "
                        "by_pose_every in the JSON covers the videos data only")
    p.add_argument("--pose-workers", type=int, nargs="+", default=[1],
                   help="videos: also score poses dealt round-robin to N pose models, as the pipeline's "
                        "pose.workers N does (with the first --pose-every); by_pose_workers in the JSON")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--confusion", type=Path, default=None, help="write the confusion matrix PNG here")
    p.add_argument("--stride", type=float, default=0.16, help="seconds between scored windows")
    add_training_arguments(p)
    return p


def groups_of(sequences, folds: int) -> list[list[str]]:
    """Held-out subject groups. With K folds, each source's subjects are dealt round-robin into
    K groups, so every fold holds out people of every source and one run scores them all."""
    keys_by_source: dict[str, list[str]] = {}
    for s in sequences:
        key = f"{s.source}:{s.subject}"
        if key not in keys_by_source.setdefault(s.source, []):
            keys_by_source[s.source].append(key)
    if folds <= 0:
        return [[k] for keys in keys_by_source.values() for k in sorted(keys)]
    groups: list[list[str]] = [[] for _ in range(folds)]
    for keys in keys_by_source.values():
        for i, key in enumerate(sorted(keys)):
            groups[i % folds].append(key)
    return [g for g in groups if g]


def restrict(result: tuple, source: str) -> tuple:
    """The part of (probs, owner, thresholds, sequences) that belongs to one source."""
    probs, owner, thresholds, seqs = result
    keep_seq = [i for i, s in enumerate(seqs) if s.source == source]
    new_index = {old: new for new, old in enumerate(keep_seq)}
    sel = np.array([seqs[o].source == source for o in owner], dtype=bool)
    owner_new = np.array([new_index[o] for o in owner[sel]], dtype=np.int64)
    return probs[sel], owner_new, thresholds[sel], [seqs[i] for i in keep_seq]


def score(probs: np.ndarray, owner: np.ndarray, threshold_per_window: np.ndarray, sequences, labels) -> dict:
    from ..classifier import decide
    from ..metrics import clip_votes, confusion, macro_f1_of, per_class

    y_true = np.array([labels.index(sequences[o].label) for o in owner], dtype=np.int64)
    y_pred = np.empty(len(owner), dtype=np.int64)
    for t in np.unique(threshold_per_window):
        sel = threshold_per_window == t
        y_pred[sel] = decide(probs[sel], labels, float(t))
    table = per_class(y_true, y_pred, labels)
    votes = clip_votes(y_pred, owner)
    clips_right = sum(int(labels[v] == sequences[o].label) for o, v in votes.items())
    wrong = sorted(f"{sequences[o].clip} -> {labels[v]}" for o, v in votes.items()
                   if labels[v] != sequences[o].label)
    no_window = [s.clip for i, s in enumerate(sequences) if i not in votes]
    clip_table = per_class(np.array([labels.index(sequences[o].label) for o in votes]),
                           np.array(list(votes.values())), labels) if votes else {}
    return {
        "accuracy": round(float(np.mean(y_true == y_pred)), 4) if len(owner) else 0.0,
        "macro_f1": macro_f1_of(table),
        "per_class": table,
        "windows": len(owner),
        "clips": len(sequences),
        # A clip with no usable window cannot be labelled: it counts as wrong.
        "clip_accuracy": round(clips_right / len(sequences), 4) if sequences else None,
        "clip_macro_f1": macro_f1_of(clip_table),
        "clips_wrong": wrong,
        "clips_without_windows": no_window,
        "confusion": {"labels": list(labels),
                      "matrix": confusion(y_true, y_pred, len(labels)).tolist()},
    }


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch

    from ..classifier import load_checkpoint
    from ..features import FeatureSpec
    from ..training import choose_threshold, eval_windows, fit, predict_windows, split_by_subject

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    everies, workers = args.pose_every, args.pose_workers
    # Each way of posing the videos: (pose every Nth frame, over W round-robin models).
    variants = list(dict.fromkeys([(n, 1) for n in everies] + [(everies[0], w) for w in workers]))
    data = {v: load_labelled(args.data, args.cache, v[0], pose_workers=v[1]) for v in variants}
    base = data[variants[0]]
    if not base:
        raise DatasetError("the given --data hold no labelled sequences")
    results: dict[tuple[int, int], tuple] = {}
    fold_info = []
    if args.weights:
        ckpt = load_checkpoint(args.weights)
        model, labels, spec = ckpt.build_model().eval(), ckpt.labels, ckpt.spec
        for variant, seqs in data.items():
            x, owner = eval_windows(seqs, spec, args.stride)
            results[variant] = (predict_windows(model, x), np.asarray(owner, np.int64),
                                np.full(len(owner), ckpt.threshold), seqs)
        mode = f"checkpoint {args.weights} (threshold {ckpt.threshold})"
    else:
        labels, spec = CLASSES, FeatureSpec()
        config = train_config_from(args)
        extra = load_labelled(args.extra, args.cache, 1) if args.extra else []
        # Training always sees every-frame poses of one model; only scoring varies the posing.
        train_pool = data[(1, 1)] if (1, 1) in data else load_labelled(args.data, args.cache, 1)
        acc: dict[tuple[int, int], tuple[list, list, list, list]] = {v: ([], [], [], []) for v in variants}
        groups = groups_of(base, args.folds)
        for k, group in enumerate(groups):
            held = set(group)
            train = [s for s in train_pool if f"{s.source}:{s.subject}" not in held] + extra
            fit_train, fit_val = split_by_subject(train, 0.2, args.seed)
            result = fit(fit_train, fit_val, config, args.runs)
            fold_info.append({"held_out": group, "best_epoch": result.best_epoch,
                              "threshold": result.threshold, "seconds": round(result.seconds, 1)})
            print(f"fold {k + 1}/{len(groups)} {','.join(group)}: epoch {result.best_epoch}, "
                  f"threshold {result.threshold}, {result.seconds:.0f} s", file=sys.stderr)
            for variant, seqs in data.items():
                test = [s for s in seqs if f"{s.source}:{s.subject}" in held]
                x, owner = eval_windows(test, spec, args.stride)
                probs, owners, thresholds, all_seqs = acc[variant]
                offset = len(all_seqs)
                probs.append(predict_windows(result.model, x))
                owners.append(np.asarray(owner, np.int64) + offset)
                thresholds.append(np.full(len(owner), result.threshold))
                all_seqs += test
        for variant, (probs, owners, thresholds, seqs) in acc.items():
            results[variant] = (np.concatenate(probs), np.concatenate(owners), np.concatenate(thresholds), seqs)
        mode = (f"{'leave-one-subject-out' if args.folds <= 0 else f'{args.folds}-fold grouped'} "
                f"cross-validation, {len(groups)} folds")
    head = results[variants[0]]
    report = score(*head, labels)
    report.update({"mode": mode, "data": args.data, "extra": args.extra, "pose_every": everies[0],
                   "seconds": round(time.perf_counter() - start, 1)})
    if fold_info:
        report["folds"] = fold_info
        # The rejection threshold that would have been best on all held-out windows together:
        # a steadier choice than one fold's, reported for whoever ships weights.
        probs, owner, _, seqs = head
        y_true = np.array([labels.index(seqs[o].label) for o in owner], dtype=np.int64)
        report["pooled_best_threshold"] = choose_threshold(probs, y_true, labels)
    sources = sorted({s.source for s in head[3]})
    if len(sources) > 1:
        report["by_source"] = {src: _brief(score(*restrict(head, src), labels)) for src in sources}

    def videos_only(variant: tuple[int, int]) -> dict:
        return _brief(score(*restrict(results[variant], "videos"), labels) if "videos" in sources
                      else score(*results[variant], labels))

    if len(everies) > 1:
        report["by_pose_every"] = {str(n): videos_only((n, 1)) for n in everies}
    if workers != [1]:
        report["by_pose_workers"] = {str(w): videos_only((everies[0], w)) for w in workers}
    if args.confusion:
        from ..metrics import save_confusion_png

        args.confusion.parent.mkdir(parents=True, exist_ok=True)
        save_confusion_png(np.array(report["confusion"]["matrix"]), labels, str(args.confusion),
                           f"{', '.join(Path(d.split(':', 1)[1]).name for d in args.data)}: {mode}")
        report["confusion_png"] = str(args.confusion)
    if args.json:
        print(json.dumps(report))
    else:
        print_human(report)
    return 0


def _brief(r: dict) -> dict:
    return {k: r[k] for k in ("accuracy", "macro_f1", "clip_accuracy", "clip_macro_f1", "windows", "clips",
                              "per_class", "clips_wrong")}


def print_human(r: dict) -> None:
    print(r["mode"])
    print(f"{'class':<16}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}")
    for name, v in r["per_class"].items():
        print(f"{name:<16}{v['precision']:>10.3f}{v['recall']:>8.3f}{v['f1']:>8.3f}{v['support']:>9}")
    print(f"window accuracy {r['accuracy']:.3f}  macro-F1 {r['macro_f1']:.3f}  "
          f"clip accuracy {r['clip_accuracy']:.3f} ({r['clips']} clips)  {r['seconds']:.0f} s")
    for src, v in r.get("by_source", {}).items():
        print(f"{src}: window accuracy {v['accuracy']:.3f}, macro-F1 {v['macro_f1']:.3f}, "
              f"clip accuracy {v['clip_accuracy']:.3f} ({v['clips']} clips)")
    for n, v in r.get("by_pose_every", {}).items():
        print(f"pose every {n}: window accuracy {v['accuracy']:.3f}, macro-F1 {v['macro_f1']:.3f}, "
              f"clip accuracy {v['clip_accuracy']:.3f}")
    for n, v in r.get("by_pose_workers", {}).items():
        print(f"{n} pose model(s), round-robin: window accuracy {v['accuracy']:.3f}, macro-F1 {v['macro_f1']:.3f}, "
              f"clip accuracy {v['clip_accuracy']:.3f}")
    if r["clips_wrong"]:
        print("wrong clips: " + "; ".join(r["clips_wrong"][:20]))
