"""Reports from measured results (the JSON dicts the measuring modules return): Markdown and PNG.

Nothing here measures, so a report can be rebuilt from a saved JSON file (`--from-json`).
"""

from __future__ import annotations

import json
from pathlib import Path

from .throughput import STAGES

STAGE_TITLES = {
    "decode": "decode",
    "pose": "pose",
    "classify": "features + classify",
    "overlay": "overlay",
    "write": "write",
}


def _targets(targets: list[dict]) -> list[str]:
    lines = ["| measure | target | measured | met |", "|---|---|---|---|"]
    for t in targets:
        lines.append(f"| {t['measure']} | {t['op']} {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} |")
    return lines


def throughput_markdown(result: dict) -> str:
    meta, rows = result["meta"], result["rows"]
    plan = meta["plan"]
    clips = "; ".join(
        f"`{name}`: {c['about']}, {c['people']} {'person' if c['people'] == 1 else 'people'}"
        for name, c in meta["clips"].items()
    )
    lines = [
        "# Benchmark: threaded pipeline vs the article's serial loop, per clip and pose backend",
        "",
        f"Measured on {meta['date']}: {meta['machine']}. Clips (640x480, {plan['seconds']:g} s at 30 fps, mp4v, "
        f"looped; one source frame per output frame): {clips}. Classifier: {meta['weights']}. "
        f"{plan['rounds']} alternating round(s) per cell; FPS is the median over rounds, stage times the mean. "
        f"Load average (1 min) {meta['load_min']}-{meta['load_max']} during runs (start {meta['load_start']}, "
        f"end {meta['load_end']}); the machine is shared, so compare within a row. Cores this process could get "
        f"(busy threads, CPU time over wall time): {meta['cores_start']} at the start, {meta['cores_end']} at the end.",
        "",
        "Reproduce:",
        "",
        "```",
        meta.get("command", "python -m realtime benchmark"),
        "```",
        "",
        "## Throughput (file input, lossless queues)",
        "",
        "| clip | backend | skip | people / frame | serial FPS | threaded FPS | threaded / serial | serial ms/frame "
        "| threaded ms/frame | pose threads | limit ratio | cores used (serial, threaded) "
        "| CPU ms/frame (serial, threaded) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['backend']} | {r['skip']} | {r['people_mean']:.2f} | {r['serial_fps']:.1f} | "
            f"{r['threaded_fps']:.1f} | {r['speedup']:.2f}x | {r['serial_ms_per_frame']:.1f} | "
            f"{r['threaded_ms_per_frame']:.1f} | {r['pose_workers']} | {r['limit_ratio']:.2f} | "
            f"{r['serial_cores_used']:.2f}, {r['threaded_cores_used']:.2f} | "
            f"{r['serial_cpu_ms_per_frame']:.1f}, {r['threaded_cpu_ms_per_frame']:.1f} |"
        )
    lines += [
        "",
        "*People / frame*: people found per posed frame in the threaded run. *Limit ratio*: threaded FPS "
        "x the slowest stage's time per frame, pose counted over its threads (1.0 = as fast as that stage "
        "allows). *Cores used*: CPU time over wall time; the threaded design gains only where it gets more "
        "than one core. *CPU ms/frame*: the whole process's CPU time per frame, which other load changes "
        "little. Stage times per output frame, ms (threaded run; serial loop in brackets):",
        "",
        "| clip | backend | skip | " + " | ".join(STAGE_TITLES[s] for s in STAGES) + " |",
        "|---|---|---|" + "---|" * len(STAGES),
    ]
    for r in rows:
        stages = " | ".join(f"{r['stage_ms'][s]:.2f} ({r['serial_stage_ms'][s]:.2f})" for s in STAGES)
        lines.append(f"| {r['clip']} | {r['backend']} | {r['skip']} | {stages} |")
    live = [r for r in rows if "live" in r]
    if live:
        lines += [
            "",
            "## Live (file paced at 30 fps, drop-oldest queues)",
            "",
            "| clip | backend | latency p50 | p95 | max | dropped | output FPS |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in live:
            v = r["live"]
            lines.append(
                f"| {r['clip']} | {r['backend']} | {v['latency_ms_p50']:.0f} ms | "
                f"{v['latency_ms_p95']:.0f} ms | {v['latency_ms_max']:.0f} ms | "
                f"{v['dropped']} of {v['frames_in']} | {v['fps']:.1f} |"
            )
    cli, batches = result["cli"], result["classifier_ms_per_batch"]
    lines += [
        "",
        "## Memory and the classifier",
        "",
        f"- Peak RSS of `python -m realtime --pose {cli['backend']}` (clip {cli['clip']}, writing video): "
        f"{cli['peak_rss_mb']:.0f} MB.",
        f"- Classifier ({result['classifier_arch']}) per batch of windows: "
        + ", ".join(f"{b} {ms:.2f} ms" for b, ms in batches.items())
        + f"; features of one window {result['features_ms_per_window']:.2f} ms.",
        "",
        f"## Targets (issue 12, for {meta['headline_backend']}; the default backend is {meta['default_backend']})",
        "",
        *_targets(result["targets"]),
        "",
        "![FPS per clip and backend, and live latency](benchmark.png)",
        "",
    ]
    return "\n".join(lines)


def throughput_plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["skip"] == result["meta"]["plan"]["skips"][0]]
    names = [f"{r['clip']}\n{r['backend']}" for r in rows]
    x = range(len(rows))
    fig, (ax_fps, ax_lat) = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.38
    ax_fps.bar([i - width / 2 for i in x], [r["serial_fps"] for r in rows], width, color="tab:grey", label="serial")
    ax_fps.bar([i + width / 2 for i in x], [r["threaded_fps"] for r in rows], width, color="tab:blue", label="threaded")
    ax_fps.axhline(30, color="tab:red", linestyle=":", label="30 FPS target")
    ax_fps.set(xticks=list(x), xticklabels=names, ylabel="frames per second", title="Throughput (skip 0)")
    ax_fps.legend()
    live = [r for r in rows if "live" in r]
    if live:
        xs = range(len(live))
        ax_lat.bar(
            [i - width / 2 for i in xs],
            [r["live"]["latency_ms_p50"] for r in live],
            width,
            color="tab:cyan",
            label="p50",
        )
        ax_lat.bar(
            [i + width / 2 for i in xs],
            [r["live"]["latency_ms_p95"] for r in live],
            width,
            color="tab:blue",
            label="p95",
        )
        ax_lat.axhline(100, color="tab:red", linestyle=":", label="100 ms target (p95)")
        ax_lat.set(xticks=list(xs), xticklabels=[f"{r['clip']}\n{r['backend']}" for r in live])
        ax_lat.legend()
    ax_lat.set(ylabel="capture-to-output latency (ms)", title="Live (paced 30 fps, drop-oldest)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cameras_markdown(result: dict) -> str:
    meta = result["meta"]
    plan = meta["plan"]
    lines = [
        "# Benchmark: many cameras in one process",
        "",
        f"Measured on {meta['date']} ({meta['cpus']} CPUs), backend {meta['backend']}, pose.workers "
        f"{meta['pose_workers'] or 'auto'}: each camera a different real Weizmann clip made 640x480, looped to "
        f"{plan['seconds']:g} s and paced at its native 25 fps with drop-oldest queues (like a camera), "
        f"`pose_fps` {plan['pose_fps']:g}. Load average {meta['load_start']} at the start, {meta['load_end']} at "
        f"the end; cores free for this process {meta['cores_start']} / {meta['cores_end']}.",
        "",
        "Reproduce:",
        "",
        "```",
        meta.get("command", "python -m realtime benchmark cameras"),
        "```",
        "",
        "| cameras | poses/s per camera (min-max) | latency p95 (max) | dropped before pose | dropped after pose "
        "| CPU per camera (cores) | labels = clip alone | keeps up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        rows = run["rows"]
        poses = [r["poses_per_s"] for r in rows]
        same = sum(r["label"] == r["reference_label"] for r in rows)
        agree = min(r["label_agreement"] for r in rows)
        lines.append(
            f"| {run['cameras']} | {min(poses):.1f}-{max(poses):.1f} | "
            f"{max(r['latency_ms_p95'] for r in rows):.0f} ms | "
            f"{sum(r['dropped_before_pose'] for r in rows)} of {sum(r['frames_in'] for r in rows)} | "
            f"{run['dropped_after_pose']} | {run['cpu_per_camera']:.2f} | {same}/{len(rows)} "
            f"(frames agreeing >= {agree:.0%}) | {'yes' if run['holds'] else 'no'} |"
        )
    lines += [
        "",
        f"A camera keeps up with >= 9 poses/s, p95 <= 200 ms and no drop after pose. Most cameras kept up: "
        f"**{result['most_cameras']}**. *Labels = clip alone*: cameras whose most-shown label equals that of "
        "the same clip run alone (every frame read, same pose rate); the agreement is per frame.",
        "",
        "## Targets (issue 15)",
        "",
        *_targets(result["targets"]),
        "",
        "![Cameras](benchmark-cameras.png)",
        "",
    ]
    return "\n".join(lines)


def cameras_plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    counts = [r["cameras"] for r in runs]
    fig, (ax_pose, ax_lat) = plt.subplots(1, 2, figsize=(11, 4))
    ax_pose.plot(counts, [min(c["poses_per_s"] for c in r["rows"]) for r in runs], "o-", label="slowest camera")
    ax_pose.axhline(9, color="tab:red", linestyle=":", label="9 poses/s")
    ax_pose.set(xlabel="cameras", ylabel="poses per second per camera", xticks=counts, title="Pose rate")
    ax_pose.legend()
    ax_lat.plot(counts, [max(c["latency_ms_p95"] for c in r["rows"]) for r in runs], "o-", label="worst p95")
    ax_lat.axhline(200, color="tab:red", linestyle=":", label="200 ms")
    ax_lat.set(xlabel="cameras", ylabel="capture-to-output latency (ms)", xticks=counts, title="Latency")
    ax_lat.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(kind: str, result: dict, folder: Path) -> list[Path]:
    """The Markdown, PNG and JSON of a throughput or cameras result in `folder`; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = "benchmark" if kind == "throughput" else "benchmark-cameras"
    markdown, plot = (
        (throughput_markdown, throughput_plot) if kind == "throughput" else (cameras_markdown, cameras_plot)
    )
    paths = [folder / f"{stem}.md", folder / f"{stem}.png", folder / f"{stem}.json"]
    paths[0].write_text(markdown(result))
    plot(result, paths[1])
    paths[2].write_text(json.dumps(result, indent=2) + "\n")
    return paths
