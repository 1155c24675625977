"""Turning labelled pose sequences into a trained action classifier (used by `realtime train` and `evaluate`).

Windows are cut on the model's time grid from each sequence. Training windows are
re-sampled on the fly with a random speed and then augmented, so every epoch sees
new variants; validation windows are fixed.
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from .augment import Augment
from .classifier import decide, gate_whole_body
from .datasets.labels import CLASSES, OTHER, WHOLE_BODY
from .errors import DatasetError
from .features import (
    FeatureSpec,
    PoseSequence,
    resample,
    sequence_grid,
    sequence_windows,
    window_features,
    window_is_usable,
)
from .metrics import macro_f1_of, per_class


@dataclass
class TrainConfig:
    """Every training setting, and the only place their defaults are written."""

    # The defaults are the shipped weights' recipe, so `train` with data alone reproduces them;
    # the tutorial's LSTM is `--arch lstm` (MODEL_CARD compares the two on the same folds).
    arch: str = "tcn"  # a network of classifier.ARCHITECTURES
    hidden_size: int = 64  # LSTM: hidden units; TCN, GCN: channels
    num_layers: int = 4  # LSTM: layers; TCN, GCN: blocks
    dropout: float = 0.3
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    max_epochs: int = 30
    patience: int = 6
    # The validation subjects are few (KTH's three people never among them), so in the first
    # epochs their loss is a poor guide: without a floor, folds kept epoch 1-3 now and then.
    min_epochs: int = 8
    stride_s: float = 0.04  # between training window starts (one grid step at 25 Hz)
    max_windows_per_sequence: int = 400
    epoch_windows: int = 4000  # windows drawn per epoch by the balanced sampler
    augment: bool = True
    augment_off: tuple[str, ...] = ()  # augmentations (augment.NAMES) left out
    # Every recording of a class gets an equal share of its windows. Giving each data set an equal
    # share instead (True) lets one OpenPose run teach a third of BOXING; in grouped CV over three
    # seeds it cost 0.05 of macro-F1 and 1 point more false actions (MODEL_CARD).
    balance_sources: bool = False
    # OTHER's share of training windows against each action's: OTHER spans every other thing
    # people do, and its windows are where false actions come from. Twice an action's share
    # cut false actions in grouped CV from 15% to 4% (MODEL_CARD).
    other_weight: float = 2.0
    # The rejection threshold is the best macro-F1 on the validation subjects among those that
    # give at most this share of OTHER windows one of the six actions (a false alarm is the
    # worst outcome for a surveillance user).
    max_false_action: float = 0.05
    # Above 0, validation and the kept weights use an exponential moving average of the weights
    # (this decay per training step) instead of the last step's.
    ema_decay: float = 0.0
    seed: int = 0
    threads: int = 1
    progress: bool = True
    labels: tuple[str, ...] = CLASSES
    whole_body: tuple[str, ...] = WHOLE_BODY  # classes that need the legs in view (labels.yaml)
    spec: FeatureSpec = field(default_factory=lambda: FeatureSpec(bones=True, reaches=True))

    def gate(self) -> tuple[FeatureSpec, tuple[str, ...], tuple[str, ...]]:
        """What `predict_windows` needs to judge windows as live inference does."""
        return self.spec, self.labels, self.whole_body

    def augmenter(self) -> Augment | None:
        return Augment().without(self.augment_off) if self.augment else None


def window_starts(seq: PoseSequence, spec: FeatureSpec, stride_s: float, limit: int) -> list[float]:
    """Start times of usable windows, at most `limit` of them spread over the sequence."""
    grid, _kp, vis = sequence_grid(seq, spec)
    step = max(1, round(stride_s * spec.rate_hz))
    starts = [
        grid[i] for i in range(0, len(grid) - spec.window + 1, step) if window_is_usable(vis[i : i + spec.window], spec)
    ]
    if len(starts) > limit:
        keep = np.linspace(0, len(starts) - 1, limit).round().astype(int)
        starts = [starts[i] for i in keep]
    return starts


class WindowDataset(Dataset):
    """(features, label index) windows of labelled sequences, optionally augmented."""

    def __init__(
        self, sequences: list[PoseSequence], config: TrainConfig, augment: Augment | None, seed: int = 0
    ) -> None:
        self.sequences = [s for s in sequences if s.label is not None]
        self.config = config
        self.spec = config.spec
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self.items: list[tuple[int, float]] = []
        for i, seq in enumerate(self.sequences):
            for t0 in window_starts(seq, self.spec, config.stride_s, config.max_windows_per_sequence):
                self.items.append((i, t0))
        self.targets = np.array([config.labels.index(self.sequences[i].label) for i, _ in self.items], dtype=np.int64)
        self._fixed: np.ndarray | None = None
        if augment is None:
            # Validation windows need not overlap as densely as training ones.
            step = max(1, round(0.16 / config.stride_s))
            self.items = self.items[::step]
            self.targets = self.targets[::step]
            self._fixed = (
                np.stack([self._window(i, t0, 1.0) for i, t0 in self.items])
                if self.items
                else np.zeros((0, self.spec.window, self.spec.dim), np.float32)
            )

    def __len__(self) -> int:
        return len(self.items)

    def _window(self, seq_index: int, t0: float, speed: float, frame_rate: float | None = None) -> np.ndarray:
        seq, spec = self.sequences[seq_index], self.spec
        span = (spec.window - 1) / spec.rate_hz
        if speed != 1.0:
            length = seq.times[-1] - seq.times[0]
            speed = min(speed, length / span) if length > 0 else 1.0
            centre = t0 + span / 2
            t0 = float(np.clip(centre - span * speed / 2, seq.times[0], seq.times[-1] - span * speed))
        grid = t0 + np.arange(spec.window) * speed / spec.rate_hz
        # Only samples within the gap limit of the grid can shape the window: resampling just
        # those made a training window 3-4 times cheaper on minutes-long sequences.
        start, stop = grid[0] - spec.max_gap_s, grid[-1] + spec.max_gap_s
        keep: np.ndarray | slice
        if frame_rate is not None:
            keep = _retimed(seq.times, start, stop, frame_rate, self.rng)
        else:
            keep = slice(np.searchsorted(seq.times, start), np.searchsorted(seq.times, stop, side="right"))
        times, keypoints, scores = seq.times[keep], seq.keypoints[keep], seq.scores[keep]
        # The gap limit is in source time, so a stretched grid keeps the same tolerance.
        kp, vis = resample(times, keypoints, scores >= spec.min_score, grid, spec.max_gap_s)
        if self.augment is not None:
            if not window_is_usable(vis, spec) and (speed != 1.0 or frame_rate is not None):
                return self._window(seq_index, t0, 1.0)
            kp, vis = self.augment(kp, vis, self.rng, spec.joints, seq.label in self.config.whole_body)
        return window_features(kp, vis, spec)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self._fixed is not None:
            x = self._fixed[index]
        else:
            # Without fixed windows the dataset is a training one, so it has an augmentation.
            assert self.augment is not None
            target = int(self.targets[index])
            if target == self.other and self.rng.random() < self.augment.still_p:
                return torch.from_numpy(self._still_window()), target
            i, t0 = self.items[index]
            t0 += float(self.rng.uniform(-0.5, 0.5)) * self.config.stride_s
            seq = self.sequences[i]
            t0 = min(max(t0, seq.times[0]), seq.times[-1] - self.spec.duration_s)
            x = self._window(i, t0, self.augment.speed(self.rng), self.augment.frame_rate(self.rng))
        return torch.from_numpy(x), int(self.targets[index])

    @property
    def other(self) -> int:
        return self.config.labels.index(OTHER) if OTHER in self.config.labels else -1

    def _still_window(self) -> np.ndarray:
        """An OTHER window of someone holding still: one real pose of any training window (of any
        class: a jumping jack frozen mid-jump is no jumping jack), held for the whole window with a
        slow sway; the augmentation then adds the pose model's jitter. It teaches that the six
        actions need their motion, against false alarms on people standing, sitting or drinking."""
        spec = self.spec
        i, t0 = self.items[int(self.rng.integers(len(self.items)))]
        seq = self.sequences[i]
        frame = int(
            np.clip(np.searchsorted(seq.times, t0 + float(self.rng.uniform(0, spec.duration_s))), 0, len(seq) - 1)
        )
        kp = np.repeat(seq.keypoints[frame][None], spec.window, axis=0)
        vis = np.repeat((seq.scores[frame] >= spec.min_score)[None], spec.window, axis=0)
        if vis.any():
            height = float(np.ptp(kp[0][vis[0]][:, 1])) or 1.0
            drift = self.rng.normal(0.0, 0.02 * height, size=2)  # a sway of about 2% of the body's height
            kp = kp + np.linspace(0.0, 1.0, spec.window)[:, None, None] * drift.astype(np.float32)
        assert self.augment is not None  # still windows are drawn for training datasets only
        kp, vis = self.augment(kp, vis, self.rng, spec.joints)
        return window_features(kp, vis, spec)

    def balanced_weights(self) -> np.ndarray:
        """Drawing weights that give every class an equal share (OTHER `other_weight` times that)
        and, within a class, every recording an equal share (with `balance_sources`, every data set
        that has the class first, then every recording within it).

        Recordings differ wildly in length (a 6 s Weizmann clip against a minutes-long OpenPose
        run), so drawing windows uniformly would teach mostly the long ones.
        """
        owners = np.array([i for i, _ in self.items])
        windows_per_seq = np.bincount(owners, minlength=len(self.sequences))
        labels = self.config.labels

        def group(i: int) -> tuple[int, str]:
            seq = self.sequences[i]
            return labels.index(seq.label), seq.source if self.config.balance_sources else ""

        used = np.unique(owners)
        seqs_per_group = Counter(group(i) for i in used)
        groups_per_class = Counter(c for c, _ in seqs_per_group)
        weights = np.array(
            [
                1.0 / (windows_per_seq[i] * seqs_per_group[group(i)] * groups_per_class[group(i)[0]])
                for i, _ in self.items
            ]
        )
        weights[self.targets == self.other] *= self.config.other_weight
        return weights / weights.sum()


def _retimed(times: np.ndarray, start: float, stop: float, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of the samples a camera filming at `rate` would have given between start and stop.

    The sample nearest to each tick of a randomly phased clock at that rate; a source slower
    than the rate keeps all its samples.
    """
    inside = np.flatnonzero((times >= start) & (times <= stop))
    if len(inside) < 2:
        return inside
    ticks = np.arange(times[inside[0]] + rng.uniform(0, 1.0 / rate), times[inside[-1]], 1.0 / rate)
    nearest = np.searchsorted(times[inside], ticks).clip(1, len(inside) - 1)
    left_closer = ticks - times[inside][nearest - 1] < times[inside][nearest] - ticks
    return np.unique(inside[np.where(left_closer, nearest - 1, nearest)])


# A data set lends validation subjects only from this many on: fewer, and holding one out would
# take most of the data set out of training.
MIN_SUBJECTS_TO_VALIDATE = 3


def split_by_subject(
    sequences: list[PoseSequence],
    fraction: float,
    seed: int = 0,
) -> tuple[list[PoseSequence], list[PoseSequence]]:
    """Hold out whole subjects (of every source) until about `fraction` of the sequences is held out.

    Sources with a single subject stay in training: holding out their only person would
    remove the source from training entirely.
    """
    by_source: dict[str, list[str]] = {}
    for s in sequences:
        by_source.setdefault(s.source, [])
        if s.subject not in by_source[s.source]:
            by_source[s.source].append(s.subject)
    rng = random.Random(seed)
    held: set[tuple[str, str]] = set()
    for source, subjects in by_source.items():
        if len(subjects) < MIN_SUBJECTS_TO_VALIDATE:
            continue
        subjects = sorted(subjects)
        rng.shuffle(subjects)
        n = max(1, round(fraction * len(subjects)))
        held.update((source, subj) for subj in subjects[:n])
    train = [s for s in sequences if (s.source, s.subject) not in held]
    val = [s for s in sequences if (s.source, s.subject) in held]
    return train, val


def predict_windows(
    model: torch.nn.Module,
    windows: np.ndarray,
    batch: int = 512,
    gate: tuple[FeatureSpec, tuple[str, ...], tuple[str, ...]] | None = None,
) -> np.ndarray:
    """Softmax probabilities (N, classes); `gate` (spec, labels, whole-body classes) applies
    `classifier.gate_whole_body` as live inference does."""
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(windows), batch):
            out.append(torch.softmax(model(torch.from_numpy(windows[i : i + batch])), dim=1).numpy())
    if out:
        probs = np.concatenate(out)
        return gate_whole_body(probs, windows, *gate) if gate else probs
    net: Any = getattr(model, "net", model)  # a bare network of ARCHITECTURES, or the ActionModel around one
    return np.zeros((0, net.head.out_features), np.float32)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...]) -> float:
    return macro_f1_of(per_class(y_true, y_pred, labels))


def false_action_rate(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...]) -> float | None:
    """The share of OTHER windows given one of the action classes (None without OTHER windows)."""
    if OTHER not in labels:
        return None
    other = y_true == labels.index(OTHER)
    return float(np.mean(y_pred[other] != labels.index(OTHER))) if other.any() else None


def choose_threshold(
    probs: np.ndarray, y_true: np.ndarray, labels: tuple[str, ...], max_false_action: float = 1.0
) -> float:
    """The rejection threshold with the best macro-F1 on validation windows among those whose
    false-action rate is at most `max_false_action`; when none is, the one with the lowest rate.
    Ties go to the lower threshold."""
    if len(y_true) == 0 or OTHER not in labels:
        return 0.0
    best: tuple[bool, float, float] | None = None  # (allowed, -false action or f1, ...) ranking key
    best_t = 0.0
    for t in np.arange(0.0, 0.96, 0.05):
        pred = decide(probs, labels, float(t))
        f1 = macro_f1(y_true, pred, labels)
        rate = false_action_rate(y_true, pred, labels)
        allowed = rate is None or rate <= max_false_action + 1e-9
        key = (allowed, f1 if allowed else -(rate or 0.0), f1)
        if best is None or key > best:
            best, best_t = key, float(t)
    return round(best_t, 2)


@dataclass
class TrainResult:
    model: torch.nn.Module  # the Lightning ActionModel
    threshold: float
    best_epoch: int
    epochs_run: int
    val_windows: int
    train_windows: int
    seconds: float
    val_macro_f1: float | None = None
    val_loss: float | None = None  # the kept weights' loss on the validation windows


def fit(
    train_seqs: list[PoseSequence],
    val_seqs: list[PoseSequence],
    config: TrainConfig,
    run_dir: str | Path = "runs",
    fixed_epochs: int | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train one model; with validation data, stop early and choose the rejection threshold on it.

    `fixed_epochs` trains that many epochs without validation (the final all-data model);
    `callbacks` are Lightning callbacks of the caller's (the Teach page's progress).
    """
    import pytorch_lightning as pl

    from .early_stopping import BestSettledEpoch

    start = time.perf_counter()
    torch.set_num_threads(config.threads)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    train_ds = WindowDataset(train_seqs, config, config.augmenter(), seed=config.seed)
    if len(train_ds) == 0:
        raise DatasetError("no usable training windows: the sequences are too short or lack hips; give more data")
    val_ds = WindowDataset(val_seqs, config, None) if val_seqs else None
    has_val = val_ds is not None and len(val_ds) > 0 and fixed_epochs is None
    # Classes are balanced by the sampler, so the loss needs no class weights.
    from .classifier import ActionModel

    model = ActionModel(
        config.spec,
        len(config.labels),
        config.hidden_size,
        config.num_layers,
        config.dropout,
        config.learning_rate,
        arch=config.arch,
        weight_decay=config.weight_decay,
    )
    if not has_val:
        # The scheduler watches val_loss; without validation data it watches the training loss.
        model.monitor_key = "train_loss"
    generator = torch.Generator().manual_seed(config.seed)
    sampler = WeightedRandomSampler(
        train_ds.balanced_weights().tolist(), config.epoch_windows, replacement=True, generator=generator
    )
    train_loader = DataLoader(train_ds, batch_size=config.batch_size, sampler=sampler)
    best = BestSettledEpoch(config.min_epochs, config.patience)
    trainer_callbacks: list[pl.Callback] = [best] if has_val else []
    if config.ema_decay > 0:
        from pytorch_lightning.callbacks import EMAWeightAveraging

        # After `best`: Lightning calls callbacks in order, so `best` copies the averaged weights
        # at the end of validation, before the average swaps the current weights back in.
        trainer_callbacks.append(EMAWeightAveraging(decay=config.ema_decay))
    trainer_callbacks.extend(callbacks)
    # Its start-up notes (accelerators found, a cloud-logger tip) are INFO on this logger.
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    trainer = pl.Trainer(
        max_epochs=fixed_epochs or config.max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=trainer_callbacks,
        enable_checkpointing=False,
        enable_progress_bar=config.progress,
        enable_model_summary=False,
        default_root_dir=str(run_dir),
        deterministic=True,
        num_sanity_val_steps=0,
    )
    val_loader = DataLoader(val_ds, batch_size=256) if has_val and val_ds is not None else None
    with warnings.catch_warnings():
        # Lightning's notes on what this run means to do (no validation when refitting on all
        # data, CPU only) and on its own dependencies say nothing to a user of `train`.
        for message in (".*validation_step.*val_dataloader.*", ".*LeafSpec.*", ".*does not have many workers.*"):
            warnings.filterwarnings("ignore", message)
        trainer.fit(model, train_loader, val_loader)
    best_epoch = trainer.current_epoch
    threshold, val_f1, val_loss = 0.0, None, None
    if has_val and val_ds is not None and val_ds._fixed is not None and best.state is not None:
        model.load_state_dict(best.state)
        best_epoch = best.epoch
        probs = predict_windows(model, val_ds._fixed, gate=config.gate())
        threshold = choose_threshold(probs, val_ds.targets, config.labels, config.max_false_action)
        val_f1 = macro_f1(val_ds.targets, decide(probs, config.labels, threshold), config.labels)
        val_loss = best.loss
    return TrainResult(
        model.eval(),
        threshold,
        best_epoch,
        trainer.current_epoch,
        len(val_ds or []),
        len(train_ds),
        time.perf_counter() - start,
        val_f1,
        val_loss,
    )


def describe(sequences: list[PoseSequence], labels: tuple[str, ...] = CLASSES) -> str:
    """One line: subjects per source and sequences per class."""
    subjects = Counter(source for source, _ in {(s.source, s.subject) for s in sequences})
    counts = Counter(s.label for s in sequences)
    return (
        ", ".join(f"{src}: {n} subjects" for src, n in sorted(subjects.items()))
        + " | "
        + ", ".join(f"{name}={counts[name]}" for name in labels)
    )


def split_warnings(train: list[PoseSequence], val: list[PoseSequence], threshold_given: bool) -> list[str]:
    """What a training split cannot do that its user would assume it does, one line each."""
    notes = []
    trained = {s.label for s in train}
    for label in sorted({s.label for s in val} - trained, key=str):
        who = sorted({s.subject for s in val if s.label == label})
        notes.append(
            f"class {label} has no training sequences: all its subjects ({', '.join(who[:5])}) are validation "
            "ones; pick others with --val-subjects"
        )
    if threshold_given:
        return notes
    if not val:
        notes.append(
            f"no validation subjects (a data set needs {MIN_SUBJECTS_TO_VALIDATE} subjects to lend some): the "
            "rejection threshold stays 0.0, "
            "so no window is ever called OTHER for being unsure; pass --threshold (the shipped model stores 0.7)"
        )
    elif not any(s.label == OTHER for s in val):
        notes.append(
            "the validation subjects have no OTHER sequences, so false actions cannot be measured and the rejection "
            "threshold is chosen blind; pass --threshold (the shipped model stores 0.7)"
        )
    return notes


def eval_windows(
    sequences: list[PoseSequence],
    spec: FeatureSpec,
    stride_s: float = 0.16,
) -> tuple[np.ndarray, list[int]]:
    """Fixed windows of each sequence (no cap) and, per window, the index of its sequence."""
    feats, owner = [], []
    stride = max(1, round(stride_s * spec.rate_hz))
    for i, seq in enumerate(sequences):
        x, _ = sequence_windows(seq, spec, stride)
        feats.append(x)
        owner += [i] * len(x)
    if not feats:
        return np.zeros((0, spec.window, spec.dim), np.float32), []
    return np.concatenate(feats), owner
