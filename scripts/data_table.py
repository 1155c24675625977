"""Print the model card's data table: per data set and class, the subjects, recordings and windows
(of them waist-up: no hip in view on most samples) that training draws from.

    .venv/bin/python scripts/data_table.py --data videos:../shared/datasets/weizmann ... [--exclude SUBJECTS]

Windows are counted as `realtime evaluate` scores them (one every 0.16 s), before augmentation.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from realtime.datasets import DEFAULT_POSE_CACHE, load_labelled
from realtime.datasets.labels import CLASSES
from realtime.features import KEYPOINT_INDEX, FeatureSpec, sequence_grid, window_is_usable


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True, metavar="KIND:PATH")
    p.add_argument("--exclude", default="", help="comma-separated subjects left out, as train --exclude")
    args = p.parse_args()
    excluded = {s for s in args.exclude.split(",") if s}
    spec = FeatureSpec(bones=True, reaches=True)
    hips = [KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"]]
    step = round(0.16 * spec.rate_hz)
    subjects: dict[tuple[str, str], set[str]] = defaultdict(set)
    recordings: dict[tuple[str, str], int] = defaultdict(int)
    windows: dict[tuple[str, str], int] = defaultdict(int)
    waist_up: dict[tuple[str, str], int] = defaultdict(int)
    for seq in load_labelled(args.data, DEFAULT_POSE_CACHE):
        if seq.subject in excluded or seq.label is None:
            continue
        key = (seq.source, seq.label)
        subjects[key].add(seq.subject)
        recordings[key] += 1
        _grid, _kp, vis = sequence_grid(seq, spec)
        for start in range(0, len(vis) - spec.window + 1, step):
            sl = vis[start : start + spec.window]
            if window_is_usable(sl, spec):
                windows[key] += 1
                waist_up[key] += int(sl[:, hips].any(axis=1).mean() < 0.5)
    sources = sorted({source for source, _ in subjects})
    print("| data set | class | subjects | recordings | windows | of them waist-up |")
    print("|---|---|---:|---:|---:|---:|")
    for source in sources:
        for label in CLASSES:
            key = (source, label)
            if key in subjects:
                row = [source, label, len(subjects[key]), recordings[key], windows[key], waist_up[key]]
                print("| " + " | ".join(map(str, row)) + " |")
    totals = {label: sum(windows[(s, label)] for s in sources) for label in CLASSES}
    people = {label: len(set().union(*(subjects.get((s, label), set()) for s in sources))) for label in CLASSES}
    print("| all | " + " / ".join(f"{c} {people[c]} subjects, {totals[c]} windows" for c in CLASSES) + " | | | | |")
    print(f"windows in all: {int(np.sum(list(totals.values())))}")


if __name__ == "__main__":
    main()
