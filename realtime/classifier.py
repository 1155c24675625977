"""The action classifier (the article's LSTM, a temporal conv net or a graph net), its checkpoint, the live wrapper.

A checkpoint is a torch file holding everything needed to rebuild the model and to
feed it exactly as in training: labels, feature spec, layer sizes and the rejection
threshold. Inference refuses a file whose contents do not fit.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .datasets.labels import CLASS_NAME, CLASSES, OTHER, WHOLE_BODY
from .errors import WeightsError
from .features import BONES, FeatureSpec, legs_seen
from .types import Prediction

if TYPE_CHECKING:
    from pytorch_lightning.utilities.types import OptimizerLRSchedulerConfig

__all__ = [
    "ARCHITECTURES",
    "CLASSES",
    "OTHER",
    "ActionClassifier",
    "ActionGCNNet",
    "ActionLSTMNet",
    "ActionTCNNet",
    "Checkpoint",
    "build_net",
    "decide",
    "for_live_use",
    "load_checkpoint",
    "save_checkpoint",
]
CHECKPOINT_FORMAT = "realtime-action/2"
# Format 1 held LSTMs only and had no `arch` field; such files still load.
OLD_FORMATS = ("realtime-action-lstm/1",)
WEIGHTS_HINT = (
    "use a checkpoint written by `python -m realtime train` (see README), or the shipped weights/action_classifier.pt"
)


class ActionLSTMNet(nn.Module):
    """The article's network: an LSTM over a window of pose features, a linear layer on the last hidden state."""

    arch = "lstm"

    def __init__(
        self, spec: FeatureSpec, num_classes: int, hidden_size: int = 50, num_layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.dropout_p = hidden_size, num_layers, dropout
        self.lstm = nn.LSTM(
            spec.dim, hidden_size, num_layers=num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(x)
        return self.head(self.dropout(hidden[-1]))


class ActionTCNNet(nn.Module):
    """A temporal convolution net over the window (as in skeleton action recognition's TCN baselines).

    A 1x1 convolution embeds each sample's features; `num_layers` residual blocks of
    dilated 3-wide convolutions (dilation 1, 2, 4, ...) see 31 samples with 4 blocks, the
    whole 32-sample window; the mean and the max over time feed the linear head.
    """

    arch = "tcn"

    def __init__(
        self, spec: FeatureSpec, num_classes: int, hidden_size: int = 64, num_layers: int = 4, dropout: float = 0.3
    ) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.dropout_p = hidden_size, num_layers, dropout
        self.embed = nn.Sequential(nn.Conv1d(spec.dim, hidden_size, 1), nn.BatchNorm1d(hidden_size), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(hidden_size, hidden_size, 3, padding=2**i, dilation=2**i),
                nn.BatchNorm1d(hidden_size),
                nn.ReLU(),
                nn.Dropout(dropout),
            )
            for i in range(num_layers)
        )
        self.dropout: nn.Module = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.transpose(1, 2))  # (B, W, D) -> (B, hidden, W)
        for block in self.blocks:
            h = h + block(h)
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return self.head(self.dropout(pooled))

    def for_inference(self) -> ActionTCNNet:
        """A copy for prediction only: each batch norm folded into its convolution, dropout gone.

        The same function (probabilities equal to float rounding); the five batch norms and
        dropouts it removes cost about 15% of a live batch of 8 windows on one CPU thread.
        """
        return _folded_copy(self)


FoldableNet = TypeVar("FoldableNet", "ActionTCNNet", "ActionGCNNet")


def _folded_copy(net: FoldableNet) -> FoldableNet:
    """A copy of a net made of `embed` and `blocks` (each a convolution, its batch norm, ...) and a
    final `dropout`, in eval mode, with every batch norm folded into its convolution and no dropout."""
    fused = copy.deepcopy(net).eval()
    fused.embed = _fold_norm(fused.embed)
    fused.blocks = nn.ModuleList(_fold_norm(block) for block in fused.blocks)
    fused.dropout = nn.Identity()
    return fused


def _fold_norm(layers: nn.Module) -> nn.Sequential:
    """(convolution, batch norm, rest...) in eval mode → (the two as one convolution, rest without dropout)."""
    conv, norm, *rest = layers.children()
    assert isinstance(conv, nn.Conv1d | nn.Conv2d) and isinstance(norm, nn.BatchNorm1d | nn.BatchNorm2d)
    kept = [layer for layer in rest if not isinstance(layer, nn.Dropout)]
    return nn.Sequential(fuse_conv_bn_eval(conv, norm), *kept)


class ActionGCNNet(nn.Module):
    """A small spatial-temporal graph convolution net over the body joints (as in ST-GCN).

    Each joint is a node holding its position, velocity and visibility; the skeleton's bones
    are the edges, normalised, plus a learnt correction (as adaptive GCNs add) so that joints
    no bone joins, such as the two wrists, can still exchange. The window's other inputs (the
    body centre, bones, reaches) are added to every node after the embedding. Each block mixes
    joints along the graph, then time with a dilated convolution, with a residual.

    13 nodes make every convolution 13 times wider than the TCN's, over the 1 ms budget at full
    time resolution (docs/experiments.md), so the embedding takes `TIME_STRIDE` samples at once.
    """

    arch = "gcn"
    TIME_STRIDE = 4
    node_columns: torch.Tensor
    other_columns: torch.Tensor
    adjacency: torch.Tensor

    def __init__(
        self, spec: FeatureSpec, num_classes: int, hidden_size: int = 32, num_layers: int = 2, dropout: float = 0.3
    ) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.dropout_p = hidden_size, num_layers, dropout
        per_joint, other = spec.joint_columns()
        self.nodes, self.node_inputs = per_joint.shape
        # Derived from the feature spec, which the checkpoint stores: not saved with the weights.
        self.register_buffer("node_columns", torch.from_numpy(per_joint.ravel()), persistent=False)
        self.register_buffer("other_columns", torch.from_numpy(other), persistent=False)
        self.register_buffer("adjacency", _skeleton_adjacency(spec.joints), persistent=False)
        self.learnt_adjacency = nn.Parameter(torch.zeros(self.nodes, self.nodes))
        stride = self.TIME_STRIDE
        self.embed = nn.Sequential(
            nn.Conv2d(self.node_inputs, hidden_size, (stride, 1), stride=(stride, 1)), nn.BatchNorm2d(hidden_size)
        )
        self.embed_other = nn.Conv1d(len(other), hidden_size, stride, stride=stride)
        # Each block: [graph: 1x1 conv, norm, relu] then [time: dilated conv, norm, dropout].
        self.blocks = nn.ModuleList()
        for i in range(num_layers):
            self.blocks.append(
                nn.Sequential(nn.Conv2d(hidden_size, hidden_size, 1), nn.BatchNorm2d(hidden_size), nn.ReLU())
            )
            self.blocks.append(
                nn.Sequential(
                    nn.Conv2d(hidden_size, hidden_size, (3, 1), padding=(2**i, 0), dilation=(2**i, 1)),
                    nn.BatchNorm2d(hidden_size),
                    nn.Dropout(dropout),
                )
            )
        self.dropout: nn.Module = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, window, _ = x.shape
        nodes = x.index_select(2, self.node_columns).reshape(batch, window, self.nodes, self.node_inputs)
        other = x.index_select(2, self.other_columns).transpose(1, 2)  # (B, other, W)
        h = self.embed(nodes.permute(0, 3, 1, 2)) + self.embed_other(other).unsqueeze(3)  # (B, C, W/stride, V)
        h = torch.relu(h)
        mix = self.adjacency + self.learnt_adjacency
        for graph, time in zip(self.blocks[0::2], self.blocks[1::2], strict=True):
            # One matrix product over all (batch, channel, step) rows: 29 µs a block here, against 46 µs
            # for the batched product torch.matmul picks for the 4-d tensor.
            mixed = torch.mm(h.reshape(-1, self.nodes), mix).view(h.shape)
            h = torch.relu(h + time(graph(mixed)))
        per_step = h.mean(dim=3)
        pooled = torch.cat([per_step.mean(dim=2), per_step.amax(dim=2)], dim=1)
        return self.head(self.dropout(pooled))

    def for_inference(self) -> ActionGCNNet:
        """A copy for prediction only: batch norms folded into their convolutions, dropout gone."""
        return _folded_copy(self)


def _skeleton_adjacency(joints: tuple[int, ...]) -> torch.Tensor:
    """The bones among `joints` plus self-loops, symmetrically normalised (D^-1/2 (A + I) D^-1/2)."""
    index = {joint: i for i, joint in enumerate(joints)}
    adjacency = torch.eye(len(joints))
    for a, b in BONES:
        if a in index and b in index:
            adjacency[index[a], index[b]] = adjacency[index[b], index[a]] = 1.0
    scale = adjacency.sum(dim=1).rsqrt()
    return scale[:, None] * adjacency * scale[None, :]


ARCHITECTURES: dict[str, type[nn.Module]] = {"lstm": ActionLSTMNet, "tcn": ActionTCNNet, "gcn": ActionGCNNet}


def build_net(
    arch: str, spec: FeatureSpec, num_classes: int, hidden_size: int, num_layers: int, dropout: float = 0.0
) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise WeightsError(f"unknown classifier architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](spec, num_classes, hidden_size, num_layers, dropout)


def for_live_use(net: nn.Module) -> nn.Module:
    """The network as live prediction runs it: batch norms folded away where the network has them."""
    return net.for_inference() if isinstance(net, ActionTCNNet | ActionGCNNet) else net


def __getattr__(name: str) -> Any:
    # The LightningModule is built on first use: importing pytorch_lightning costs about
    # 9 s here, which live inference (plain torch) should not pay at every start.
    # ActionLSTM is its older name, still used by tests and scripts that build LSTM checkpoints.
    if name in ("ActionModel", "ActionLSTM"):
        cls = _define_lightning_module()
        globals()["ActionModel"] = globals()["ActionLSTM"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _define_lightning_module() -> type[Any]:
    import pytorch_lightning as pl
    import torchmetrics

    class ActionModel(pl.LightningModule):
        """Training wrapper (PyTorch Lightning) around one of ARCHITECTURES' networks, as in the article."""

        def __init__(
            self,
            spec: FeatureSpec,
            num_classes: int,
            hidden_size: int = 50,
            num_layers: int = 1,
            dropout: float = 0.0,
            learning_rate: float = 1e-3,
            class_weights: list[float] | None = None,
            arch: str = "lstm",
            weight_decay: float = 0.0,
        ) -> None:
            super().__init__()
            self.save_hyperparameters(ignore=["spec"])
            self.net = build_net(arch, spec, num_classes, hidden_size, num_layers, dropout)
            weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
            self.loss_fn = nn.CrossEntropyLoss(weight=weight)
            self.train_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
            self.val_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
            self.val_f1 = torchmetrics.F1Score(task="multiclass", num_classes=num_classes, average="macro")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            x, y = batch
            logits = self(x)
            loss = self.loss_fn(logits, y)
            self.train_acc(logits, y)
            self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
            self.log("train_acc", self.train_acc, prog_bar=True, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
            x, y = batch
            logits = self(x)
            loss = self.loss_fn(logits, y)
            self.val_acc(logits, y)
            self.val_f1(logits, y)
            self.log("val_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
            self.log("val_acc", self.val_acc, prog_bar=True, on_step=False, on_epoch=True)
            self.log("val_f1", self.val_f1, prog_bar=True, on_step=False, on_epoch=True)

        def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
            optimizer = torch.optim.AdamW(
                self.parameters(), lr=self.hparams["learning_rate"], weight_decay=self.hparams["weight_decay"]
            )
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=3)
            # A final fit on all data has no validation set; then the training loss steers the rate.
            monitor = getattr(self, "monitor_key", "val_loss")
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": monitor}}

    ActionModel.__module__ = __name__
    ActionModel.__qualname__ = "ActionModel"
    return ActionModel


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
    arch: str = "lstm"
    whole_body: tuple[str, ...] = ()  # classes never given to a window that does not show the legs

    def build_model(self) -> nn.Module:
        model = build_net(self.arch, self.spec, len(self.labels), self.hidden_size, self.num_layers, self.dropout)
        model.load_state_dict(self.state_dict)
        return model


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    labels: tuple[str, ...],
    spec: FeatureSpec,
    threshold: float = 0.0,
    info: dict | None = None,
    whole_body: tuple[str, ...] = (),
) -> None:
    """Write a checkpoint from a trained ActionModel (Lightning) or a bare network of ARCHITECTURES."""
    net: Any = getattr(model, "net", model)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "arch": net.arch,
            "labels": list(labels),
            "feature_spec": spec.to_dict(),
            "hidden_size": int(net.hidden_size),
            "num_layers": int(net.num_layers),
            "dropout": float(net.dropout_p),
            "threshold": float(threshold),
            "whole_body": [c for c in whole_body if c in labels],
            "info": info or {},
            "state_dict": state,
        },
        str(path),
    )


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a weights file; every problem becomes a one-line WeightsError."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found — {WEIGHTS_HINT}")
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for a damaged file
        # torch's own exception names (KeyError, UnpicklingError) mean nothing to a user: say what it is.
        raise WeightsError(f"weights file {path} is not a PyTorch checkpoint or is damaged — {WEIGHTS_HINT}") from None
    if not isinstance(raw, dict) or raw.get("format") not in (CHECKPOINT_FORMAT, *OLD_FORMATS):
        raise WeightsError(
            f"weights file {path} is not a realtime action checkpoint "
            f"(expected format {CHECKPOINT_FORMAT}) — {WEIGHTS_HINT}"
        )
    try:
        spec = FeatureSpec.from_dict(raw["feature_spec"])
        ckpt = Checkpoint(
            tuple(raw["labels"]),
            spec,
            int(raw["hidden_size"]),
            int(raw["num_layers"]),
            float(raw["dropout"]),
            raw["state_dict"],
            float(raw.get("threshold", 0.0)),
            raw.get("info"),
            str(raw.get("arch", "lstm")),
            # Files older than the rule were trained with hips required; the packaged classes keep their meaning.
            tuple(str(c) for c in raw.get("whole_body", [c for c in WHOLE_BODY if c in raw["labels"]])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"weights file {path} lacks or garbles field {exc} — {WEIGHTS_HINT}") from None
    if ckpt.arch not in ARCHITECTURES:
        raise WeightsError(
            f"weights file {path} holds a {ckpt.arch!r} network; this version knows "
            f"{', '.join(ARCHITECTURES)} — {WEIGHTS_HINT}"
        )
    # Classes of the user's own (`train --labels`) are welcome; OTHER must be one, since a window
    # below the threshold is called so, and names must be fit for event payloads.
    bad = [label for label in ckpt.labels if not isinstance(label, str) or not CLASS_NAME.match(label)]
    if bad or OTHER not in ckpt.labels or len(set(ckpt.labels)) != len(ckpt.labels):
        raise WeightsError(
            f"weights file {path} has labels {list(ckpt.labels)}; a checkpoint needs distinct class names "
            f"(a letter, then letters, digits or _) including {OTHER} — {WEIGHTS_HINT}"
        )
    _check_shapes(path, ckpt)
    return ckpt


def _check_shapes(path: Path, ckpt: Checkpoint) -> None:
    expected = build_net(ckpt.arch, ckpt.spec, len(ckpt.labels), ckpt.hidden_size, ckpt.num_layers).state_dict()
    got = ckpt.state_dict
    unexpected = sorted(set(got) - set(expected))
    if unexpected:
        raise WeightsError(
            f"weights file {path} has tensors the model does not: {', '.join(unexpected[:3])} — {WEIGHTS_HINT}"
        )
    for name, tensor in expected.items():
        if name not in got:
            raise WeightsError(f"weights file {path} lacks tensor {name} — {WEIGHTS_HINT}")
        if tuple(got[name].shape) != tuple(tensor.shape):
            raise WeightsError(
                f"weights file {path}: tensor {name} has shape {tuple(got[name].shape)}, "
                f"the model needs {tuple(tensor.shape)} "
                f"(input {ckpt.spec.dim}, hidden {ckpt.hidden_size}, {len(ckpt.labels)} labels): the file was "
                f"edited or written by another version — {WEIGHTS_HINT}"
            )


class ActionClassifier:
    """Batched, gradient-free prediction for the windows of all people in a frame."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        threshold: float | None = None,
        torch_threads: int | None = 1,
        name: str | None = None,
    ) -> None:
        # A few 32-step windows are too small to split across cores: a second torch thread only
        # spins on the core a pose thread needs (docs/speed.md). Process-wide; None leaves it alone.
        if torch_threads is not None and torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
        self.checkpoint = checkpoint
        self.labels = checkpoint.labels
        self.spec = checkpoint.spec
        self.threshold = checkpoint.threshold if threshold is None else threshold
        self.name = name  # a registry model's name, carried by its verdicts (model_registry.py)
        model = checkpoint.build_model().eval()
        self.model = for_live_use(model)

    @classmethod
    def load(
        cls, path: str | Path, threshold: float | None = None, torch_threads: int | None = 1, name: str | None = None
    ) -> ActionClassifier:
        return cls(load_checkpoint(path), threshold, torch_threads, name)

    def predict(self, windows: np.ndarray) -> list[Prediction]:
        """windows (B, W, dim) → one Prediction each; below the threshold the label is OTHER."""
        return [self.verdict(p) for p in self.predict_proba(windows)]

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        """windows (B, W, dim) → class probabilities (B, len(labels))."""
        if len(windows) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if windows.shape[1:] != (self.spec.window, self.spec.dim):
            raise ValueError(
                f"windows of shape {windows.shape[1:]} given; the model takes {(self.spec.window, self.spec.dim)}"
            )
        with torch.inference_mode():
            probs = torch.softmax(self.model(torch.from_numpy(np.ascontiguousarray(windows))), dim=1).numpy()
        return gate_whole_body(probs, windows, self.spec, self.labels, self.checkpoint.whole_body)

    def verdict(self, probs: np.ndarray) -> Prediction:
        """The label for one probability vector, with low-confidence ones sent to OTHER.

        The score is always the label's own probability: a window rejected to OTHER carries
        OTHER's, not that of the class it was too unsure of.
        """
        index = int(decide(probs[None], self.labels, self.threshold)[0])
        return Prediction(
            self.labels[index],
            float(probs[index]),
            {name: float(p) for name, p in zip(self.labels, probs, strict=True)},
            self.name,
        )


def gate_whole_body(
    probs: np.ndarray, windows: np.ndarray, spec: FeatureSpec, labels: tuple[str, ...], whole_body: tuple[str, ...]
) -> np.ndarray:
    """Probabilities (N, C) with the whole-body classes' share moved to OTHER where a window does not
    show the legs: jumping needs legs in view, and a person seen from the waist up is not jumping.

    The one rule, shared by live inference, validation and evaluation."""
    gated = [labels.index(c) for c in whole_body if c in labels]
    if not gated or OTHER not in labels or len(probs) == 0:
        return probs
    hidden = ~legs_seen(windows, spec)
    if not hidden.any():
        return probs
    out = probs.copy()
    out[hidden, labels.index(OTHER)] += out[hidden][:, gated].sum(axis=1)
    out[np.ix_(np.flatnonzero(hidden), np.array(gated))] = 0.0
    return out


def decide(probs: np.ndarray, labels: tuple[str, ...], threshold: float) -> np.ndarray:
    """Class indices for probabilities (N, C): the most likely class, or OTHER below the threshold.

    The one rejection rule, shared by live inference and evaluation.
    """
    pred = probs.argmax(axis=1)
    if OTHER in labels and threshold > 0:
        pred = np.where(probs.max(axis=1) < threshold, labels.index(OTHER), pred)
    return pred
