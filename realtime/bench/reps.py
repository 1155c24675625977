"""The repetition counter on real clips whose counts were taken by eye (reps_truth.yaml).

Each clip's labelled person is posed by MoveNet (cached, as `train` and `evaluate` cache it) and fed
to a `RepCounter` sample by sample, as the classify stage feeds it: every frame, and every second
frame (the pipeline's skip 1). Reported per clip: the true count, the count, the error; over all:
the share within one, the mean absolute error against the mean count, zero on the still clips, and
the counter's CPU time per person per frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from ..datasets import DEFAULT_POSE_CACHE
from ..datasets.labels import OTHER, LabelTable
from ..datasets.videos import Clip, load_clips
from ..errors import SourceError
from ..features import PoseSequence
from ..reps import DEFAULT_SETTINGS, RepCounter, RepSettings

TRUTH = Path(__file__).with_name("reps_truth.yaml")
WITHIN_ONE_TARGET = 0.8
MAE_SHARE_TARGET = 0.10
COST_TARGET_MS = 0.5


def load_truth(path: Path = TRUTH) -> tuple[dict[str, int], list[str]]:
    data = yaml.safe_load(path.read_text())
    return {str(k): int(v) for k, v in data["repeating"].items()}, [str(p) for p in data["still"]]


def posed(datasets: Path, rel: str, cache: Path | None, every: int = 1) -> PoseSequence:
    """The labelled person of one clip (`weizmann/...` or `wild_dev/...`), posed every `every` frames."""
    path = datasets / rel
    if not path.is_file():
        raise SourceError(f"benchmark clip {path} not found — set REALTIME_DATASETS to the datasets folder")
    root = datasets / Path(rel).parts[0]
    kind = "wild" if root.name == "wild_dev" else "videos"
    clip = Clip(path, path.parent.name, path.stem)
    # Labels do not matter here, but a folder that the label table leaves out would be skipped.
    table = LabelTable((OTHER,), {kind: {clip.action: OTHER}}, TRUTH)
    return load_clips(root, [clip], kind, cache, every, labels=table)[0]


def count(seq: PoseSequence, settings: RepSettings = DEFAULT_SETTINGS) -> tuple[int, float]:
    """Total repetitions of a sequence and the counter's mean milliseconds per sample."""
    counter = RepCounter(settings)
    start = time.process_time()
    for t, keypoints, scores in zip(seq.times, seq.keypoints, seq.scores, strict=True):
        counter.add(float(t), keypoints, scores)
    elapsed = time.process_time() - start
    return counter.count.total, elapsed * 1000 / max(1, len(seq))


# --quick: a few clips of each kind, to check the machinery.
QUICK_CLIPS = 3


def measure(
    datasets: Path,
    cache: Path | None = DEFAULT_POSE_CACHE,
    settings: RepSettings = DEFAULT_SETTINGS,
    quick: bool = False,
) -> dict:
    truth, still = load_truth()
    if quick:
        truth, still = dict(list(truth.items())[:QUICK_CLIPS]), still[:QUICK_CLIPS]
    rows: list[dict[str, Any]] = []
    samples, cost_ms = 0, 0.0
    for rel, true in truth.items():
        seq = posed(datasets, rel, cache)
        counted, ms = count(seq, settings)
        every_second, _ = count(seq.__class__(seq.keypoints[::2], seq.scores[::2], seq.times[::2]), settings)
        samples += len(seq)
        cost_ms += ms * len(seq)
        rows.append({"clip": rel, "true": true, "count": counted, "error": counted - true, "skip1": every_second})
    still_rows: list[dict[str, Any]] = []
    for rel in still:
        seq = posed(datasets, rel, cache)
        counted, ms = count(seq, settings)
        samples += len(seq)
        cost_ms += ms * len(seq)
        still_rows.append({"clip": rel, "count": counted})
    within = sum(abs(r["error"]) <= 1 for r in rows) / len(rows)
    mae = sum(abs(r["error"]) for r in rows) / len(rows)
    mean_count = sum(r["true"] for r in rows) / len(rows)
    per_frame = cost_ms / max(1, samples)
    false_reps = sum(r["count"] for r in still_rows)
    return {
        "clips": rows,
        "still": still_rows,
        "within_one": round(within, 3),
        "mae": round(mae, 3),
        "mae_share": round(mae / mean_count, 4),
        "mean_true": round(mean_count, 2),
        "skip1_within_one": round(sum(abs(r["skip1"] - r["count"]) <= 1 for r in rows) / len(rows), 3),
        "cost_ms_per_person_frame": round(per_frame, 4),
        "targets": [
            {
                "measure": "reps within one",
                "measured": round(within, 3),
                "op": ">=",
                "target": WITHIN_ONE_TARGET,
                "met": within >= WITHIN_ONE_TARGET,
            },
            {
                "measure": "reps MAE / mean count",
                "measured": round(mae / mean_count, 4),
                "op": "<",
                "target": MAE_SHARE_TARGET,
                "met": mae / mean_count < MAE_SHARE_TARGET,
            },
            {"measure": "reps on still clips", "measured": false_reps, "op": "==", "target": 0, "met": false_reps == 0},
            {
                "measure": "reps ms per person per frame",
                "measured": round(per_frame, 4),
                "op": "<",
                "target": COST_TARGET_MS,
                "met": per_frame < COST_TARGET_MS,
            },
        ],
    }


def markdown(result: dict) -> str:
    lines = ["| clip | true | count | error | count, every 2nd frame |", "|---|---:|---:|---:|---:|"]
    for r in result["clips"]:
        lines.append(f"| {r['clip']} | {r['true']} | {r['count']} | {r['error']:+d} | {r['skip1']} |")
    counted = [r for r in result["still"] if r["count"]]
    lines.append("")
    lines.append(
        f"Clips where nothing repeats in place: {len(result['still'])}, repetitions counted on them: "
        f"{sum(r['count'] for r in counted)}" + "".join(f"; {r['clip']} {r['count']}" for r in counted) + "."
    )
    lines.append("")
    lines.append(
        f"Within one: {result['within_one']:.0%} of {len(result['clips'])} clips; MAE {result['mae']:.2f} "
        f"= {result['mae_share']:.1%} of the mean count {result['mean_true']:.1f}; every second frame within one "
        f"of every frame: {result['skip1_within_one']:.0%}; CPU {result['cost_ms_per_person_frame']:.3f} ms per "
        "person per frame."
    )
    return "\n".join(lines)
