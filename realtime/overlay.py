"""Drawing: skeletons, boxes, labels and the HUD. Never infers anything."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .types import KEYPOINT_INDEX, FrameRecord, Track, joint_pairs

LIMBS = joint_pairs(
    ("left_shoulder", "right_shoulder"),
    ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
    ("nose", "left_eye"),
    ("nose", "right_eye"),
    ("left_eye", "left_ear"),
    ("right_eye", "right_ear"),
)
_LEFT = {i for name, i in KEYPOINT_INDEX.items() if name.startswith("left_")}
_RIGHT = {i for name, i in KEYPOINT_INDEX.items() if name.startswith("right_")}

# BGR; left limbs orange, right limbs blue, centre lines green, as most pose tools do.
LEFT_COLOUR = (0, 140, 255)
RIGHT_COLOUR = (255, 140, 0)
CENTRE_COLOUR = (80, 220, 80)
TEXT_COLOUR = (255, 255, 255)
# One colour per track (box and caption), so people stay apart in a crowd; BGR, readable under white text.
TRACK_COLOURS = (
    (60, 60, 200),
    (60, 140, 40),
    (160, 70, 30),
    (130, 40, 140),
    (30, 110, 170),
    (120, 120, 20),
    (90, 60, 170),
    (40, 120, 110),
)


def track_colour(track_id: int) -> tuple[int, int, int]:
    return TRACK_COLOURS[track_id % len(TRACK_COLOURS)]


@dataclass
class HudInfo:
    """The pipeline measures shown in the corner."""

    fps: float
    pose_fps: float
    latency_ms: float
    dropped: int
    latency_p50_ms: float | None = None  # capture-to-display over the last few seconds
    latency_p95_ms: float | None = None
    camera: str | None = None  # named when several cameras share a screen


def _scale(image: np.ndarray) -> float:
    """Line and text size relative to a 640-pixel-wide frame, so small videos stay readable."""
    return max(0.5, image.shape[1] / 640.0)


def draw_track(image: np.ndarray, track: Track, min_score: float) -> None:
    """Skeleton (left orange, right blue) and the box in the track's colour; the caption is placed apart."""
    s = _scale(image)
    thickness = max(1, round(2 * s))
    kp = track.keypoints
    ok = track.scores >= min_score
    for a, b in LIMBS:
        if ok[a] and ok[b]:
            colour = (
                LEFT_COLOUR
                if (a in _LEFT and b in _LEFT)
                else RIGHT_COLOUR
                if (a in _RIGHT and b in _RIGHT)
                else CENTRE_COLOUR
            )
            cv2.line(image, tuple(int(v) for v in kp[a]), tuple(int(v) for v in kp[b]), colour, thickness, cv2.LINE_AA)
    for i in np.flatnonzero(ok):
        cv2.circle(image, (int(kp[i, 0]), int(kp[i, 1])), max(2, thickness + 1), (255, 255, 255), -1, cv2.LINE_AA)
    x1, y1, x2, y2 = (int(v) for v in track.box)
    cv2.rectangle(image, (x1, y1), (x2, y2), track_colour(track.track_id), max(1, thickness - 1))


def caption(track: Track) -> str:
    text = f"#{track.track_id}"
    if track.prediction is not None:
        text += f" {track.prediction.label} {track.prediction.score:.2f}"
    if track.reps is not None and track.reps.run > 0:
        text += f" x{track.reps.run}"  # OpenCV's fonts have no multiplication sign
    return text


Rect = tuple[int, int, int, int]  # x1, y1, x2, y2


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def draw_captions(image: np.ndarray, tracks: list[Track], keep_clear: list[Rect]) -> list[Rect]:
    """Each caption above its box, slid sideways off other people's boxes where it can, then moved
    down past any caption already placed, so that 5+ people stay readable. Returns where they went."""
    s = _scale(image)
    font_scale, thickness = 0.5 * s, max(1, round(s))
    placed = list(keep_clear)
    boxes = {t.track_id: _box_rect(t.box) for t in tracks}
    for track in sorted(tracks, key=lambda t: (t.box[1], t.box[0])):
        text = caption(track)
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        others = [b for tid, b in boxes.items() if tid != track.track_id]
        y = max(h + base, boxes[track.track_id][1] - 4)
        x = _caption_x(boxes[track.track_id], (y - h - base, y + 2), w + 2, others, image.shape[1])
        rect = (x, y - h - base, x + w + 2, y + 2)
        for _ in range(len(placed) + 1):
            hit = next((r for r in placed if _overlaps(rect, r)), None)
            if hit is None:
                break
            y = hit[3] + h + base + 1
            rect = (x, y - h - base, x + w + 2, y + 2)
        placed.append(rect)
        _label(image, text, (x, y), s, track_colour(track.track_id))
    return placed[len(keep_clear) :]


def _box_rect(box: np.ndarray) -> Rect:
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    return (x1, y1, x2, y2)


def _caption_x(box: Rect, rows: tuple[int, int], width: int, others: list[Rect], image_width: int) -> int:
    """Where a caption above `box`, on `rows` (its top and bottom), covers no one else's box, nearest
    its own box's centre.

    A caption is often wider than a person (a 60 px person, a 150 px caption), so aligned to the box's
    left it runs over the head of whoever stands to the right. Candidates: aligned left, right or
    centred on the box, or just clear of each neighbour; if none is clear, aligned left.
    """
    limit = max(0, image_width - width)
    candidates = [box[0], box[2] - width, (box[0] + box[2] - width) // 2]
    candidates += [x for b in others for x in (b[0] - width, b[2])]
    centre = (box[0] + box[2]) / 2
    clear = [
        x
        for x in (min(max(0, c), limit) for c in candidates)
        if not any(_overlaps((x, rows[0], x + width, rows[1]), b) for b in others)
    ]
    if not clear:
        return min(max(0, box[0]), limit)
    return min(clear, key=lambda x: abs(x + width / 2 - centre))


def _label_rect(image: np.ndarray, text: str, origin: tuple[int, int], s: float) -> Rect:
    """Where `_label` draws `text`: its background box, kept inside the image."""
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * s, max(1, round(s)))
    x = min(max(0, origin[0]), max(0, image.shape[1] - w - 2))
    y = max(h + base, origin[1])
    return (x, y - h - base, x + w + 2, y + 2)


def _label(
    image: np.ndarray, text: str, origin: tuple[int, int], s: float, background: tuple[int, int, int] = (40, 40, 40)
) -> Rect:
    x1, y1, x2, y2 = _label_rect(image, text, origin, s)
    thickness = max(1, round(s))
    base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * s, thickness)[1]
    cv2.rectangle(image, (x1, y1), (x2, y2), background, -1)
    origin_text = (x1 + 1, y2 - 1 - base)
    cv2.putText(image, text, origin_text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * s, TEXT_COLOUR, thickness, cv2.LINE_AA)
    return (x1, y1, x2, y2)


def _hud_layout(image: np.ndarray, hud: HudInfo) -> tuple[str, float]:
    """The HUD's text and its scale on this image."""
    if hud.latency_p50_ms is not None and hud.latency_p95_ms is not None:
        latency = f"latency p50 {hud.latency_p50_ms:.0f} p95 {hud.latency_p95_ms:.0f} ms"
    else:
        latency = f"{hud.latency_ms:3.0f} ms"
    text = f"{hud.fps:4.1f} FPS  pose {hud.pose_fps:4.1f}/s  {latency}  dropped {hud.dropped}"
    if hud.camera:
        text = f"{hud.camera}  {text}"
    s = _scale(image)
    width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * s, max(1, round(s)))[0][0]
    room = image.shape[1] - 8
    if width > room:  # small videos: shrink the HUD rather than cut it off
        s *= room / width
    return text, s


def draw_hud(image: np.ndarray, hud: HudInfo) -> Rect:
    text, s = _hud_layout(image, hud)
    return _label(image, text, (4, 0), s)


def hud_rect(image: np.ndarray, hud: HudInfo) -> Rect:
    """Where `draw_hud` would draw, without drawing."""
    text, s = _hud_layout(image, hud)
    return _label_rect(image, text, (4, 0), s)


def annotate(record: FrameRecord, hud: HudInfo | None, min_score: float = 0.3) -> np.ndarray:
    """Draw onto the frame's own image (it is not used again) and return it; no HUD when `hud` is None."""
    image = record.image
    for track in record.tracks:
        draw_track(image, track, min_score)
    keep_clear = [draw_hud(image, hud)] if hud is not None else []
    draw_captions(image, record.tracks, keep_clear)
    return image


def annotate_twice(record: FrameRecord, hud: HudInfo, min_score: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """The frame without the HUD (drawn on its own image) and a copy with it, for a run that
    records and shows at once; captions keep clear of the HUD's corner in both, so they match."""
    image = record.image
    for track in record.tracks:
        draw_track(image, track, min_score)
    draw_captions(image, record.tracks, [hud_rect(image, hud)])
    with_hud = image.copy()
    draw_hud(with_hud, hud)
    return image, with_hud


def tile(images: list[np.ndarray], width: int = 1280) -> np.ndarray:
    """Several cameras' frames in one grid image, each cell letterboxed to 4:3."""
    columns = int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / columns))
    cell_w = width // columns
    cell_h = cell_w * 3 // 4
    canvas = np.zeros((rows * cell_h, columns * cell_w, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        scale = min(cell_w / w, cell_h / h)
        resized = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
        y = (i // columns) * cell_h + (cell_h - resized.shape[0]) // 2
        x = (i % columns) * cell_w + (cell_w - resized.shape[1]) // 2
        canvas[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    return canvas
