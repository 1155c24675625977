"""Multi-person test clips built from real single-person clips with OpenCV.

Every pixel of a person comes from a real recording; only the arrangement is made here:
- `tile_clips`: four Weizmann people side by side in a 2x2 grid of one 640x480 frame.
- `crossing_clip`: a Weizmann walker, cut out of his clip by background subtraction, walks in
  front of a person waving in another clip, so one body hides part of the other for a while.

Each builder writes an MJPG .avi (OpenCV can always write it) and returns where each person is,
so tests can check that each was found, and which label each source clip has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.bench.clips import fit_into, read_frames

FPS = 25.0  # Weizmann's own rate
FRAME_SIZE = (640, 480)  # width, height

# One clip per tile: the four labelled actions, four long takes (114-146 frames).
TILE_SOURCES = ("jack/lena_jack.avi", "pjump/ira_pjump.avi", "wave1/eli_wave1.avi", "wave2/ira_wave2.avi")
TILE_LABELS = ("JUMPING_JACKS", "JUMPING", "WAVING_1HAND", "WAVING_2HANDS")
WALKER_SOURCE = "walk/eli_walk.avi"  # walks left to right through the middle of the frame
STANDER_SOURCE = "wave2/ira_wave2.avi"  # stands in the middle and waves both arms


@dataclass
class TiledClip:
    path: Path
    frames: int
    fps: float
    tiles: list[tuple[int, int, int, int]]  # x1, y1, x2, y2 of each tile, one person in each
    labels: tuple[str, ...]  # the action class of each tile's source clip


@dataclass
class CrossingClip:
    path: Path
    frames: int
    fps: float
    walker_boxes: list[tuple[int, int, int, int]]  # x1, y1, x2, y2 of the walker's silhouette per frame


def read_all(path: Path) -> list[np.ndarray]:
    return read_frames(path)


def write_clip(path: Path, frames: list[np.ndarray], fps: float = FPS) -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot write {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()


def tile_clips(
    weizmann: Path,
    out: Path,
    sources: tuple[str, ...] = TILE_SOURCES,
    labels: tuple[str, ...] = TILE_LABELS,
    size: tuple[int, int] = FRAME_SIZE,
) -> TiledClip:
    """A 2x2 grid of four clips (as long as the shortest), each fitted into its quarter."""
    clips = [read_all(weizmann / s) for s in sources]
    n = min(len(c) for c in clips)
    tw, th = size[0] // 2, size[1] // 2
    tiles = [(col * tw, row * th, (col + 1) * tw, (row + 1) * th) for row in range(2) for col in range(2)]
    frames = []
    for i in range(n):
        canvas = np.zeros((size[1], size[0], 3), np.uint8)
        for clip, (x1, y1, x2, y2) in zip(clips, tiles, strict=True):
            canvas[y1:y2, x1:x2] = fit_into(clip[i], tw, th)
        frames.append(canvas)
    write_clip(out, frames)
    return TiledClip(out, n, FPS, tiles, labels)


def person_masks(frames: list[np.ndarray], threshold: int = 35) -> list[np.ndarray]:
    """Moving-person masks against the clip's median frame (the walker never stays in one place)."""
    background = np.median(np.stack(frames), axis=0).astype(np.int16)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    masks = []
    for frame in frames:
        diff = np.abs(frame.astype(np.int16) - background).max(axis=2)
        mask = (diff > threshold).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
        # Keep the largest blob: the person, not a flicker elsewhere.
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
        if count > 1:
            biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            mask = (labels == biggest).astype(np.uint8)
        masks.append(mask.astype(bool))
    return masks


def crossing_clip(
    weizmann: Path,
    out: Path,
    walker: str = WALKER_SOURCE,
    stander: str = STANDER_SOURCE,
    size: tuple[int, int] = FRAME_SIZE,
) -> CrossingClip:
    """The walker pasted in front of the stander, frame by frame, scaled up to `size`."""
    walker_frames = read_all(weizmann / walker)
    stander_frames = read_all(weizmann / stander)
    n = min(len(walker_frames), len(stander_frames))
    walker_masks = person_masks(walker_frames[:n])
    # End before the walker leaves the frame (a body half out has no true count to check) or
    # jumps (eli_walk is spliced at frame 72: he moves ~2 px a frame, then 25 px back).
    area = np.array([m.sum() for m in walker_masks])
    leaves = int(np.argmax(area < 0.5 * np.median(area))) or n
    centre_x = np.array([np.nonzero(m)[1].mean() if m.any() else np.nan for m in walker_masks[:leaves]])
    jumps = np.flatnonzero(np.abs(np.diff(centre_x)) > 10)
    n = int(jumps[0]) + 1 if len(jumps) else leaves
    height, width = walker_frames[0].shape[:2]
    scale = min(size[0] / width, size[1] / height)
    dx, dy = (size[0] - round(width * scale)) // 2, (size[1] - round(height * scale)) // 2
    frames, boxes = [], []
    for i in range(n):
        composite = stander_frames[i].copy()
        composite[walker_masks[i]] = walker_frames[i][walker_masks[i]]
        frames.append(fit_into(composite, *size))
        ys, xs = np.nonzero(walker_masks[i])
        boxes.append(
            (
                round(xs.min() * scale) + dx,
                round(ys.min() * scale) + dy,
                round((xs.max() + 1) * scale) + dx,
                round((ys.max() + 1) * scale) + dy,
            )
        )
    write_clip(out, frames)
    return CrossingClip(out, n, FPS, boxes)
