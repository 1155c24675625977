"""One teach run: pose the taught clips, add the shipped data, train with `realtime train`'s code, score it.

Nothing here trains or poses its own way: clips are posed and their person chosen by
datasets/videos.py (with its pose cache), the shipped data is read by `load_labelled`,
the split is `split_by_subject`, the settings are `train`'s own flags' defaults
(training_args.py) and the model is made by `training.fit`. The result is a checkpoint
in its own folder of the work folder and a figure of how it does on the held-out people.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import DEFAULT_POSE_CACHE, default_pose_backend, default_root, load_labelled
from ..datasets.labels import CLASS_NAME, OTHER, LabelTable, default_labels
from ..datasets.videos import Clip, load_clips
from ..errors import DatasetError
from ..features import PoseSequence
from ..model_registry import MODELS_FOLDER, ModelRecord, ModelRegistry
from .store import ClipRecord

log = logging.getLogger("realtime.web")

MODES = ("add", "only_new")
TAUGHT_FOLDER = "taught"  # the clips' folder, and so the data set name their sequences carry
POSES_FOLDER = "teach-poses"
CHECKPOINT_NAME = "model.pt"
FIGURE_NAME = "heldout.png"
# Progress shares of the phases (percent at the phase's start).
_POSING, _SHIPPED, _TRAINING, _SCORING = 0.0, 35.0, 40.0, 95.0

Progress = Callable[[str, float], None]  # phase, percent done


class TrainingStopped(Exception):
    """The server is stopping: the run ends without a model."""


@dataclass(frozen=True)
class TeachRequest:
    """What the user asks of one run (the JSON of POST /api/teach/train)."""

    mode: str = "add"  # add: the shipped classes and the new ones; only_new: the new ones and OTHER
    epochs: int = 12
    subset: int = 0  # shipped sequences per data set (0: all); small for a quick try
    name: str | None = None
    seed: int = 0

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> TeachRequest:
        unknown = set(body) - {"mode", "epochs", "subset", "name", "seed"}
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}; give mode, epochs, subset, name, seed")
        request = cls(**body)
        if request.mode not in MODES:
            raise ValueError(f"mode {request.mode!r}: give one of {', '.join(MODES)}")
        if not isinstance(request.epochs, int) or not 1 <= request.epochs <= 200:
            raise ValueError(f"epochs {request.epochs!r}: give a whole number from 1 to 200")
        if not isinstance(request.subset, int) or request.subset < 0:
            raise ValueError(f"subset {request.subset!r}: give 0 (all the shipped data) or a positive number")
        if request.name is not None and (not isinstance(request.name, str) or not 0 < len(request.name) <= 60):
            raise ValueError("name: give 1 to 60 characters")
        return request

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "epochs": self.epochs, "subset": self.subset, "name": self.name, "seed": self.seed}


def shipped_data() -> tuple[str, ...]:
    """The shipped model's data arguments (weights/MODEL_CARD.md), under the datasets' root."""
    root = default_root()
    return (
        f"videos:{root / 'weizmann'}",
        f"kth:{root / 'kth_pose' / 'kth_pose_persons21-23.csv'}",
        f"wild:{root / 'wild_dev'}",
        f"openpose:{root / 'openpose_chenge' / 'skeleton_raw.csv'}",
    )


@dataclass(frozen=True)
class TeachSettings:
    data: tuple[str, ...] = ()  # the shipped data as KIND:PATH; () = shipped_data()
    pose_backend: str | None = None  # None: the pipeline's default
    shipped_cache: Path = DEFAULT_POSE_CACHE  # where the shipped videos' poses are cached
    threads: int = 1  # torch threads for training


def teach_classes(actions: Iterable[str], mode: str) -> tuple[str, ...]:
    """The new model's classes: the shipped ones kept (mode add) and the new ones, OTHER last."""
    new = sorted({a for a in actions if a != OTHER})
    kept = [c for c in default_labels().classes if c != OTHER] if mode == "add" else []
    return (*kept, *(a for a in new if a not in kept), OTHER)


def taught_sequences(
    root: Path, clips: list[ClipRecord], backend: str, progress: Progress, stop: Callable[[], bool]
) -> list[PoseSequence]:
    """The taught clips posed (cached in the work folder) and cut to their spans."""
    folder = root / TAUGHT_FOLDER
    actions = sorted({c.action for c in clips})
    table = LabelTable((*actions, OTHER), {"teach": {a: a for a in actions}}, folder)

    def counted(items: Iterable[Any]) -> Iterator[Any]:
        items = list(items)
        for i, item in enumerate(items):
            if stop():
                raise TrainingStopped
            progress(f"posing clip {i + 1} of {len(items)}", _POSING + (_SHIPPED - _POSING) * i / len(items))
            yield item

    entries = [Clip(root / c.path, c.action, c.subject) for c in clips]
    sequences = load_clips(
        folder, entries, "teach", root / POSES_FOLDER, backend=backend, progress=counted, labels=table
    )
    cut = []
    for clip, seq in zip(clips, sequences, strict=True):
        seq.meta["clip_id"] = clip.id
        if clip.start_s is not None and clip.end_s is not None:
            keep = (seq.times >= clip.start_s) & (seq.times <= clip.end_s)
            seq = replace(seq, keypoints=seq.keypoints[keep], scores=seq.scores[keep], times=seq.times[keep])
        cut.append(seq)
    return cut


def without_taught_actions(shipped: list[PoseSequence], actions: set[str]) -> tuple[list[PoseSequence], list[str]]:
    """The shipped data less its OTHER recordings of a taught action, and the names of those left out.

    The shipped OTHER holds squats and lunges (wild_dev, the OpenPose run): kept, they would
    teach that a squat is OTHER. A recording whose action or file name names a taught action
    (SQUAT: `indstudy_squats_side.mp4`, the OpenPose run's `squat`) is left out.
    """
    names = [a.lower() for a in actions]

    def names_one(seq: PoseSequence) -> bool:
        said = f"{seq.meta.get('action', '')} {Path(seq.clip).name}".lower()
        return seq.label == OTHER and any(name in said for name in names)

    return [s for s in shipped if not names_one(s)], sorted(f"{s.source}:{s.clip}" for s in shipped if names_one(s))


def people_warnings(clips: list[ClipRecord], held_out: list[PoseSequence], min_people: int) -> list[str]:
    """One line per new class whose figure says little: too few people recorded it, or none is held out."""
    notes = []
    for action in sorted({c.action for c in clips if c.action != OTHER}):
        people = sorted({c.subject for c in clips if c.action == action})
        held = sorted({s.subject for s in held_out if s.label == action})
        if not held:
            notes.append(
                f"{action}: no held-out person has it ({len(people)} recorded it: {', '.join(people)}), so the "
                f"figure cannot say how it does on new people — record at least {min_people} people"
            )
        elif len(people) < min_people:
            notes.append(
                f"{action}: {len(people)} people recorded it and {', '.join(held)} is held out, so it was learnt "
                f"from {len(people) - len(held)} and judged on {len(held)}: too few to say — record at least "
                f"{min_people} people"
            )
    return notes


def held_out_scores(
    model: Any, val: list[PoseSequence], labels: tuple[str, ...], threshold: float, spec: Any
) -> dict[str, Any]:
    """Per class, the share of held-out people's windows called that class, and false actions on OTHER."""
    from ..classifier import decide
    from ..training import eval_windows, false_action_rate, predict_windows

    windows, owner = eval_windows(val, spec)
    if not len(windows):
        return {"per_class": {}, "false_action": None, "windows": 0, "people": []}
    probs = predict_windows(model, windows)
    truth = np.array([labels.index(val[i].label) for i in owner])
    pred = decide(probs, labels, threshold)
    per_class = {}
    for c, name in enumerate(labels):
        mine = truth == c
        if mine.any():
            people = sorted({val[i].subject for i in np.asarray(owner)[mine]})
            per_class[name] = {
                "recall": round(float(np.mean(pred[mine] == c)), 3),
                "windows": int(mine.sum()),
                "people": len(people),
            }
    rate = false_action_rate(truth, pred, labels)
    return {
        "per_class": per_class,
        "false_action": None if rate is None else round(rate, 3),
        "windows": len(windows),
        "people": sorted({f"{s.source}:{s.subject}" for s in val}),
    }


def save_figure(scores: dict[str, Any], warnings: list[str], path: Path, title: str) -> None:
    """Bars: each class's share of held-out windows recognised; a red bar for false actions on OTHER."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(scores["per_class"])
    values = [scores["per_class"][n]["recall"] for n in names]
    colours = ["#4a7fb5"] * len(names)
    if scores["false_action"] is not None:
        names.append("false actions\non OTHER")
        values.append(scores["false_action"])
        colours.append("#c0392b")
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 1.5), 3.6))
    ax.bar(range(len(names)), values, color=colours)
    for i, v in enumerate(values):
        ax.text(i, v + 0.02, f"{v:.2f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share of held-out windows")
    people = len(scores["people"])
    ax.set_title(
        f"{title}: {people} held-out people" + ("\n(too few to say: see the warnings)" if warnings else ""), fontsize=9
    )
    if not names:
        ax.text(0.5, 0.5, "no held-out people", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _progress_callback(progress: Progress, epochs: int, stop: Callable[[], bool]) -> Any:
    import pytorch_lightning as pl

    class EpochProgress(pl.Callback):
        """Reports each epoch; asks Lightning to stop when the server stops."""

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            done = trainer.current_epoch + 1
            progress(f"training epoch {done} of {epochs}", _TRAINING + (_SCORING - _TRAINING) * done / epochs)

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if stop():
                trainer.should_stop = True

    return EpochProgress()


def train_taught(
    root: Path,
    clips: list[ClipRecord],
    request: TeachRequest,
    settings: TeachSettings,
    registry: ModelRegistry,
    progress: Progress,
    stop: Callable[[], bool] = lambda: False,
    scratch: Path | None = None,
) -> ModelRecord:
    """Train a model from the taught clips (and the shipped data) and add it to the registry, inactive."""
    from ..classifier import load_checkpoint, save_checkpoint
    from ..commands.training_args import add_training_arguments, train_config_from
    from ..training import MIN_SUBJECTS_TO_VALIDATE, fit, split_by_subject, split_warnings

    start = time.perf_counter()
    if not any(c.action != OTHER for c in clips):
        raise DatasetError("no clip of a new action: add clips and name their action first")
    for action in {c.action for c in clips}:
        if not CLASS_NAME.match(action):
            raise DatasetError(f"action {action!r}: a name is a letter, then letters, digits or _")
    labels = teach_classes((c.action for c in clips), request.mode)
    backend = settings.pose_backend or default_pose_backend()
    taught = taught_sequences(root, clips, backend, progress, stop)
    progress("reading the shipped data", _SHIPPED)
    shipped = load_labelled(
        list(settings.data or shipped_data()), settings.shipped_cache, subset=request.subset, backend=backend
    )
    if request.mode == "only_new":
        shipped = [s for s in shipped if s.label == OTHER]
    shipped = [s for s in shipped if s.label in labels]
    shipped, left_out = without_taught_actions(shipped, {c.action for c in clips if c.action != OTHER})
    sequences = taught + shipped
    # `train`'s own flags, parsed from their defaults: one place for every training setting.
    flags = argparse.ArgumentParser(add_help=False)
    add_training_arguments(flags)
    args = flags.parse_args(
        ["--epochs", str(request.epochs), "--seed", str(request.seed), "--threads", str(settings.threads)]
    )
    config = replace(train_config_from(args), labels=labels, progress=False)
    train, val = split_by_subject(sequences, 0.2, request.seed)
    # `train`'s notes, less their advice on its --threshold flag: without held-out people the
    # active model's threshold is kept (below), which the page says instead.
    warnings = [
        w.split("; pass --threshold")[0]
        for w in split_warnings(train, val, threshold_given=False)
        if not w.startswith("no validation subjects")
    ]
    if not val:
        warnings.append(
            f"no held-out people (a data set needs {MIN_SUBJECTS_TO_VALIDATE} people to lend some): the rejection "
            "threshold is the active model's, and there is no figure"
        )
    warnings += people_warnings(clips, val, MIN_SUBJECTS_TO_VALIDATE)
    if stop():
        raise TrainingStopped
    progress(f"training epoch 0 of {request.epochs}", _TRAINING)
    scratch = scratch or root / MODELS_FOLDER / f".training-{int(time.time())}"
    scratch.mkdir(parents=True, exist_ok=True)
    result = fit(train, val, config, scratch / "runs", callbacks=[_progress_callback(progress, request.epochs, stop)])
    if stop():
        raise TrainingStopped
    progress("scoring held-out people", _SCORING)
    threshold = result.threshold
    if not result.val_windows:
        active = registry.active()
        threshold = load_checkpoint(registry.checkpoint_path(active)).threshold if active else 0.0
    scores = held_out_scores(result.model, val, labels, threshold, config.spec)
    model_id = registry.next_id()
    new = [c for c in labels if c not in default_labels().classes]
    name = request.name or f"{'+'.join(new) or 'retrained'}-v{model_id}"
    metrics = {
        **scores,
        "threshold": threshold,
        "warnings": warnings,
        "seconds": round(time.perf_counter() - start, 1),
        "epochs": result.best_epoch,
        "mode": request.mode,
        "left_out": left_out,
    }
    info = {
        "command": "teach",
        "name": name,
        "pose": backend,
        "epochs": result.best_epoch,
        "val_subjects": scores["people"],
        "clips": [c.id for c in clips],
        "data": list(settings.data or shipped_data()),
    }
    save_checkpoint(scratch / CHECKPOINT_NAME, result.model, labels, config.spec, threshold, info)
    save_figure(scores, warnings, scratch / FIGURE_NAME, name)
    shutil.rmtree(scratch / "runs", ignore_errors=True)
    final = root / MODELS_FOLDER / str(model_id)
    shutil.rmtree(final, ignore_errors=True)
    scratch.rename(final)  # the model appears whole, or not at all
    record = registry.add(name, labels, final / CHECKPOINT_NAME, metrics, tuple(c.id for c in clips))
    log.info("taught model %s (%s) in %.0f s", record.name, ", ".join(labels), time.perf_counter() - start)
    return record
