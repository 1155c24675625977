"""Detectron2 Keypoint R-CNN (the article's pose model), multi-person, mapped to `Poses`.

detectron2 is imported inside the class, so this module imports in an environment without
it (the main Python 3.11 one); only building the backend needs it.

Weights are resolved and checked here rather than left to `DefaultPredictor`, because
detectron2 itself would start from random weights without a word when given an empty path,
or load a file that fits only half the model. This backend refuses both, except through the
explicitly named test-only option.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError

import numpy as np

from ..errors import ConfigError, RealtimeError, WeightsError
from ..types import NUM_KEYPOINTS, Poses

DEFAULT_CONFIG = "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"

# Pass as `weights` to build the network with random weights. For tests and timing only:
# the keypoints it returns are meaningless.
RANDOM_INIT_FOR_TESTS = "random-init-for-tests"

# detectron2's own Visualizer draws a keypoint when its score is above this.
D2_VISIBLE_SCORE = 0.05

HOW_TO_PASS_WEIGHTS = "pass a local file with --weights-pose FILE or pose.detectron2.weights in config.yaml"

log = logging.getLogger(__name__)


def keypoint_confidence(d2_scores: np.ndarray) -> np.ndarray:
    """Map detectron2 keypoint scores onto the project's 0..1 confidence.

    detectron2 0.7's `pred_keypoints[..., 2]` is not a logit: it is the peak of a spatial
    softmax over the 56x56 heatmap (normalised at heatmap resolution), so it lies in (0, ~1]
    and a sharp, confident peak reaches ~1 while a flat, unsure map is ~1/3136. A sigmoid
    would squeeze all of that into 0.5..0.73. Its scale also differs from MediaPipe's
    visibility: detectron2 calls a joint visible above 0.05. So the map is piecewise linear,
    0 -> 0, 0.05 -> 0.5, >=1 -> 1: "0.5" means what detectron2 itself calls visible,
    as it roughly does for MediaPipe's visibility, and the order of scores is kept.
    """
    s = np.clip(np.asarray(d2_scores, dtype=np.float32), 0.0, 1.0)
    low = 0.5 * s / D2_VISIBLE_SCORE
    high = 0.5 + 0.5 * (s - D2_VISIBLE_SCORE) / (1.0 - D2_VISIBLE_SCORE)
    return np.where(s <= D2_VISIBLE_SCORE, low, high).astype(np.float32)


def _as_numpy(value: Any) -> np.ndarray:
    """A torch tensor (any device) or an array-like, as a numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def instances_to_poses(instances: Any) -> Poses:
    """All N people of a detectron2 `Instances` as `Poses`, most confident detection first.

    Reads `pred_keypoints` (N,17,3: x, y, score in input-image pixels), `pred_boxes` and
    `scores`. detectron2 already sorts by score; sorting again costs nothing and makes
    "first = most confident" a promise of this function, not of detectron2's NMS.
    """
    # An Instances with no fields has no length in detectron2 (len() raises): no people either.
    if not instances.get_fields() or len(instances) == 0:
        return Poses.empty()
    if not instances.has("pred_keypoints"):
        raise ValueError("detectron2 Instances have no pred_keypoints: the model is not a keypoint model")
    keypoints = _as_numpy(instances.pred_keypoints)
    if keypoints.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected pred_keypoints of shape (N,{NUM_KEYPOINTS},3), got {keypoints.shape}")
    boxes = _as_numpy(instances.pred_boxes.tensor)
    order = np.argsort(-_as_numpy(instances.scores), kind="stable")
    keypoints, boxes = keypoints[order], boxes[order]
    return Poses(keypoints[:, :, :2], keypoint_confidence(keypoints[:, :, 2]), boxes)


def _import_detectron2() -> Any:
    try:
        import detectron2  # noqa: F401
        from detectron2 import model_zoo
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.config import get_cfg
        from detectron2.engine import DefaultPredictor
    except ImportError as exc:
        raise RealtimeError(
            f"--pose detectron2 needs detectron2 ({exc}): run `make setup-detectron2` and use .venv-d2, "
            "or install detectron2 the official way (https://detectron2.readthedocs.io/en/latest/tutorials/install.html)"
        ) from None
    return model_zoo, DetectionCheckpointer, get_cfg, DefaultPredictor


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound each connect/read of the weights download: urllib has no timeout of its own,
    so a network that drops packets would otherwise hang start-up for minutes."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _tame_random_heatmaps(model: Any) -> None:
    """Keep an untrained keypoint head's logits within +-4 (random-init-for-tests only).

    Untrained, the backbone's FrozenBatchNorm has identity statistics, activations grow
    layer by layer and the heatmap logits reach +-1000. detectron2's heatmaps_to_keypoints
    then overflows its softmax (bicubic upsampling overshoots the peak by more than exp can
    hold) and fails its own assertion on NaN scores. Trained weights never get there.
    """

    def rescale(_module: Any, _inputs: Any, logits: Any) -> Any:
        peak = logits.abs().amax(dim=(2, 3), keepdim=True).clamp(min=1e-6)
        return logits / peak * 4.0

    model.roi_heads.keypoint_head.score_lowres.register_forward_hook(rescale)


class Detectron2Pose:
    """Keypoint R-CNN from detectron2's model zoo, every person in the frame."""

    name = "detectron2"

    def __init__(
        self,
        config: str = DEFAULT_CONFIG,
        weights: str | None = None,
        score_thresh: float = 0.5,
        min_size_test: int = 800,
        device: str = "auto",
        download_timeout: float = 30.0,
    ) -> None:
        model_zoo, DetectionCheckpointer, get_cfg, DefaultPredictor = _import_detectron2()
        import torch

        self.cfg = self._build_cfg(
            model_zoo, get_cfg, config, score_thresh, min_size_test, self._pick_device(torch, device)
        )
        if weights == RANDOM_INIT_FOR_TESTS:
            local_weights = None
            log.warning(
                "detectron2 pose model has RANDOM weights (%s): its keypoints mean nothing", RANDOM_INIT_FOR_TESTS
            )
        else:
            source = weights if weights else self._zoo_checkpoint_url(model_zoo, config)
            local_weights = self._local_weights(source, download_timeout)

        # MODEL.WEIGHTS stays empty, so DefaultPredictor builds the network without loading;
        # the checked load below is the only way weights get in.
        if local_weights is None:
            # The same random network every run, without disturbing the caller's RNG.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self.predictor = DefaultPredictor(self.cfg)
            _tame_random_heatmaps(self.predictor.model)
        else:
            self.predictor = DefaultPredictor(self.cfg)
            self._load_checked(DetectionCheckpointer, local_weights)
        self.weights = local_weights or RANDOM_INIT_FOR_TESTS

    @staticmethod
    def _pick_device(torch: Any, device: str) -> str:
        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"pose.detectron2.device is {device!r} but torch sees no CUDA GPU; use auto or cpu")
        return device

    @staticmethod
    def _build_cfg(
        model_zoo: Any, get_cfg: Any, config: str, score_thresh: float, min_size_test: int, device: str
    ) -> Any:
        if not 0.0 <= score_thresh <= 1.0:
            raise ConfigError(f"pose.detectron2.score_thresh must be in 0..1, got {score_thresh}")
        if int(min_size_test) < 32:
            raise ConfigError(f"pose.detectron2.min_size_test must be at least 32 pixels, got {min_size_test}")
        if Path(config).is_file():
            config_file = config
        else:
            try:
                config_file = model_zoo.get_config_file(config)
            except RuntimeError:
                raise ConfigError(
                    f"pose.detectron2.config {config!r} is neither a file nor in detectron2's "
                    f"model zoo; the article's is {DEFAULT_CONFIG}"
                ) from None
        cfg = get_cfg()
        cfg.merge_from_file(config_file)
        if not cfg.MODEL.KEYPOINT_ON or cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS != NUM_KEYPOINTS:
            raise ConfigError(
                f"pose.detectron2.config {config!r} is not a COCO-17 keypoint model; "
                f"use one from COCO-Keypoints/, e.g. {DEFAULT_CONFIG}"
            )
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(score_thresh)
        cfg.INPUT.MIN_SIZE_TEST = int(min_size_test)
        cfg.MODEL.DEVICE = device
        cfg.MODEL.WEIGHTS = ""
        cfg.freeze()
        return cfg

    @staticmethod
    def _zoo_checkpoint_url(model_zoo: Any, config: str) -> str:
        try:
            return model_zoo.get_checkpoint_url(config)
        except RuntimeError:  # a config file of one's own has no model-zoo checkpoint
            raise WeightsError(f"detectron2 config {config} has no model-zoo weights; {HOW_TO_PASS_WEIGHTS}") from None

    @staticmethod
    def _local_weights(source: str, download_timeout: float) -> str:
        """A readable local checkpoint: the file itself, or detectron2's cached download of a URL."""
        if "://" not in source:
            path = Path(source).expanduser()
            if not path.is_file():
                raise WeightsError(f"detectron2 weights file {source} not found; {HOW_TO_PASS_WEIGHTS}")
            return str(path)
        from detectron2.utils.file_io import PathManager

        try:
            with _socket_timeout(download_timeout):
                return PathManager.get_local_path(source)
        except OSError as exc:  # URLError, HTTPError, timeouts, DNS failures are all OSErrors
            # URLError's own text wraps the reason in "<urlopen error ...>"; HTTPError's has the code.
            plain = isinstance(exc, URLError) and not isinstance(exc, HTTPError)
            reason = str(exc.reason if plain and isinstance(exc, URLError) else exc) or type(exc).__name__
            raise WeightsError(
                f"cannot download detectron2 weights {source} ({reason}); fetch that file where "
                f"there is internet and {HOW_TO_PASS_WEIGHTS}"
            ) from None

    def _load_checked(self, DetectionCheckpointer: Any, path: str) -> None:
        """Load through detectron2's checkpointer, then refuse a file that leaves parts random."""

        class RecordingCheckpointer(DetectionCheckpointer):
            # _load_model is fvcore's documented override point; it returns what did not fit.
            def _load_model(self, checkpoint: Any) -> Any:
                self.incompatible = super()._load_model(checkpoint)
                return self.incompatible

        checkpointer = RecordingCheckpointer(self.predictor.model)
        try:
            checkpointer.load(path)
        except Exception as exc:  # pickle, zip and torch errors alike mean "not a checkpoint"
            raise WeightsError(
                f"detectron2 weights {path} cannot be read ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); {HOW_TO_PASS_WEIGHTS}"
            ) from None
        bad = checkpointer.incompatible
        misfits = list(bad.missing_keys) + [key for key, _, _ in bad.incorrect_shapes]
        if misfits:
            raise WeightsError(
                f"detectron2 weights {path} do not fit {self.cfg.MODEL.META_ARCHITECTURE} keypoint "
                f"model ({len(misfits)} tensors missing or misshaped, e.g. {misfits[0]}); "
                f"use the model-zoo checkpoint of the same config"
            )

    def estimate(self, image_bgr: np.ndarray) -> Poses:
        # DefaultPredictor takes BGR (cfg.INPUT.FORMAT) and resizes to MIN_SIZE_TEST itself;
        # the boxes and keypoints come back in the input image's pixels.
        instances = self.predictor(image_bgr)["instances"].to("cpu")
        return instances_to_poses(instances)

    def close(self) -> None:
        self.predictor = None
