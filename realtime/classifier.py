"""The action classifier: the article's LSTM, its checkpoint format, and the live wrapper.

A checkpoint is a torch file holding everything needed to rebuild the model and to
feed it exactly as in training: labels, feature spec, layer sizes and the rejection
threshold. Inference refuses a file whose contents do not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from .errors import WeightsError
from .features import FeatureSpec
from .types import Prediction

CLASSES: tuple[str, ...] = (
    "JUMPING", "JUMPING_JACKS", "BOXING", "WAVING_2HANDS", "WAVING_1HAND", "CLAPPING_HANDS", "OTHER",
)
OTHER = "OTHER"
CHECKPOINT_FORMAT = "realtime-action-lstm/1"
WEIGHTS_HINT = "train them with `python scripts/train.py` (see README) or pass --weights FILE"


class ActionLSTM(pl.LightningModule):
    """LSTM over a window of pose features; a linear layer on the last hidden state."""

    def __init__(self, input_size: int, num_classes: int, hidden_size: int = 50, num_layers: int = 1,
                 dropout: float = 0.0, learning_rate: float = 1e-3,
                 class_weights: list[float] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_classes)
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weight)
        self._metrics_ready = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(x)
        return self.head(self.dropout(hidden[-1]))

    # Training hooks (PyTorch Lightning). Metrics are built lazily so inference never
    # imports torchmetrics.
    def _ensure_metrics(self) -> None:
        if self._metrics_ready:
            return
        import torchmetrics

        n = self.hparams.num_classes
        self.train_acc = torchmetrics.Accuracy(task="multiclass", num_classes=n).to(self.device)
        self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=n).to(self.device)
        self.val_f1 = torchmetrics.F1Score(task="multiclass", num_classes=n, average="macro").to(self.device)
        self._metrics_ready = True

    def training_step(self, batch, batch_idx):
        self._ensure_metrics()
        x, y = batch
        logits = self(x)
        loss = self.loss_fn(logits, y)
        self.train_acc(logits, y)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        self.log("train_acc", self.train_acc, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self._ensure_metrics()
        x, y = batch
        logits = self(x)
        loss = self.loss_fn(logits, y)
        self.val_acc(logits, y)
        self.val_f1(logits, y)
        self.log("val_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        self.log("val_acc", self.val_acc, prog_bar=True, on_step=False, on_epoch=True)
        self.log("val_f1", self.val_f1, prog_bar=True, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=3)
        # A final fit on all data has no validation set; then the training loss steers the rate.
        monitor = getattr(self, "monitor_key", "val_loss")
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": monitor}}


@dataclass
class Checkpoint:
    """The contents of a weights file."""

    labels: tuple[str, ...]
    spec: FeatureSpec
    hidden_size: int
    num_layers: int
    dropout: float
    state_dict: dict
    threshold: float = 0.0
    info: dict | None = None

    def build_model(self) -> ActionLSTM:
        model = ActionLSTM(self.spec.dim, len(self.labels), self.hidden_size, self.num_layers, self.dropout)
        model.load_state_dict(self.state_dict, strict=False)
        return model


def save_checkpoint(path: str | Path, model: ActionLSTM, labels: tuple[str, ...], spec: FeatureSpec,
                    threshold: float = 0.0, info: dict | None = None) -> None:
    hp = model.hparams
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("loss_fn")}
    torch.save({
        "format": CHECKPOINT_FORMAT,
        "labels": list(labels),
        "feature_spec": spec.to_dict(),
        "hidden_size": int(hp.hidden_size),
        "num_layers": int(hp.num_layers),
        "dropout": float(hp.dropout),
        "threshold": float(threshold),
        "info": info or {},
        "state_dict": state,
    }, str(path))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a weights file; every problem becomes a one-line WeightsError."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found — {WEIGHTS_HINT}")
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise WeightsError(f"weights file {path} cannot be read ({type(exc).__name__}) — {WEIGHTS_HINT}") from None
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"weights file {path} is not a realtime action checkpoint "
                           f"(expected format {CHECKPOINT_FORMAT}) — {WEIGHTS_HINT}")
    try:
        spec = FeatureSpec.from_dict(raw["feature_spec"])
        ckpt = Checkpoint(tuple(raw["labels"]), spec, int(raw["hidden_size"]), int(raw["num_layers"]),
                          float(raw["dropout"]), raw["state_dict"], float(raw.get("threshold", 0.0)),
                          raw.get("info"))
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"weights file {path} lacks or garbles field {exc} — {WEIGHTS_HINT}") from None
    unknown = [label for label in ckpt.labels if label not in CLASSES]
    if unknown or len(set(ckpt.labels)) != len(ckpt.labels):
        raise WeightsError(f"weights file {path} has labels {list(ckpt.labels)}; allowed are {list(CLASSES)}, "
                           f"each once")
    _check_shapes(path, ckpt)
    return ckpt


def _check_shapes(path: Path, ckpt: Checkpoint) -> None:
    expected = ActionLSTM(ckpt.spec.dim, len(ckpt.labels), ckpt.hidden_size, ckpt.num_layers).state_dict()
    got = ckpt.state_dict
    for name, tensor in expected.items():
        if name.startswith("loss_fn"):
            continue
        if name not in got:
            raise WeightsError(f"weights file {path} lacks tensor {name} — {WEIGHTS_HINT}")
        if tuple(got[name].shape) != tuple(tensor.shape):
            raise WeightsError(f"weights file {path}: tensor {name} has shape {tuple(got[name].shape)}, "
                               f"the model needs {tuple(tensor.shape)} "
                               f"(input {ckpt.spec.dim}, hidden {ckpt.hidden_size}, {len(ckpt.labels)} labels)")


class ActionClassifier:
    """Batched, gradient-free prediction for the windows of all people in a frame."""

    def __init__(self, checkpoint: Checkpoint, threshold: float | None = None) -> None:
        self.checkpoint = checkpoint
        self.labels = checkpoint.labels
        self.spec = checkpoint.spec
        self.threshold = checkpoint.threshold if threshold is None else threshold
        self.model = checkpoint.build_model().eval()

    @classmethod
    def load(cls, path: str | Path, threshold: float | None = None) -> ActionClassifier:
        return cls(load_checkpoint(path), threshold)

    def predict(self, windows: np.ndarray) -> list[Prediction]:
        """windows (B, W, dim) → one Prediction each; below the threshold the label is OTHER."""
        if len(windows) == 0:
            return []
        if windows.shape[1:] != (self.spec.window, self.spec.dim):
            raise ValueError(f"windows of shape {windows.shape[1:]} given; the model takes "
                             f"{(self.spec.window, self.spec.dim)}")
        with torch.inference_mode():
            probs = torch.softmax(self.model(torch.from_numpy(np.ascontiguousarray(windows))), dim=1).numpy()
        return [self._verdict(p) for p in probs]

    def _verdict(self, probs: np.ndarray) -> Prediction:
        best = int(np.argmax(probs))
        score = float(probs[best])
        label = self.labels[best]
        if score < self.threshold and OTHER in self.labels:
            label = OTHER
        return Prediction(label, score, {name: float(p) for name, p in zip(self.labels, probs)})
