"""The media writer: snapshots, clips and the index, on their own threads behind a bounded queue.

`MediaSink` sits among the pipeline's sinks. On the output thread it only follows the episodes
(dictionary work) and hands the frame to the writer's queue; when that queue is full the frame
is left out of the clips and counted, so a slow disk never slows a camera. The writer thread
compresses each frame into its camera's ring, draws and writes snapshots, and pipes frames into
one ffmpeg process per open clip; a finisher thread waits for each clip's ffmpeg to end, so one
clip's last seconds of encoding hold up no camera's frames. A write that fails (a full disk) is
a warning and a counted loss; the index lists only files that were written whole.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..config import MediaConfig
from ..errors import OutputError
from ..types import FrameRecord
from .clip import ClipEncoder, ClipError
from .episodes import Episode, EpisodeChange, Episodes
from .index import MediaIndex
from .ring import FrameRing, RingFrame
from .snapshot import compose

log = logging.getLogger("realtime")

RETENTION_INTERVAL_S = 60.0
# The ring keeps a little more than pre_s, so a clip's first frame can cover its start exactly.
RING_MARGIN_S = 0.5
CLOSE_TIMEOUT_S = 60.0

SnapshotListener = Callable[[str, str, bytes], None]  # camera, label, JPEG


@dataclass
class MediaStats:
    """What the media writer did; `lost` counts writes that failed (snapshots, clips, index rows)."""

    events: int = 0
    snapshots: int = 0
    clips: int = 0
    lost: int = 0
    frames_dropped: int = 0  # frames the writer's queue had no room for: missing from clips
    cpu_s: float = 0.0  # the writer thread's own CPU time (ffmpeg's is its processes')
    ring_bytes: dict[str, int] = field(default_factory=dict)  # each camera's ring, at its largest

    def line(self) -> str:
        return (
            f"{self.events} events, {self.snapshots} snapshots and {self.clips} clips written, "
            f"{self.lost} writes lost, {self.frames_dropped} frames dropped from clips"
        )


@dataclass
class _Work:
    camera: str
    t: float
    index: int
    image: np.ndarray | None  # None: dropped for want of room (its changes still come)
    improved: dict[str, np.ndarray]
    changes: list[EpisodeChange]
    streams_down: set[str] = field(default_factory=set)  # cameras lost since the last item: their clips end


@dataclass
class _CameraDone:
    camera: str


@dataclass
class _OpenClip:
    episode_id: str
    camera: str
    encoder: ClipEncoder
    t_close: float | None = None  # source time to stop at, once the episode has ended


class MediaSink:
    """A pipeline sink that keeps a snapshot and a clip of every action episode under `config.dir`.

    `emit(camera, event)` sends the `event` records (the pipeline's EventSink.emit); each
    snapshot written is also given to every `on_snapshot` listener (MQTT's retained image).
    """

    needs_image = True

    def __init__(
        self,
        config: MediaConfig,
        emit: Callable[[str, dict[str, Any]], None] = lambda camera, event: None,
        on_snapshot: list[SnapshotListener] | None = None,
        clock: Callable[[], float] = time.time,
        relative_paths: bool = False,
        hud: bool = False,
    ) -> None:
        """`relative_paths`: events name files relative to the media folder (a server's paths stay its own);
        `hud`: clips and snapshots show the HUD too (output.hud)."""
        if not config.dir:
            raise OutputError("media needs a folder — pass --media DIR or set media.dir")
        self.config = config
        self.hud = hud
        self.folder = Path(config.dir)
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputError(f"media folder {self.folder} is a file — give a folder (it is made if missing)")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create the media folder {self.folder} ({exc.strerror}) — choose another"
            ) from None
        if not os.access(self.folder, os.W_OK):
            raise OutputError(f"cannot write the media folder {self.folder} — choose a writable one")
        if config.clips:
            from ..web.encode import find_ffmpeg

            if find_ffmpeg() is None:
                raise OutputError("media clips need the ffmpeg command — install ffmpeg, or set media.clips false")
        self.index = MediaIndex(self.folder)
        kept, removed = self.index.recover()
        if kept or removed:
            log.info("media: %d events in %s; %d files no event owned removed", kept, self.folder, removed)
        self.emit = emit
        self._shown_folder = Path() if relative_paths else self.folder
        self.on_snapshot = list(on_snapshot or [])
        self.episodes = Episodes(clock)
        self.stats = MediaStats()
        self._stats_lock = threading.Lock()
        self._warned = 0
        self._queue: queue.Queue[_Work | _CameraDone | None] = queue.Queue(config.queue_size)
        self._carry: tuple[dict[str, np.ndarray], list[EpisodeChange], set[str]] | None = None
        self._finishing: queue.Queue[_OpenClip | None] = queue.Queue()
        self._rings: dict[str, FrameRing] = {}
        self._clips: dict[str, _OpenClip] = {}
        self._pending_best: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # id -> (image, box), not yet written
        self._episode: dict[str, Episode] = {}  # id -> latest copy, for the writer
        self._sizes: dict[str, dict[str, int]] = {}  # id -> bytes of each of its files
        self._closed = False
        self._retired_until: dict[str, float] = {}  # camera -> grab time of the loss that ended its episodes
        self._t0: dict[str, float] = {}  # camera -> media time of its first frame, the events' t = 0
        self._retain()
        self._thread = threading.Thread(target=self._run, name="media-writer", daemon=True)
        self._finisher = threading.Thread(target=self._finish_loop, name="media-clips", daemon=True)
        self._thread.start()
        self._finisher.start()

    # --- the output thread's side: never waits ---

    def paths_of(self, episode: Episode) -> dict[str, str | None]:
        """Where the episode's files are (or will be), as given in events."""
        return {
            "snapshot": str(self._shown_folder / self._relative(episode, ".jpg")) if self.config.snapshots else None,
            "clip": str(self._shown_folder / self._relative(episode, ".mp4")) if self.config.clips else None,
        }

    def media_of(self, camera: str, track: int) -> dict[str, Any]:
        """The open episode of a person, for their `action` event: its id and file paths ({} if none)."""
        for episode in self.episodes.open_episodes(camera):
            if episode.track == track:
                return {"event_id": episode.id, **self.paths_of(episode)}
        return {}

    def write(self, record: FrameRecord) -> None:
        if record.t_capture <= self._retired_until.get(record.camera, float("-inf")):
            return  # grabbed before its stream was lost, shown after: as the events sink, nobody starts again
        self._t0.setdefault(record.camera, record.t_media)
        changes = self.episodes.update(record)
        self._announce(changes)
        image = record.shown(self.hud)
        self._put(_Work(record.camera, record.t_media, record.index, image, dict(self.episodes.improved), changes))

    def camera_lost(self, camera: str, t_lost: float | None = None) -> None:
        """Nobody is seen on a stream that is down (lost at grab time `t_lost`): its episodes end at its last frame."""
        if t_lost is not None:
            self._retired_until[camera] = t_lost
        self._stream_down(camera, wait=False)

    def camera_ended(self, camera: str) -> None:
        self._stream_down(camera, wait=True)  # the stream is over: what was carried for want of room goes too
        self._put(_CameraDone(camera), wait=True)

    def _stream_down(self, camera: str, wait: bool) -> None:
        changes = self.episodes.end_camera(camera)
        self._announce(changes)
        # Sent with or without changes: a clip still in its post-roll must end now, not when the camera is back.
        t = (changes[0].episode.t_end or 0.0) if changes else 0.0
        self._put(_Work(camera, t, -1, None, {}, changes, streams_down={camera}), wait=wait)

    def close(self) -> None:
        if self._closed:
            return
        changes = self.episodes.end_all()
        self._announce(changes)
        cameras = {change.episode.camera for change in changes}
        for camera in cameras:
            self._put(
                _Work(
                    camera,
                    changes[0].episode.t_end or 0.0,
                    -1,
                    None,
                    {},
                    [c for c in changes if c.episode.camera == camera],
                ),
                wait=True,
            )
        self._closed = True
        self._put(None, wait=True)
        self._thread.join(timeout=CLOSE_TIMEOUT_S)
        self._finishing.put(None)
        self._finisher.join(timeout=CLOSE_TIMEOUT_S)
        with contextlib.suppress(sqlite3.Error):
            self.index.close()

    def _put(self, item: _Work | _CameraDone | None, wait: bool = False) -> None:
        if isinstance(item, _Work) and self._carry is not None:
            improved, changes, down = self._carry
            item.improved = {**improved, **item.improved}
            item.changes = changes + item.changes
            item.streams_down = down | item.streams_down
            self._carry = None
        if wait:
            self._queue.put(item, timeout=CLOSE_TIMEOUT_S)
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            assert isinstance(item, _Work)
            with self._stats_lock:
                self.stats.frames_dropped += item.image is not None
            # The frame is left out; what happened to the episodes on it goes with the next one.
            self._carry = (item.improved, item.changes, item.streams_down)

    def _announce(self, changes: list[EpisodeChange]) -> None:
        for change in changes:
            e = change.episode
            self.emit(
                e.camera,
                {
                    "type": "event",
                    "phase": change.phase,
                    "id": e.id,
                    "track": e.track,
                    "label": e.label,
                    "t_start": round(self._event_time(e.camera, e.t_start), 3),
                    "t_end": None if e.t_end is None else round(self._event_time(e.camera, e.t_end), 3),
                    "start_time": round(e.start_wall, 3),
                    "end_time": None if e.end_wall is None else round(e.end_wall, 3),
                    "score": round(e.best_score, 4),
                    **self.paths_of(e),
                },
            )

    def _event_time(self, camera: str, t_media: float) -> float:
        """Seconds since the camera's first frame, as the events' `t` (live: not the grab clock)."""
        return t_media - self._t0.get(camera, 0.0)

    # --- the writer thread ---

    def _run(self) -> None:
        t_retained = time.monotonic()
        cpu0 = time.thread_time()
        try:
            while (item := self._queue.get()) is not None:
                if isinstance(item, _CameraDone):
                    self._camera_done(item.camera)
                else:
                    self._work(item)
                if time.monotonic() - t_retained > RETENTION_INTERVAL_S:
                    t_retained = time.monotonic()
                    self._retain()
            for camera in list({clip.camera for clip in self._clips.values()}):
                self._camera_done(camera)
        except Exception as exc:  # the run goes on without media rather than die here
            log.error("media: the writer stopped (%s); no more snapshots or clips this run", exc)
            for clip in self._clips.values():
                clip.encoder.abort()
            self._clips.clear()
            while self._queue.get() is not None:
                pass
        finally:
            with self._stats_lock:
                self.stats.cpu_s += time.thread_time() - cpu0

    def _work(self, item: _Work) -> None:
        jpeg = self._jpeg(item.image) if item.image is not None else None
        if jpeg is not None:
            ring = self._rings.get(item.camera)
            if ring is None:
                ring = self._rings[item.camera] = FrameRing(self.config.pre_s + RING_MARGIN_S)
            ring.add(RingFrame(item.t, item.index, jpeg))
            self.stats.ring_bytes[item.camera] = max(self.stats.ring_bytes.get(item.camera, 0), ring.bytes)
            for clip in [c for c in self._clips.values() if c.camera == item.camera]:
                clip.encoder.add(item.t, jpeg)
                if clip.t_close is not None and item.t >= clip.t_close:
                    self._close_clip(clip, clip.t_close)
        if item.image is not None:
            for episode_id, box in item.improved.items():
                self._pending_best[episode_id] = (item.image, box)
        for change in item.changes:
            self._episode[change.episode.id] = change.episode
            getattr(self, f"_on_{change.phase}")(change, item)
        for camera in item.streams_down:
            self._camera_done(camera)

    def _on_start(self, change: EpisodeChange, item: _Work) -> None:
        e = change.episode
        self._sizes[e.id] = {}
        with self._stats_lock:
            self.stats.events += 1
        self._index("add", e.id, self._row(e, change.box))
        if self.config.snapshots and item.image is not None and change.box is not None:
            self._pending_best[e.id] = (item.image, change.box)
            self._write_snapshot(e)
        if self.config.clips:
            self._open_clip(e)

    def _on_update(self, change: EpisodeChange, item: _Work) -> None:
        e = change.episode
        if self.config.snapshots:
            self._write_snapshot(e)
        self._index("update", e.id, {"best_score": e.best_score})

    def _on_end(self, change: EpisodeChange, item: _Work) -> None:
        e = change.episode
        if self.config.snapshots:
            self._write_snapshot(e)
        self._pending_best.pop(e.id, None)
        t_end = None if e.t_end is None else self._event_time(e.camera, e.t_end)
        self._index("update", e.id, {"end_time": e.end_wall, "t_end": t_end, "best_score": e.best_score})
        clip = self._clips.get(e.id)
        if clip is not None and e.t_end is not None:
            clip.t_close = e.t_end + self.config.post_s
            if self.config.post_s == 0 or (clip.encoder.t_last is not None and clip.encoder.t_last >= clip.t_close):
                self._close_clip(clip, clip.t_close)
        if clip is None:
            self._forget(e.id)

    def _camera_done(self, camera: str) -> None:
        """The stream ended or was lost: its clips end with its last frame, and frames from before a
        loss are not a later clip's lead-in."""
        for clip in [c for c in self._clips.values() if c.camera == camera]:
            last = clip.encoder.t_last if clip.encoder.t_last is not None else clip.encoder.t0
            frame_s = 1.0 / clip.encoder.fps
            self._close_clip(clip, min(clip.t_close if clip.t_close is not None else float("inf"), last + frame_s))
        self._rings.pop(camera, None)

    def _open_clip(self, e: Episode) -> None:
        ring = self._rings.get(e.camera)
        frames = ring.since(e.t_start - self.config.pre_s) if ring is not None else []
        if not frames:
            self._lost(f"no frames for the clip of {e.id}")
            return
        t0 = max(frames[0].t, e.t_start - self.config.pre_s)
        path = self.folder / self._relative(e, ".mp4")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            encoder = ClipEncoder(path, ring.rate() if ring is not None else 25.0, t0)
        except (OSError, ClipError) as exc:
            self._lost(f"cannot start the clip {path} ({exc})")
            return
        for frame in frames:
            encoder.add(frame.t, frame.jpeg)
        self._clips[e.id] = _OpenClip(e.id, e.camera, encoder)

    def _close_clip(self, clip: _OpenClip, t_end: float) -> None:
        self._clips.pop(clip.episode_id, None)
        clip.t_close = t_end
        self._finishing.put(clip)

    def _finish_loop(self) -> None:
        while (clip := self._finishing.get()) is not None:
            assert clip.t_close is not None
            e = self._episode.get(clip.episode_id)
            try:
                clip.encoder.finish(clip.t_close)
            except ClipError as exc:
                self._lost(f"clip {clip.encoder.path} not written ({exc})")
            else:
                with self._stats_lock:
                    self.stats.clips += 1
                size = _size(clip.encoder.path)
                sizes = self._sizes.setdefault(clip.episode_id, {})
                sizes["clip"] = size
                t_start, t_end = clip.encoder.span
                if e is not None:
                    self._index(
                        "update",
                        clip.episode_id,
                        {
                            "clip": self._relative(e, ".mp4"),
                            "clip_t_start": round(self._event_time(clip.camera, t_start), 3),
                            "clip_t_end": round(self._event_time(clip.camera, t_end), 3),
                            "bytes": sum(sizes.values()),
                        },
                    )
            self._forget(clip.episode_id)

    def _write_snapshot(self, e: Episode) -> None:
        best = self._pending_best.pop(e.id, None)
        if best is None:
            return
        image, box = best
        jpeg = self._jpeg(compose(image, box, e.track, e.label, e.best_score))
        if jpeg is None:
            self._lost(f"cannot encode the snapshot of {e.id}")
            return
        for listener in self.on_snapshot:
            listener(e.camera, e.label, jpeg)
        relative = self._relative(e, ".jpg")
        path = self.folder / relative
        part = path.with_name(path.name + ".part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            part.write_bytes(jpeg)
            os.replace(part, path)
        except OSError as exc:
            part.unlink(missing_ok=True)
            self._lost(f"cannot write the snapshot {path} ({exc.strerror or exc})")
            return
        with self._stats_lock:
            self.stats.snapshots += 1
        sizes = self._sizes.setdefault(e.id, {})
        sizes["snapshot"] = len(jpeg)
        box_json = json.dumps([round(float(v), 1) for v in box[:4]])
        self._index("update", e.id, {"snapshot": relative, "box": box_json, "bytes": sum(sizes.values())})

    def _forget(self, episode_id: str) -> None:
        if episode_id not in self._clips:
            self._episode.pop(episode_id, None)
            self._sizes.pop(episode_id, None)

    def _row(self, e: Episode, box: np.ndarray | None) -> dict[str, Any]:
        return {
            "id": e.id,
            "camera": e.camera,
            "track": e.track,
            "label": e.label,
            "start_time": e.start_wall,
            "t_start": self._event_time(e.camera, e.t_start),
            "best_score": e.best_score,
            "box": json.dumps([round(float(v), 1) for v in box[:4]]) if box is not None else None,
        }

    def _index(self, action: str, episode_id: str, values: dict[str, Any]) -> None:
        try:
            if action == "add":
                self.index.add(values)
            else:
                self.index.update(episode_id, **values)
        except sqlite3.Error as exc:
            self._lost(f"cannot update the media index ({exc})")

    def _retain(self) -> None:
        try:
            deleted = self.index.enforce_retention(self.config.retain_days, self.config.max_gb * 1e9)
        except (sqlite3.Error, OSError) as exc:
            log.warning("media: retention failed (%s); trying again in %g s", exc, RETENTION_INTERVAL_S)
            return
        if deleted:
            log.info(
                "media: %d old events deleted (retain_days %g, max_gb %g)",
                len(deleted),
                self.config.retain_days,
                self.config.max_gb,
            )

    def _jpeg(self, image: np.ndarray) -> bytes | None:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        return buffer.tobytes() if ok else None

    def _lost(self, what: str) -> None:
        with self._stats_lock:
            self.stats.lost += 1
            lost = self.stats.lost
        if lost & (lost - 1) == 0:  # 1, 2, 4, 8, ...: a full disk for an hour is a dozen lines
            log.warning("media: %s; %d media writes lost so far", what, lost)

    @staticmethod
    def _relative(e: Episode, suffix: str) -> str:
        return f"{e.camera}/{e.id}{suffix}"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
