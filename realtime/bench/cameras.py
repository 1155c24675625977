"""Cameras: how many cameras one process poses at `pose_fps` each, and what each camera gets.

Each camera is a different real clip at 640x480 paced at its native 25 fps with drop-oldest
queues (`capture.pace` + policy drop_oldest), so frames arrive as from a camera and the ones
the pose models cannot take are dropped before pose. For 1, 2, 4, 8 ... cameras in one
`Pipeline` with the default backend: per camera poses/s, capture-to-output latency p50/p95,
drops before pose (in its inbox: free, by design) and after (posed work thrown away), and
CPU per camera (process CPU time / wall / cameras). Each camera's per-frame labels are
compared with the same clip run alone, every frame read (lossless), at the same pose rate.
"""

from __future__ import annotations

import copy
import logging
import os
import resource
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..config import CameraConfig, Config
from ..errors import RealtimeError
from ..pipeline import Pipeline
from ..types import FrameRecord
from .clips import BenchClip, camera_clips
from .throughput import available_cores, cpu_seconds, load_average

log = logging.getLogger("realtime.bench")

# Issue 15's bar for a camera that "keeps up" at pose_fps 10.
MIN_POSES_PER_S = 9.0
MAX_P95_MS = 200.0


class LabelRecorder:
    """A pipeline Sink that keeps the labels shown on each frame of each camera."""

    needs_image = False

    def __init__(self) -> None:
        self.labels: dict[str, dict[int, tuple[str, ...]]] = {}

    def write(self, record: FrameRecord) -> None:
        shown = tuple(sorted(t.prediction.label for t in record.tracks if t.prediction is not None))
        self.labels.setdefault(record.camera, {})[record.index] = shown

    def close(self) -> None:
        pass


def dominant(labels: dict[int, tuple[str, ...]]) -> str | None:
    """The label shown on most frames (None if none was)."""
    counts = Counter(label for shown in labels.values() for label in shown)
    return counts.most_common(1)[0][0] if counts else None


def agreement(labels: dict[int, tuple[str, ...]], reference: dict[int, tuple[str, ...]]) -> float:
    """Share of the frames labelled in the reference that show the same labels here (frames shown here)."""
    common = [i for i in labels if reference.get(i)]
    return sum(labels[i] == reference[i] for i in common) / len(common) if common else 0.0


@dataclass
class CameraRow:
    name: str
    clip: str
    frames_in: int
    frames_out: int
    poses_per_s: float
    latency_ms_p50: float
    latency_ms_p95: float
    dropped_before_pose: int
    label: str | None  # shown on most frames
    reference_label: str | None  # the same clip alone
    label_agreement: float  # per frame, against the clip alone

    @property
    def keeps_up(self) -> bool:
        return self.poses_per_s >= MIN_POSES_PER_S and self.latency_ms_p95 <= MAX_P95_MS


@dataclass
class CamerasRun:
    cameras: int
    seconds: float
    cpu_per_camera: float  # cores: process CPU time / wall time / cameras
    dropped_after_pose: int  # shared queues after the pose stage
    load: float
    rows: list[CameraRow] = field(default_factory=list)
    media: dict | None = None  # with --media: ring memory per camera, media CPU, what was written and lost

    @property
    def holds(self) -> bool:
        """Every camera keeps up and nothing posed is thrown away."""
        return self.dropped_after_pose == 0 and all(r.keeps_up for r in self.rows)

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "holds": self.holds,
            "cpu_per_camera": round(self.cpu_per_camera, 3),
            "seconds": round(self.seconds, 2),
        }


def cameras_config(base: Config, clips: list[BenchClip], pose_fps: float, live: bool) -> Config:
    config = copy.deepcopy(base)
    config.cameras = [
        CameraConfig(name=f"cam{i}", source=str(clip.path), pose_fps=pose_fps) for i, clip in enumerate(clips)
    ]
    config.pose_fps, config.max_frames = pose_fps, None
    config.output.headless, config.output.video, config.output.events = True, None, None
    config.capture.pace = live
    config.capture.policy = "drop_oldest" if live else "lossless"
    return config


def references(base: Config, clips: list[BenchClip], pose_fps: float) -> dict[str, dict[int, tuple[str, ...]]]:
    """Each clip alone, every frame read, the same pose rate: the labels a camera should show."""
    labels = {}
    for clip in clips:
        recorder = LabelRecorder()
        summary = Pipeline(cameras_config(base, [clip], pose_fps, live=False), sinks=[recorder]).run()
        if summary.error:
            raise RealtimeError(f"reference run on {clip.name} failed: {summary.error}")
        labels[clip.name] = recorder.labels.get("cam0", {})
    return labels


def _children_cpu() -> float:
    """CPU time of the child processes waited for (the clips' ffmpeg)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cameras(
    base: Config,
    clips: list[BenchClip],
    pose_fps: float,
    reference: dict[str, dict[int, tuple[str, ...]]],
    media_dir: Path | None = None,
) -> CamerasRun:
    recorder = LabelRecorder()
    config = cameras_config(base, clips, pose_fps, live=True)
    config.media.dir = str(media_dir) if media_dir is not None else None
    pipeline = Pipeline(config, sinks=[recorder])
    load, cpu_start, t_start, children_start = load_average(), cpu_seconds(), time.monotonic(), _children_cpu()
    summary = pipeline.run()
    seconds, cpu_s = time.monotonic() - t_start, cpu_seconds() - cpu_start
    if summary.error:
        raise RealtimeError(f"{len(clips)}-camera run failed: {summary.error}")
    run = CamerasRun(
        len(clips), seconds, cpu_s / seconds / len(clips), pipeline.posed.dropped + pipeline.results.dropped, load
    )
    if summary.media is not None:
        stats = summary.media
        ffmpeg_s = _children_cpu() - children_start
        run.media = {
            "ring_mb_per_camera": {name: round(b / 1e6, 2) for name, b in sorted(stats.ring_bytes.items())},
            "writer_cores": round(stats.cpu_s / seconds, 3),  # JPEG for the rings, snapshots, the index
            "ffmpeg_cores": round(ffmpeg_s / seconds, 3),  # the clips' H.264 encoding
            "events": stats.events,
            "snapshots": stats.snapshots,
            "clips": stats.clips,
            "lost": stats.lost,
            "frames_dropped": stats.frames_dropped,
        }
    for (name, camera), clip in zip(summary.cameras.items(), clips, strict=True):
        labels = recorder.labels.get(name, {})
        run.rows.append(
            CameraRow(
                name,
                clip.name,
                camera.frames_in,
                camera.frames_out,
                round(camera.pose_fps, 2),
                round(camera.latency_ms_p50, 1),
                round(camera.latency_ms_p95, 1),
                pipeline.inbox.dropped[name],
                dominant(labels),
                dominant(reference[clip.name]),
                round(agreement(labels, reference[clip.name]), 3),
            )
        )
    return run


@dataclass
class CamerasPlan:
    counts: tuple[int, ...] = (1, 2, 4, 8)
    more: tuple[int, ...] = (12, 16)  # tried in turn while every camera still keeps up
    seconds: float = 20.0
    pose_fps: float = 10.0
    quick: bool = False
    media: bool = False  # snapshots and clips on (docs/media.md)


def measure(plan: CamerasPlan, base: Config, datasets: Path) -> dict:
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_start": list(np.round(os.getloadavg(), 2)),
        "cores_start": available_cores(),
        "plan": vars(plan),
        "backend": base.pose.backend,
        "pose_workers": base.pose.workers,
        "cpus": os.cpu_count(),
    }
    log.info("cameras: load average %s; %s cores free for this process", meta["load_start"], meta["cores_start"])
    runs: list[CamerasRun] = []
    with tempfile.TemporaryDirectory(prefix="realtime-cameras-") as tmp:
        sources = camera_clips(datasets, Path(tmp), max(plan.counts + plan.more), plan.seconds)
        meta["clips"] = {c.name: c.about for c in sources}
        reference = references(base, sources, plan.pose_fps)
        for count in plan.counts + plan.more:
            if count in plan.more and runs and not runs[-1].holds:
                break
            # Cameras past the number of distinct clips reuse them in turn (each its own capture).
            media_dir = Path(tmp) / f"media-{count}" if plan.media else None
            run = run_cameras(
                base, [sources[i % len(sources)] for i in range(count)], plan.pose_fps, reference, media_dir
            )
            runs.append(run)
            if run.media is not None:
                rings = run.media["ring_mb_per_camera"].values()
                log.info(
                    "cameras %2d media: ring %.1f MB/camera at most, writer %.2f cores, ffmpeg %.2f cores, "
                    "%d events, %d clips, %d lost, %d frames dropped from clips",
                    count,
                    max(rings, default=0.0),
                    run.media["writer_cores"],
                    run.media["ffmpeg_cores"],
                    run.media["events"],
                    run.media["clips"],
                    run.media["lost"],
                    run.media["frames_dropped"],
                )
            worst = min(run.rows, key=lambda r: r.poses_per_s)
            log.info(
                "cameras %2d: poses/s min %.1f, p95 max %.0f ms, pre-pose drops %d, post-pose %d, "
                "%.2f cores/camera, holds %s, load %.2f",
                count,
                worst.poses_per_s,
                max(r.latency_ms_p95 for r in run.rows),
                sum(r.dropped_before_pose for r in run.rows),
                run.dropped_after_pose,
                run.cpu_per_camera,
                run.holds,
                run.load,
            )
    meta.update(load_end=list(np.round(os.getloadavg(), 2)), cores_end=available_cores())
    # The most cameras before the first count that does not hold (a lucky larger run does not count).
    most = 0
    for run in runs:
        if not run.holds:
            break
        most = run.cameras
    labels_equal = all(r.label == r.reference_label for run in runs for r in run.rows)
    return {
        "meta": meta,
        "runs": [r.to_json() for r in runs],
        "most_cameras": most,
        "labels_equal": labels_equal,
        "targets": [
            {"measure": "most cameras that keep up", "op": ">=", "target": 8, "measured": most, "met": most >= 8},
            {
                "measure": "each camera's label = the clip alone",
                "op": "==",
                "target": True,
                "measured": labels_equal,
                "met": labels_equal,
            },
        ],
    }
