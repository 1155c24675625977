"""Mean and spread over seeds of `realtime evaluate --json` reports run one seed per process.

`evaluate --seeds N` runs the seeds one after another in one process; on a machine with cores to
spare, one process per seed (`--seed K --seeds 1`) finishes sooner. This gives the same `seeds`
summary from their JSON files:

    .venv/bin/python scripts/combine_seeds.py lodo.seed0.json lodo.seed1.json lodo.seed2.json
"""

from __future__ import annotations

import json
import sys

from realtime.evaluation import mean_over_seeds


def per_seed(report: dict) -> dict:
    """One report's scores in the shape `by_data_set` gives them (plus waist-up and at-threshold)."""
    scores = {"all": report} | report["by_source"]
    if "waist_up" in report:
        scores["waist_up"] = report["waist_up"]["all"]
    if "at_threshold" in report:
        at = {k: v for k, v in report["at_threshold"].items() if k != "threshold"}
        if "waist_up" in report and "at_threshold" in report["waist_up"]:
            at["waist_up"] = report["waist_up"]["at_threshold"]["all"]
        scores["at_threshold"] = at
    return scores


def main(paths: list[str]) -> None:
    reports = [json.loads(open(p).read()) for p in paths]
    seeds = [r["train_config"]["seed"] for r in reports]
    print(json.dumps({"seeds": seeds} | mean_over_seeds([per_seed(r) for r in reports]), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
