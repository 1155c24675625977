"""An episode's snapshot: the frame as shown, that person's box drawn boldly, and their crop beside it."""

from __future__ import annotations

import cv2
import numpy as np

from ..overlay import draw_captions, track_colour
from ..types import Prediction, Track

CROP_MARGIN = 0.15  # of the box's size on each side, so a raised arm is not cut off


def compose(image: np.ndarray, box: np.ndarray, track_id: int, label: str, score: float) -> np.ndarray:
    """A new image: `image` with the box, then the person's crop scaled to the frame's height."""
    frame = image.copy()
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = (round(float(v)) for v in box[:4])
    thickness = max(2, round(3 * width / 640))
    cv2.rectangle(frame, (x1, y1), (x2, y2), track_colour(track_id), thickness)
    mx, my = int((x2 - x1) * CROP_MARGIN), int((y2 - y1) * CROP_MARGIN)
    cx1, cy1 = max(0, x1 - mx), max(0, y1 - my)
    cx2, cy2 = min(width, max(cx1 + 1, x2 + mx)), min(height, max(cy1 + 1, y2 + my))
    crop = image[cy1:cy2, cx1:cx2]
    if crop.size == 0:
        return frame
    scale = height / crop.shape[0]
    crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), height), interpolation=cv2.INTER_LINEAR)
    crop = np.ascontiguousarray(crop)
    # The crop's caption, drawn as the overlay draws every caption.
    whole = np.array([0, 0, crop.shape[1] - 1, height - 1], np.float32)
    draw_captions(crop, [Track(track_id, np.zeros((0, 2)), np.zeros(0), whole, Prediction(label, score))], [])
    return np.hstack([frame, crop])
