"""Judging the classifier on people and cameras it never saw (used by `realtime evaluate`).

Two ways to hold data out, both by whole subjects (`source:subject`), never by clip:
  - grouped cross-validation over all data together: subjects are dealt into K folds,
    stratified by class, so every fold holds out people of every data set;
  - leave-one-data-set-out: train without a whole studio (Weizmann, KTH, wild_dev) and test
    on it, the honest figure for a camera the model has never seen.
Each held-out window keeps the threshold of the model that scored it. Scores are given
overall, per data set and per class, with the false-action rate on OTHER windows (how
often someone doing something else gets one of the six actions) as a headline.

A model's own threshold is chosen on validation subjects from its training side: people
of the cameras it trains on. Out of domain that rejects too little (or, with few
validation people, too much), so the windows are also scored with a cross-fitted
threshold: each fold's is the best one on the other folds' held-out windows, chosen on
people and cameras the fold's scores never include.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

import numpy as np

from .features import FeatureSpec, PoseSequence
from .metrics import clip_votes, confusion, macro_f1_of, per_class
from .types import KEYPOINT_INDEX

if TYPE_CHECKING:
    import torch

    from .training import TrainConfig

Variant = TypeVar("Variant")  # a name for one way of posing the scored data


def thin_to_rate(seq: PoseSequence, pose_fps: float) -> PoseSequence:
    """The sequence as a camera capped at `pose_fps` poses a second would have posed it.

    The pipeline's own rule (`PoseSchedule`) picks the samples, applied to the person's
    samples: a frame where the person was not seen can differ from the pipeline's choice
    by one sample, which is noise next to the rate itself.
    """
    from .pose_stage import PoseSchedule

    schedule = PoseSchedule(pose_fps=pose_fps)
    keep = np.array([schedule.due(float(t)) for t in seq.times], dtype=bool)
    return dataclasses.replace(
        seq,
        keypoints=seq.keypoints[keep],
        scores=seq.scores[keep],
        times=seq.times[keep],
        meta={**seq.meta, "pose_fps": pose_fps},
    )


def cut_at_waist(seq: PoseSequence) -> PoseSequence:
    """The sequence as a camera whose bottom edge runs along the person's hips would have posed it:
    the hips, the legs and any hand below that line unseen, as a desk webcam or a kiosk sees people."""
    hips = np.array([KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"]])
    seen = seq.scores[:, hips] > 0
    line = np.where(seen.any(axis=1), (seq.keypoints[:, hips, 1] * seen).sum(axis=1) / seen.sum(axis=1).clip(1), np.nan)
    if np.isnan(line).all():
        return seq
    frames = np.arange(len(seq))
    have = ~np.isnan(line)
    line = np.interp(frames, frames[have], line[have])
    # A little above the hip joints, so the hips themselves are out of the frame as they are at a real edge.
    torso = np.nanmedian(np.abs(line - seq.keypoints[:, KEYPOINT_INDEX["left_shoulder"], 1])) or 1.0
    edge = line - 0.05 * torso
    scores = np.where(seq.keypoints[..., 1] < edge[:, None], seq.scores, 0.0).astype(np.float32)
    return dataclasses.replace(seq, scores=scores, meta={**seq.meta, "waist_up": True})


def subject_key(seq: PoseSequence) -> str:
    return f"{seq.source}:{seq.subject}"


def subject_folds(sequences: list[PoseSequence], folds: int) -> list[list[str]]:
    """Held-out subject groups: one per subject with `folds` 0, else `folds` groups stratified by class.

    Subjects are placed one at a time, those with the most clips first, each in the fold that so
    far holds the smallest share of its data set's clips of its classes (then the fewest
    subjects of its data set, then the fewest subjects). So every fold holds out people of every data set, and the few
    subjects of a rare class (wild_dev's three BOXING clips come from two subjects) land in
    different folds instead of leaving a fold's model without any example of that class.
    """
    clips: dict[str, Counter[str]] = {}
    source_of: dict[str, str] = {}
    for s in sequences:
        clips.setdefault(subject_key(s), Counter())[f"{s.source}:{s.label}"] += 1
        source_of[subject_key(s)] = s.source
    if folds <= 0:
        return [[k] for k in sorted(clips, key=lambda k: (source_of[k], k))]
    total = Counter[str]()
    for counts in clips.values():
        total.update(counts)
    groups: list[list[str]] = [[] for _ in range(folds)]
    held: list[Counter[str]] = [Counter() for _ in range(folds)]
    for key in sorted(clips, key=lambda k: (-sum(clips[k].values()), k)):

        def load(i: int, key: str = key) -> tuple[float, int, int]:
            share = sum(held[i][c] / total[c] for c in clips[key])
            same_source = sum(source_of[k] == source_of[key] for k in groups[i])
            return share, same_source, len(groups[i])

        best = min(range(folds), key=load)
        groups[best].append(key)
        held[best].update(clips[key])
    return [sorted(g) for g in groups if g]


def dataset_folds(sequences: list[PoseSequence]) -> list[list[str]]:
    """One fold per data set (source), holding out all its subjects."""
    by_source: dict[str, list[str]] = {}
    for s in sequences:
        keys = by_source.setdefault(s.source, [])
        if subject_key(s) not in keys:
            keys.append(subject_key(s))
    return [sorted(keys) for _, keys in sorted(by_source.items())]


@dataclass
class HeldOut:
    """Windows scored by models that never saw their subjects.

    probs (N, classes); owner (N,) index of each window's sequence in `sequences`;
    thresholds (N,) the rejection threshold of the model that scored the window;
    folds (N,) the fold of that model.
    """

    probs: np.ndarray
    owner: np.ndarray
    thresholds: np.ndarray
    sequences: list[PoseSequence] = field(default_factory=list)
    folds: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @classmethod
    def empty(cls, classes: int) -> HeldOut:
        return cls(np.zeros((0, classes), np.float32), np.zeros(0, np.int64), np.zeros(0), [])

    def add(
        self,
        probs: np.ndarray,
        owner: list[int] | np.ndarray,
        threshold: float,
        sequences: list[PoseSequence],
        fold: int = 0,
    ) -> None:
        offset = len(self.sequences)
        self.probs = np.concatenate([self.probs, probs])
        self.owner = np.concatenate([self.owner, np.asarray(owner, np.int64) + offset])
        self.thresholds = np.concatenate([self.thresholds, np.full(len(owner), threshold)])
        self.folds = np.concatenate([self.folds, np.full(len(owner), fold, np.int64)])
        self.sequences = self.sequences + list(sequences)

    def true_labels(self, labels: tuple[str, ...]) -> np.ndarray:
        return np.array([labels.index(self.sequences[o].label) for o in self.owner], dtype=np.int64)

    def restrict(self, keep: Callable[[PoseSequence], bool]) -> HeldOut:
        """The part that belongs to the sequences `keep` accepts."""
        kept = [i for i, s in enumerate(self.sequences) if keep(s)]
        new_index = np.full(len(self.sequences), -1, np.int64)
        new_index[kept] = np.arange(len(kept))
        sel = new_index[self.owner] >= 0 if len(self.owner) else np.zeros(0, bool)
        return HeldOut(
            self.probs[sel],
            new_index[self.owner[sel]],
            self.thresholds[sel],
            [self.sequences[i] for i in kept],
            self.folds[sel],
        )

    def predictions(self, labels: tuple[str, ...]) -> np.ndarray:
        from .classifier import decide

        pred = np.empty(len(self.owner), dtype=np.int64)
        for t in np.unique(self.thresholds):
            sel = self.thresholds == t
            pred[sel] = decide(self.probs[sel], labels, float(t))
        return pred


def score(held: HeldOut, labels: tuple[str, ...]) -> dict:
    """Window and clip scores, per class, the confusion matrix and the false-action rate."""
    from .training import false_action_rate

    seqs, owner = held.sequences, held.owner
    y_true = held.true_labels(labels)
    y_pred = held.predictions(labels)
    table = per_class(y_true, y_pred, labels)
    votes = clip_votes(y_pred, owner)
    clips_right = sum(int(labels[v] == seqs[o].label) for o, v in votes.items())
    wrong = sorted(f"{seqs[o].clip} -> {labels[v]}" for o, v in votes.items() if labels[v] != seqs[o].label)
    clip_true = np.array([labels.index(seqs[o].label) for o in votes], dtype=np.int64)
    clip_pred = np.array(list(votes.values()), dtype=np.int64)
    clip_table = per_class(clip_true, clip_pred, labels) if votes else {}
    far = false_action_rate(y_true, y_pred, labels)
    # The same windows without rejection: how much of the score the threshold makes.
    raw = dataclasses.replace(held, thresholds=np.zeros(len(owner))).predictions(labels)
    clip_far = false_action_rate(clip_true, clip_pred, labels) if votes else None
    return {
        "accuracy": round(float(np.mean(y_true == y_pred)), 4) if len(owner) else 0.0,
        "macro_f1": macro_f1_of(table),
        "false_action_rate": None if far is None else round(far, 4),
        "macro_f1_without_rejection": macro_f1_of(per_class(y_true, raw, labels)),
        "per_class": table,
        "windows": len(owner),
        "clips": len(seqs),
        # A clip with no usable window cannot be labelled: it counts as wrong.
        "clip_accuracy": round(clips_right / len(seqs), 4) if seqs else None,
        "clips_right": clips_right,
        "clip_macro_f1": macro_f1_of(clip_table),
        "clip_false_action_rate": None if clip_far is None else round(clip_far, 4),
        "clips_wrong": wrong,
        "clips_without_windows": [s.clip for i, s in enumerate(seqs) if i not in votes],
        "confusion": {"labels": list(labels), "matrix": confusion(y_true, y_pred, len(labels)).tolist()},
    }


def brief(report: dict) -> dict:
    """The figures of a score without its confusion matrix."""
    return {k: v for k, v in report.items() if k != "confusion"}


def cross_validate(
    pool: list[PoseSequence],
    folds: list[list[str]],
    config: TrainConfig,
    run_dir: Path,
    scored: dict[Variant, list[PoseSequence]],
    stride_s: float = 0.16,
    extra: list[PoseSequence] | None = None,
    log: TextIO = sys.stderr,
) -> tuple[dict[Variant, HeldOut], list[dict]]:
    """Train one model per fold on `pool` (+ `extra`) without the fold's subjects, and score them.

    `scored` maps a variant name to the sequences to score (e.g. the same clips posed every
    frame and every 3rd frame); each variant's held-out windows are gathered in one HeldOut.
    The model's own validation subjects (early stopping, threshold) come from its training side.
    """
    from .training import eval_windows, fit, predict_windows, split_by_subject

    labels = config.labels
    held_out = {variant: HeldOut.empty(len(labels)) for variant in scored}
    info = []
    for k, group in enumerate(folds):
        held = set(group)
        train = [s for s in pool if subject_key(s) not in held] + list(extra or [])
        fit_train, fit_val = split_by_subject(train, 0.2, config.seed)
        result = fit(fit_train, fit_val, config, run_dir)
        info.append(
            {
                "held_out": group,
                "best_epoch": result.best_epoch,
                "threshold": result.threshold,
                "val_subjects": sorted({subject_key(s) for s in fit_val}),
                "seconds": round(result.seconds, 1),
            }
        )
        print(
            f"fold {k + 1}/{len(folds)} {','.join(group)}: epoch {result.best_epoch}, "
            f"threshold {result.threshold}, {result.seconds:.0f} s",
            file=log,
            flush=True,
        )
        for variant, sequences in scored.items():
            test = [s for s in sequences if subject_key(s) in held]
            x, owner = eval_windows(test, config.spec, stride_s)
            probs = predict_windows(result.model, x, gate=config.gate())
            held_out[variant].add(probs, owner, result.threshold, test, fold=k)
    return held_out, info


def score_checkpoint(
    model: torch.nn.Module,
    spec: FeatureSpec,
    threshold: float,
    labels: tuple[str, ...],
    sequences: list[PoseSequence],
    stride_s: float = 0.16,
    whole_body: tuple[str, ...] = (),
) -> HeldOut:
    """A trained model's windows on `sequences` (in-sample if it was trained on them)."""
    from .training import eval_windows, predict_windows

    x, owner = eval_windows(sequences, spec, stride_s)
    held = HeldOut.empty(len(labels))
    held.add(predict_windows(model, x, gate=(spec, labels, whole_body)), owner, threshold, sequences)
    return held


def pooled_threshold(held: HeldOut, labels: tuple[str, ...], max_false_action: float) -> float:
    """The rejection threshold that would have been best on all held-out windows together:
    a steadier choice than one fold's, for whoever ships weights."""
    from .training import choose_threshold

    return choose_threshold(held.probs, held.true_labels(labels), labels, max_false_action)


def at_threshold(held: HeldOut, threshold: float) -> HeldOut:
    """The same held-out windows, every one judged at `threshold`."""
    return dataclasses.replace(held, thresholds=np.full(len(held.owner), threshold))


def by_data_set(held: HeldOut, labels: tuple[str, ...]) -> dict:
    """Brief scores of all held-out windows (`all`) and of each data set's."""
    sources = sorted({s.source for s in held.sequences})

    def of_source(src: str) -> Callable[[PoseSequence], bool]:
        return lambda s: s.source == src

    return {"all": brief(score(held, labels))} | {
        src: brief(score(held.restrict(of_source(src)), labels)) for src in sources
    }


# The figures averaged over seeds, per data set: overall ones, then each class's F1.
SEED_FIGURES = ("macro_f1", "false_action_rate", "accuracy", "clip_accuracy")


def mean_over_seeds(per_seed: list[dict]) -> dict:
    """Mean and standard deviation over seeds of each data set's figures and per-class F1, from
    `by_data_set` results (an `at_threshold` entry in them is averaged the same way)."""

    def summarise(scores: list[dict]) -> dict:
        out: dict = {}
        for name in scores[0]:
            runs = [s[name] for s in scores if name in s]
            row: dict = {}
            for figure in SEED_FIGURES:
                values = [r[figure] for r in runs if r.get(figure) is not None]
                if values:
                    row[figure] = {"mean": round(float(np.mean(values)), 4), "sd": round(float(np.std(values)), 4)}
            row["per_class_f1"] = {
                c: round(float(np.mean([r["per_class"][c]["f1"] for r in runs])), 4)
                for c in runs[0]["per_class"]
                if all(r["per_class"][c]["support"] for r in runs)
            }
            out[name] = row
        return out

    plain = [{k: v for k, v in s.items() if k != "at_threshold"} for s in per_seed]
    result = {"mean": summarise(plain)}
    if all("at_threshold" in s for s in per_seed):
        result["at_threshold"] = summarise([s["at_threshold"] for s in per_seed])
    return result


def rejection_curve(held: HeldOut, labels: tuple[str, ...], thresholds: tuple[float, ...]) -> list[dict]:
    """Macro-F1 and false-action rate of the held-out windows if every model had used each threshold:
    the trade-off a user sets with `classifier.threshold`."""
    curve = []
    for t in thresholds:
        r = score(dataclasses.replace(held, thresholds=np.full(len(held.owner), t)), labels)
        curve.append({"threshold": t} | {k: r[k] for k in ("macro_f1", "false_action_rate", "clips_right")})
    return curve


def cross_fitted(held: HeldOut, labels: tuple[str, ...], max_false_action: float) -> tuple[HeldOut, list[float]]:
    """The windows rejected by thresholds tuned out of domain, and those thresholds (one per fold).

    Fold k's threshold is the best (as `choose_threshold` ranks them) on the held-out windows of
    every other fold: subjects, and with --lodo whole data sets, that fold k's windows never
    include. So the score is an honest figure for a threshold shipped from cross-validation.
    """
    from .training import choose_threshold

    y_true = held.true_labels(labels)
    thresholds = held.thresholds.copy()
    chosen = []
    for fold in np.unique(held.folds):
        mine = held.folds == fold
        t = choose_threshold(held.probs[~mine], y_true[~mine], labels, max_false_action) if (~mine).any() else 0.0
        thresholds[mine] = t
        chosen.append(t)
    return dataclasses.replace(held, thresholds=thresholds), chosen
