"""Drawing: skeletons, boxes, labels and the HUD. Never infers anything."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .types import COCO_KEYPOINTS, FrameResult, Track

_J = {name: i for i, name in enumerate(COCO_KEYPOINTS)}
LIMBS: tuple[tuple[int, int], ...] = tuple((_J[a], _J[b]) for a, b in (
    ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"), ("right_eye", "right_ear"),
))
_LEFT = {i for name, i in _J.items() if name.startswith("left_")}
_RIGHT = {i for name, i in _J.items() if name.startswith("right_")}

# BGR; left limbs orange, right limbs blue, centre lines green, as most pose tools do.
LEFT_COLOUR = (0, 140, 255)
RIGHT_COLOUR = (255, 140, 0)
CENTRE_COLOUR = (80, 220, 80)
TEXT_COLOUR = (255, 255, 255)


@dataclass
class HudInfo:
    """The pipeline measures shown in the corner."""

    fps: float
    pose_fps: float
    latency_ms: float
    dropped: int
    latency_p50_ms: float | None = None  # capture-to-display over the last few seconds
    latency_p95_ms: float | None = None


def _scale(image: np.ndarray) -> float:
    """Line and text size relative to a 640-pixel-wide frame, so small videos stay readable."""
    return max(0.5, image.shape[1] / 640.0)


def draw_track(image: np.ndarray, track: Track, min_score: float) -> None:
    s = _scale(image)
    thickness = max(1, int(round(2 * s)))
    kp = track.keypoints
    ok = track.scores >= min_score
    for a, b in LIMBS:
        if ok[a] and ok[b]:
            colour = LEFT_COLOUR if (a in _LEFT and b in _LEFT) else RIGHT_COLOUR if (
                a in _RIGHT and b in _RIGHT) else CENTRE_COLOUR
            cv2.line(image, tuple(int(v) for v in kp[a]), tuple(int(v) for v in kp[b]), colour, thickness,
                     cv2.LINE_AA)
    for i in np.flatnonzero(ok):
        cv2.circle(image, (int(kp[i, 0]), int(kp[i, 1])), max(2, thickness + 1), (255, 255, 255), -1, cv2.LINE_AA)
    x1, y1, x2, y2 = (int(v) for v in track.box)
    cv2.rectangle(image, (x1, y1), (x2, y2), CENTRE_COLOUR, max(1, thickness - 1))
    caption = f"#{track.track_id}"
    if track.prediction is not None:
        caption += f" {track.prediction.label} {track.prediction.score:.2f}"
    _label(image, caption, (x1, max(0, y1 - 4)), s)


def _label(image: np.ndarray, text: str, origin: tuple[int, int], s: float) -> None:
    font_scale = 0.5 * s
    thickness = max(1, int(round(s)))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    x = min(max(0, origin[0]), max(0, image.shape[1] - w - 2))
    y = max(h + base, origin[1])
    cv2.rectangle(image, (x, y - h - base), (x + w + 2, y + 2), (40, 40, 40), -1)
    cv2.putText(image, text, (x + 1, y - base + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, TEXT_COLOUR, thickness,
                cv2.LINE_AA)


def draw_hud(image: np.ndarray, hud: HudInfo) -> None:
    if hud.latency_p50_ms is not None and hud.latency_p95_ms is not None:
        latency = f"latency p50 {hud.latency_p50_ms:.0f} p95 {hud.latency_p95_ms:.0f} ms"
    else:
        latency = f"{hud.latency_ms:3.0f} ms"
    text = f"{hud.fps:4.1f} FPS  pose {hud.pose_fps:4.1f}/s  {latency}  dropped {hud.dropped}"
    s = _scale(image)
    width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * s, max(1, int(round(s))))[0][0]
    room = image.shape[1] - 8
    if width > room:  # small videos: shrink the HUD rather than cut it off
        s *= room / width
    _label(image, text, (4, 0), s)


def annotate(result: FrameResult, hud: HudInfo, min_score: float = 0.3) -> np.ndarray:
    """Draw onto the frame's own image (it is not used again) and return it."""
    image = result.frame.image
    for track in result.tracks:
        draw_track(image, track, min_score)
    draw_hud(image, hud)
    return image
