"""The training flags shared by `train` and `evaluate`; their defaults are TrainConfig's own."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..augment import NAMES as AUGMENTATIONS
from ..classifier import ARCHITECTURES
from ..datasets import DEFAULT_POSE_CACHE, LABELS_FILE, LabelTable, labels_from
from ..errors import ConfigError
from ..training import TrainConfig


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--arch", default=d.arch, choices=tuple(ARCHITECTURES), help="network (default %(default)s)")
    p.add_argument(
        "--epochs",
        type=int,
        default=d.max_epochs,
        help="most epochs; early stopping may end sooner (default %(default)s)",
    )
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience (default %(default)s)")
    p.add_argument(
        "--min-epochs",
        type=int,
        default=None,
        help=f"the kept epoch is never earlier than this (default {d.min_epochs}, or --epochs if fewer)",
    )
    p.add_argument(
        "--hidden",
        type=int,
        default=d.hidden_size,
        help="LSTM hidden units / TCN or GCN channels (default %(default)s)",
    )
    p.add_argument(
        "--layers", type=int, default=d.num_layers, help="LSTM layers / TCN or GCN blocks (default %(default)s)"
    )
    p.add_argument("--dropout", type=float, default=d.dropout, help="(default %(default)s)")
    p.add_argument("--lr", type=float, default=d.learning_rate, help="learning rate (default %(default)s)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW's (default %(default)s)")
    p.add_argument("--batch", type=int, default=d.batch_size, help="(default %(default)s)")
    p.add_argument(
        "--bones",
        action=argparse.BooleanOptionalAction,
        default=d.spec.bones,
        help="bone vectors (and their velocities) as extra inputs (default %(default)s)",
    )
    p.add_argument(
        "--reaches",
        action=argparse.BooleanOptionalAction,
        default=d.spec.reaches,
        help="vectors wrist to wrist, nose to each wrist, ankle to ankle (and their velocities) as extra "
        "inputs (default %(default)s)",
    )
    p.add_argument(
        "--window",
        type=int,
        default=d.spec.window,
        help="samples per classifier window (default %(default)s; with --rate-hz, the window's length in time)",
    )
    p.add_argument(
        "--rate-hz",
        type=float,
        default=d.spec.rate_hz,
        help="samples a second that poses are resampled to (default %(default)s)",
    )
    p.add_argument(
        "--labels",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"your own classes: a copy of {LABELS_FILE.name} (the packaged one is {LABELS_FILE}) mapping each "
        "data format's action names to your class names",
    )
    p.add_argument(
        "--max-windows",
        type=int,
        default=d.max_windows_per_sequence,
        help="most training windows per sequence (default %(default)s)",
    )
    p.add_argument(
        "--epoch-windows",
        type=int,
        default=d.epoch_windows,
        help="training windows drawn per epoch (default %(default)s)",
    )
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    p.add_argument(
        "--augment-off",
        nargs="+",
        default=list(d.augment_off),
        choices=AUGMENTATIONS,
        metavar="NAME",
        help=f"leave these augmentations out ({', '.join(AUGMENTATIONS)})",
    )
    p.add_argument(
        "--balance-sources",
        action=argparse.BooleanOptionalAction,
        default=d.balance_sources,
        help="give each data set an equal share of a class's training windows (default %(default)s)",
    )
    p.add_argument(
        "--other-weight",
        type=float,
        default=d.other_weight,
        help="OTHER's share of training windows against each action's (default %(default)s)",
    )
    p.add_argument(
        "--max-false-action",
        type=float,
        default=d.max_false_action,
        help="the rejection threshold keeps the validation subjects' false-action rate on OTHER "
        "at most this (default %(default)s)",
    )
    p.add_argument(
        "--ema-decay",
        type=float,
        default=d.ema_decay,
        help="validate and keep an exponential moving average of the weights, this decay per step "
        "(0 = off; default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="(default %(default)s)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (default %(default)s)")
    p.add_argument(
        "--cache", type=Path, default=DEFAULT_POSE_CACHE, help="pose cache for video data (default %(default)s)"
    )
    p.add_argument("--runs", type=Path, default=Path("runs"), help="Lightning's working folder (default %(default)s)")


def label_table(args: argparse.Namespace) -> LabelTable:
    """The classes and action-name mapping the flags ask for (`--labels`, else the packaged ones)."""
    return labels_from(args.labels)


def train_config_from(args: argparse.Namespace, progress: bool = False) -> TrainConfig:
    d = TrainConfig()
    # The default floor gives way to a short --epochs; a floor the user gives does not.
    min_epochs = min(d.min_epochs, args.epochs) if args.min_epochs is None else args.min_epochs
    if not 1 <= min_epochs <= args.epochs:
        raise ConfigError(f"--min-epochs {min_epochs}: give 1 to --epochs ({args.epochs})")
    if not 0 <= args.ema_decay < 1:
        raise ConfigError(f"--ema-decay {args.ema_decay}: give 0 (off) or a decay below 1, such as 0.99")
    if args.other_weight <= 0:
        raise ConfigError(f"--other-weight {args.other_weight}: give a positive number (1 = an action's share)")
    if not 8 <= args.window <= 256:
        raise ConfigError(f"--window {args.window}: give 8 to 256 samples (the shipped model takes 32)")
    if not 5 <= args.rate_hz <= 60:
        raise ConfigError(f"--rate-hz {args.rate_hz}: give 5 to 60 samples a second (the shipped model takes 25)")
    return TrainConfig(
        arch=args.arch,
        hidden_size=args.hidden,
        num_layers=args.layers,
        dropout=args.dropout,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        batch_size=args.batch,
        max_epochs=args.epochs,
        patience=args.patience,
        min_epochs=min_epochs,
        max_windows_per_sequence=args.max_windows,
        epoch_windows=args.epoch_windows,
        augment=not args.no_augment,
        augment_off=tuple(args.augment_off),
        max_false_action=args.max_false_action,
        balance_sources=args.balance_sources,
        ema_decay=args.ema_decay,
        other_weight=args.other_weight,
        seed=args.seed,
        threads=args.threads,
        progress=progress,
        spec=replace(d.spec, bones=args.bones, reaches=args.reaches, window=args.window, rate_hz=args.rate_hz),
        labels=label_table(args).classes,
        whole_body=label_table(args).whole_body,
    )
