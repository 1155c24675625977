"""The typed records that cross the seams between stages.

Every pose backend returns `Poses`; every stage after it speaks only these types,
so nothing downstream sees a backend's own objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# COCO-17 keypoint order, shared by every backend and by the classifier features.
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_KEYPOINTS = len(COCO_KEYPOINTS)
KEYPOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(COCO_KEYPOINTS)}


def joint_pairs(*pairs: tuple[str, str]) -> tuple[tuple[int, int], ...]:
    """Pairs of joints named as in COCO_KEYPOINTS, as index pairs (skeleton edges and the like)."""
    return tuple((KEYPOINT_INDEX[a], KEYPOINT_INDEX[b]) for a, b in pairs)


@dataclass
class Poses:
    """All people found in one image, in pixels of that image.

    keypoints (N,17,2) x,y; scores (N,17) in 0..1; boxes (N,4) x1,y1,x2,y2;
    person_scores (N,) how sure the backend is that each is a person; left out (empty), it is
    the mean joint score.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    person_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32).reshape(-1, NUM_KEYPOINTS, 2)
        n = len(self.keypoints)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n, NUM_KEYPOINTS)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(n, 4)
        if len(self.person_scores) == 0:
            self.person_scores = self.scores.mean(axis=1)
        self.person_scores = np.asarray(self.person_scores, dtype=np.float32).reshape(n)

    def __len__(self) -> int:
        return len(self.keypoints)

    def __getitem__(self, item: int | slice | np.ndarray) -> Poses:
        idx = np.atleast_1d(np.arange(len(self))[item])
        return Poses(self.keypoints[idx], self.scores[idx], self.boxes[idx], self.person_scores[idx])

    @classmethod
    def empty(cls) -> Poses:
        return cls(np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros((0, NUM_KEYPOINTS)), np.zeros((0, 4)))

    @staticmethod
    def boxes_from_keypoints(keypoints: np.ndarray, scores: np.ndarray, min_score: float) -> np.ndarray:
        """Tight boxes around the confident joints of each person (for backends without boxes)."""
        boxes = np.zeros((len(keypoints), 4), dtype=np.float32)
        for i, (kp, sc) in enumerate(zip(keypoints, scores, strict=True)):
            seen = kp[sc >= min_score]
            if len(seen) == 0:
                seen = kp
            boxes[i] = [*seen.min(axis=0), *seen.max(axis=0)]
        return boxes


@dataclass
class Prediction:
    """The classifier's verdict on one window of one person."""

    label: str
    score: float
    probabilities: dict[str, float] = field(default_factory=dict)
    model: str | None = None  # the name of the model that gave it, when models are switched live


@dataclass(frozen=True)
class RepCount:
    """What a person has repeated: this run (reset when they stop or their action changes), and in all."""

    run: int
    total: int
    period_s: float | None = None  # the current period; None when nothing repeats now


@dataclass
class Track:
    """One person followed across frames, with the latest pose, verdict and repetition count."""

    track_id: int
    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray
    prediction: Prediction | None = None
    reps: RepCount | None = None


DEFAULT_CAMERA = "cam0"


@dataclass
class FrameRecord:
    """One frame on its way through the pipeline; each stage fills in its part.

    capture: camera, index, t_capture (`time.monotonic()` at the grab), image, t_source
    (position in a file's own clock; None live), decode_ms.
    pose stage: `poses` (None when frame skipping left it unposed, the one place that
    says so), pose_ms, `tracks` (the people followed; carried over on unposed frames)
    and `expired` (ids whose tracks ended here).
    classify stage: each track's `prediction`, classify_ms.
    output step: `annotated`, the image with skeletons, boxes and labels (what recordings
    get), and `annotated_hud`, the same with the HUD (what the live window and page show);
    one image when no sink wants the other.
    """

    camera: str
    index: int
    t_capture: float
    image: np.ndarray
    t_source: float | None = None
    decode_ms: float = 0.0
    poses: Poses | None = None
    pose_ms: float = 0.0
    tracks: list[Track] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    classify_ms: float = 0.0
    annotated: np.ndarray | None = None
    annotated_hud: np.ndarray | None = None

    def shown(self, hud: bool) -> np.ndarray:
        """The image a sink shows or writes: annotated with or without the HUD, else the frame itself."""
        if hud and self.annotated_hud is not None:
            return self.annotated_hud
        return self.annotated if self.annotated is not None else self.image

    @property
    def posed(self) -> bool:
        return self.poses is not None

    @property
    def t_media(self) -> float:
        """The clock that windows follow: source time for files, grab time for live."""
        return self.t_source if self.t_source is not None else self.t_capture
