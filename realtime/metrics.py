"""Classification scores for evaluation: per class, per window, per clip."""

from __future__ import annotations

from collections import Counter

import numpy as np


def per_class(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...]) -> dict[str, dict]:
    """Precision, recall, F1 and support of every class that occurs in truth or prediction."""
    out = {}
    for c, name in enumerate(labels):
        tp = int(np.sum((y_pred == c) & (y_true == c)))
        fp = int(np.sum((y_pred == c) & (y_true != c)))
        fn = int(np.sum((y_pred != c) & (y_true == c)))
        if tp + fp + fn == 0:
            continue
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn)
        out[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": tp + fn,
        }
    return out


def macro_f1_of(table: dict[str, dict]) -> float:
    """Mean F1 over the classes present in the truth. A window wrongly given an absent class
    still counts, as a miss of its true class."""
    f1s = [v["f1"] for v in table.values() if v["support"] > 0]
    return round(float(np.mean(f1s)), 4) if f1s else 0.0


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def clip_votes(y_pred: np.ndarray, owner: np.ndarray) -> dict[int, int]:
    """Majority label of each clip's windows (ties go to the label seen first)."""
    votes: dict[int, Counter] = {}
    for p, o in zip(y_pred.tolist(), owner.tolist(), strict=True):
        votes.setdefault(o, Counter())[p] += 1
    return {o: c.most_common(1)[0][0] for o, c in votes.items()}


def save_confusion_png(matrix: np.ndarray, labels: tuple[str, ...], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    used = [i for i in range(len(labels)) if matrix[i].sum() or matrix[:, i].sum()]
    m = matrix[np.ix_(used, used)]
    names = [labels[i] for i in used]
    fig, ax = plt.subplots(figsize=(1.2 * len(used) + 2, 1.1 * len(used) + 1.5))
    rates = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(used)):
        for j in range(len(used)):
            ax.text(
                j,
                i,
                str(m[i, j]),
                ha="center",
                va="center",
                color="white" if rates[i, j] > 0.5 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(used)), names, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(used)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
