"""A person's action episode: from the frame a track's label becomes an action (not OTHER) to
the frame that label changes, the person leaves or the stream ends.

Derived from the same finished frame records as the `action` events (the label each track
shows), so an episode and its events always agree; nothing is classified twice.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..datasets.labels import OTHER
from ..types import FrameRecord

# An episode's better frames are announced (`update`) at most this often, so a score creeping
# up frame by frame does not send a message and a snapshot a frame.
UPDATE_INTERVAL_S = 1.0
# ... and only for a score this much above the last announced one (0.9991 to 0.9995 is no news);
# the best frame is still the snapshot at the end.
UPDATE_MIN_GAIN = 0.01
PHASES = ("start", "update", "end")


@dataclass
class Episode:
    """One episode; `t_*` are the source's own seconds (file position, or grab time live),
    `*_wall` wall-clock seconds for people and the index."""

    id: str
    camera: str
    track: int
    label: str
    t_start: float
    start_wall: float
    best_score: float
    t_best: float
    best_frame: int
    t_end: float | None = None
    end_wall: float | None = None

    @property
    def ended(self) -> bool:
        return self.t_end is not None

    @property
    def duration_s(self) -> float | None:
        return None if self.t_end is None else round(self.t_end - self.t_start, 3)


@dataclass
class EpisodeChange:
    """What happened to an episode on one frame. `box` is the person's box on that frame
    (start and update: the new best frame), None on `end`."""

    phase: str
    episode: Episode  # a copy as of this change: later frames do not alter it
    box: np.ndarray | None = None


def new_episode_id(camera: str, track: int, wall: float) -> str:
    """Sortable by start time, unique across restarts and cameras, and safe in a file name or a URL."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(wall))
    return f"{stamp}-{camera}-{track}-{secrets.token_hex(3)}"


class Episodes:
    """Open episodes per (camera, track), fed every finished record in order."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._open: dict[tuple[str, int], Episode] = {}
        self._last_update: dict[str, tuple[float, float]] = {}  # episode id -> t and score of its last start/update
        self._improved: dict[str, np.ndarray] = {}  # episode id -> box of a best frame not yet announced
        self._t_last: dict[str, float] = {}  # camera -> t_media of its newest record
        self._wall = clock
        self.improved: dict[str, np.ndarray] = {}  # on the latest record: episode id -> box of its new best frame

    def open_episodes(self, camera: str | None = None) -> list[Episode]:
        return [e for e in self._open.values() if camera is None or e.camera == camera]

    def update(self, record: FrameRecord) -> list[EpisodeChange]:
        camera, t = record.camera, record.t_media
        self._t_last[camera] = t
        self.improved = {}
        changes: list[EpisodeChange] = []
        for track_id in record.expired:
            changes += self._end((camera, track_id), t)
        for track in record.tracks:
            if track.prediction is None:
                continue
            key = (camera, track.track_id)
            label, score = track.prediction.label, float(track.prediction.score)
            episode = self._open.get(key)
            if episode is not None and episode.label != label:
                changes += self._end(key, t)
                episode = None
            if label == OTHER:
                continue
            if episode is None:
                wall = self._wall()
                episode = Episode(
                    new_episode_id(camera, track.track_id, wall),
                    camera,
                    track.track_id,
                    label,
                    t,
                    wall,
                    score,
                    t,
                    record.index,
                )
                self._open[key] = episode
                self._last_update[episode.id] = (t, score)
                changes.append(EpisodeChange("start", dataclasses.replace(episode), np.array(track.box, np.float32)))
                continue
            if score > episode.best_score:
                episode.best_score, episode.t_best, episode.best_frame = score, t, record.index
                self._improved[episode.id] = self.improved[episode.id] = np.array(track.box, np.float32)
            t_told, score_told = self._last_update[episode.id]
            if (
                episode.id in self._improved
                and t - t_told >= UPDATE_INTERVAL_S
                and episode.best_score >= score_told + UPDATE_MIN_GAIN
            ):
                self._last_update[episode.id] = (t, episode.best_score)
                box = self._improved.pop(episode.id)
                changes.append(EpisodeChange("update", dataclasses.replace(episode), box))
        return changes

    def end_camera(self, camera: str, t: float | None = None) -> list[EpisodeChange]:
        """Everyone on `camera` has left (its stream was lost or ended), at source time `t`."""
        t_end = t if t is not None else self._t_last.get(camera, 0.0)
        changes: list[EpisodeChange] = []
        for key in [key for key in self._open if key[0] == camera]:
            changes += self._end(key, t_end)
        return changes

    def end_all(self) -> list[EpisodeChange]:
        changes: list[EpisodeChange] = []
        for camera in {key[0] for key in self._open}:
            changes += self.end_camera(camera)
        return changes

    def _end(self, key: tuple[str, int], t: float) -> list[EpisodeChange]:
        episode = self._open.pop(key, None)
        if episode is None:
            return []
        episode.t_end = max(t, episode.t_start)
        episode.end_wall = self._wall()
        self._last_update.pop(episode.id, None)
        self._improved.pop(episode.id, None)
        return [EpisodeChange("end", dataclasses.replace(episode))]
