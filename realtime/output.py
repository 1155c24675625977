"""The output step: draw a finished record, hand it to every sink, and measure what users see.

Run on the main thread by the pipeline (the window must live there) and by the serial loop
of `realtime benchmark`, so both pay the same per-frame output cost.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .overlay import HudInfo, annotate, annotate_twice
from .sinks import Sink, wants_hud
from .stats import LatencyStats, RateMeter, StageTimes
from .types import FrameRecord

# Enough samples for a steady HUD reading at 30 fps without lagging behind changes.
HUD_LATENCY_SAMPLES = 150


@dataclass
class CameraSummary:
    """One camera's run, as the summary line and the `summary` event give it."""

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    fps: float = 0.0
    pose_fps: float = 0.0
    latency_ms_p50: float = 0.0
    latency_ms_p95: float = 0.0
    labels: dict[str, int] = field(default_factory=dict)
    people_max: int = 0
    people_mean: float = 0.0  # people posed per posed frame
    tracks: int = 0  # distinct people followed
    reps: dict[str, int] = field(default_factory=dict)  # track id -> repetitions in all, for those who repeated
    error: str | None = None
    truncated: bool = False  # `error` is only that the file ended early; every frame before was processed

    def line(self) -> str:
        """The summary as the command line prints it, one line."""
        labels = ", ".join(f"{k} {v}" for k, v in sorted(self.labels.items(), key=lambda kv: -kv[1])) or "none"
        return (
            f"{self.frames_in} frames in, {self.frames_out} out, {self.dropped} dropped, "
            f"{self.fps:.1f} FPS, pose {self.pose_fps:.1f}/s, latency p50 {self.latency_ms_p50:.0f} ms "
            f"p95 {self.latency_ms_p95:.0f} ms; people max {self.people_max}, mean {self.people_mean:.1f}, "
            f"{self.tracks} track{'' if self.tracks == 1 else 's'}; labels shown: {labels}{self._reps_part()}"
        )

    def _reps_part(self) -> str:
        if not self.reps:
            return ""
        return "; repetitions: " + ", ".join(f"track {track} {count}" for track, count in self.reps.items())

    def event(self) -> dict:
        return {
            "type": "summary",
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": self.dropped,
            "fps": round(self.fps, 2),
            "pose_fps": round(self.pose_fps, 2),
            "latency_ms_p50": round(self.latency_ms_p50, 1),
            "latency_ms_p95": round(self.latency_ms_p95, 1),
            "labels": self.labels,
            "people_max": self.people_max,
            "people_mean": round(self.people_mean, 3),
            "tracks": self.tracks,
            "reps": self.reps,
            **({"error": self.error} if self.error else {}),
        }


class CameraMeter:
    """What the output step measures for one camera."""

    def __init__(self) -> None:
        self.out_rate, self.pose_rate = RateMeter(), RateMeter()
        self.latency = LatencyStats()
        self.recent = LatencyStats(keep=HUD_LATENCY_SAMPLES)  # the HUD shows now, not the whole run
        self.stage_times = StageTimes()
        self.labels: Counter[str] = Counter()
        self.frames_out = 0
        self.posed_frames = 0
        self.people_posed = 0
        self.people_max = 0
        self.track_ids: set[int] = set()
        self.reps: dict[int, int] = {}
        self.first_out: float | None = None
        self.last_out: float | None = None

    def summary(self, frames_in: int, dropped: int, elapsed_s: float) -> CameraSummary:
        return CameraSummary(
            frames_in=frames_in,
            frames_out=self.frames_out,
            dropped=dropped,
            fps=self.frames_out / elapsed_s if elapsed_s > 0 else 0.0,
            pose_fps=self.posed_frames / elapsed_s if elapsed_s > 0 else 0.0,
            latency_ms_p50=self.latency.percentile(50),
            latency_ms_p95=self.latency.percentile(95),
            labels=dict(self.labels),
            people_max=self.people_max,
            people_mean=self.people_posed / self.posed_frames if self.posed_frames else 0.0,
            tracks=len(self.track_ids),
            reps={str(track): total for track, total in sorted(self.reps.items()) if total > 0},
        )


class OutputStep:
    """annotate → sinks, with the HUD's and the summary's measures per camera."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        min_score: float = 0.3,
        dropped: Callable[[str], int] = lambda camera: 0,
        name_cameras: bool = False,
    ) -> None:
        self.sinks = list(sinks)
        self.draws = any(sink.needs_image for sink in self.sinks)
        # The live window and page show the HUD; recordings get it only when asked (output.hud).
        self.hud_wanted = any(sink.needs_image and wants_hud(sink) for sink in self.sinks)
        self.plain_wanted = any(sink.needs_image and not wants_hud(sink) for sink in self.sinks)
        self.min_score = min_score
        self.dropped = dropped
        self.name_cameras = name_cameras
        self.meters: dict[str, CameraMeter] = {}

    def meter(self, camera: str) -> CameraMeter:
        return self.meters.setdefault(camera, CameraMeter())

    def __call__(self, record: FrameRecord) -> None:
        m = self.meter(record.camera)
        now = time.monotonic()
        m.out_rate.tick(now)
        if record.poses is not None:
            m.pose_rate.tick(now)
            m.posed_frames += 1
            m.people_posed += len(record.poses)
            m.people_max = max(m.people_max, len(record.poses))
        m.track_ids.update(track.track_id for track in record.tracks)
        m.reps.update({track.track_id: track.reps.total for track in record.tracks if track.reps is not None})
        m.labels.update({track.prediction.label for track in record.tracks if track.prediction is not None})
        # The HUD shows this frame's latency up to drawing (it cannot include writing itself)
        # and the p50/p95 of recent frames taken after output, as users see them.
        hud = HudInfo(
            m.out_rate.rate(),
            m.pose_rate.rate(),
            (now - record.t_capture) * 1000,
            self.dropped(record.camera),
            m.recent.percentile(50),
            m.recent.percentile(95),
            record.camera if self.name_cameras else None,
        )
        t_start = time.perf_counter()
        if self.hud_wanted and self.plain_wanted:
            record.annotated, record.annotated_hud = annotate_twice(record, hud, self.min_score)
        elif self.draws:
            record.annotated = annotate(record, hud if self.hud_wanted else None, self.min_score)
            record.annotated_hud = record.annotated if self.hud_wanted else None
        t_drawn = time.perf_counter()
        for sink in self.sinks:
            sink.write(record)
        t_out = time.perf_counter()
        latency_ms = (time.monotonic() - record.t_capture) * 1000
        m.latency.add(latency_ms)
        m.recent.add(latency_ms)
        stages = m.stage_times
        stages.add("decode", record.decode_ms)
        stages.add("pose", record.pose_ms)
        stages.add("classify", record.classify_ms)
        stages.add("overlay", (t_drawn - t_start) * 1000)
        stages.add("write", (t_out - t_drawn) * 1000)
        stages.frame_done()
        m.frames_out += 1
        m.first_out = m.first_out or time.monotonic()
        m.last_out = time.monotonic()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
