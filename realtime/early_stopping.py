"""Choosing the training epoch to keep by the validation loss, after a warm-up."""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning.callbacks import Callback


class BestSettledEpoch(Callback):
    """Keeps the weights of the epoch with the lowest validation loss from `min_epochs` on, and
    stops after `patience` epochs without a better one.

    Lightning's EarlyStopping and ModelCheckpoint would count the first epochs too, and they
    have no floor: EarlyStopping's stop request survives `Trainer(min_epochs=...)`.
    """

    def __init__(self, min_epochs: int, patience: int) -> None:
        self.min_epochs, self.patience = min_epochs, patience
        self.loss, self.epoch, self.waited = float("inf"), 0, 0
        self.state: dict[str, torch.Tensor] | None = None  # a copy of the best epoch's weights

    # At the end of the validation epoch, not of validation: the epoch's loss is already there,
    # and with weight averaging the weights validation saw are swapped out after this hook.
    def on_validation_epoch_end(self, trainer: Any, pl_module: torch.nn.Module) -> None:
        epoch = trainer.current_epoch + 1  # counted from 1, like TrainResult.best_epoch
        if trainer.sanity_checking or epoch < self.min_epochs:
            return
        loss = float(trainer.callback_metrics["val_loss"])
        if loss < self.loss:
            self.loss, self.epoch, self.waited = loss, epoch, 0
            self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            return
        self.waited += 1
        if self.waited >= self.patience:
            trainer.should_stop = True
