"""How many track ids each person gets when the pose rate drops: real clips posed at 3, 5 and 10 Hz.

Every frame of each clip is posed once with the configured backend; each rate then picks its
frames with the pipeline's own `PoseSchedule` (as `pose_fps` does) and feeds a fresh `Tracker`.
A pose belongs to the person whose place in the frame it is nearest (the clips' people stay
apart: one person per Weizmann clip, three side by side in exercise.avi), so "ids per person"
counts how often one person was cut into new tracks. 1.0 is perfect.

    python -m realtime benchmark tracking [--rates 3,5,10] [--json FILE]
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..config import Config
from ..pose import backend_options, create_backend
from ..pose_stage import PoseSchedule
from ..tracker import Tracker
from ..types import Poses

log = logging.getLogger("realtime.bench")

RATES_HZ = (3.0, 5.0, 10.0)


@dataclass(frozen=True)
class TrackingClip:
    name: str
    path: Path
    people: int


@dataclass(frozen=True)
class TrackingRow:
    clip: str
    rate_hz: float
    poses: int  # frames posed at this rate
    people: int
    ids: int  # distinct track ids given to the clip's people
    ids_per_person_max: int

    @property
    def ids_per_person(self) -> float:
        return self.ids / self.people


def default_clips(datasets: Path) -> list[TrackingClip]:
    jacks = sorted((datasets / "weizmann" / "jack").glob("*.avi"))
    return [TrackingClip(p.stem, p, 1) for p in jacks] + [
        TrackingClip("exercise", datasets / "videos" / "exercise.avi", 3)
    ]


def pose_every_frame(clip: TrackingClip, config: Config) -> tuple[float, list[Poses]]:
    """The clip's frame rate and the poses of each of its frames."""
    backend = create_backend(config.pose.backend, backend_options(config.pose))
    cap = cv2.VideoCapture(str(clip.path), cv2.CAP_FFMPEG)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
        poses = []
        while True:
            ok, image = cap.read()
            if not ok:
                break
            poses.append(backend.estimate(image))
    finally:
        cap.release()
        backend.close()
    return fps, poses


def track_at(fps: float, poses: list[Poses], rate_hz: float) -> tuple[int, list[tuple[float, int]]]:
    """Poses picked at `rate_hz` as the pipeline picks them, tracked: (poses fed, (box centre x, id) per pose)."""
    schedule, tracker = PoseSchedule(0, rate_hz), Tracker()  # the pipeline's own settings
    fed, seen = 0, list[tuple[float, int]]()
    for i, frame_poses in enumerate(poses):
        t = i / fps
        if not schedule.due(t):
            continue
        fed += 1
        tracks, _ = tracker.update(frame_poses, t)
        seen.extend((float(track.box[0] + track.box[2]) / 2, track.track_id) for track in tracks)
    return fed, seen


def people_of(centres: np.ndarray, people: int) -> np.ndarray:
    """Each pose's person: the nearest of `people` places along x (1-D k-means over the clip)."""
    places = np.quantile(centres, (np.arange(people) + 0.5) / people)
    for _ in range(20):
        owner = np.abs(centres[:, None] - places[None, :]).argmin(axis=1)
        places = np.array([centres[owner == k].mean() if (owner == k).any() else places[k] for k in range(people)])
    return np.abs(centres[:, None] - places[None, :]).argmin(axis=1)


def measure(clips: list[TrackingClip], config: Config, rates: tuple[float, ...] = RATES_HZ) -> list[TrackingRow]:
    rows = []
    for clip in clips:
        fps, poses = pose_every_frame(clip, config)
        log.info("%s: %d frames at %g fps posed", clip.name, len(poses), fps)
        for rate in rates:
            fed, seen = track_at(fps, poses, rate)
            centres = np.array([x for x, _ in seen])
            ids = np.array([i for _, i in seen])
            owner = people_of(centres, clip.people) if len(seen) else np.zeros(0, int)
            per_person = [len(set(ids[owner == k].tolist())) for k in range(clip.people)]
            rows.append(TrackingRow(clip.name, rate, fed, clip.people, len(set(ids.tolist())), max(per_person)))
            log.info("%s at %g Hz: %d poses, %d ids for %d people", clip.name, rate, fed, rows[-1].ids, clip.people)
    return rows


def table(rows: list[TrackingRow]) -> str:
    lines = ["| clip | people | pose rate | poses | track ids | ids per person (worst) |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r.clip} | {r.people} | {r.rate_hz:g} Hz | {r.poses} | {r.ids} "
        f"| {r.ids_per_person:.2f} ({r.ids_per_person_max}) |"
        for r in rows
    ]
    return "\n".join(lines)


def as_json(rows: list[TrackingRow]) -> list[dict]:
    return [{**asdict(r), "ids_per_person": round(r.ids_per_person, 3)} for r in rows]


def run(config: Config, datasets: Path, rates: tuple[float, ...] = RATES_HZ) -> dict:
    """The measurement as `benchmark tracking` reports it: rows, a Markdown table, one target per rate."""
    rows = measure(default_clips(datasets), config, rates)
    targets = [
        {
            "measure": f"worst ids per person at {rate:g} Hz",
            "target": 1,
            "op": "==",
            "measured": max(r.ids_per_person_max for r in rows if r.rate_hz == rate),
        }
        for rate in rates
    ]
    for target in targets:
        target["met"] = target["measured"] == target["target"]
    return {"rows": as_json(rows), "table": table(rows), "targets": targets, "backend": config.pose.backend}
