"""The pipeline poses in a pool of threads and classifies in another; it must show exactly what
the one-thread loop shows, when that loop deals frames to its pose models in the same turn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import read_frames
from realtime.capture import open_source
from realtime.classifier import ActionClassifier, ActionLSTMNet, save_checkpoint
from realtime.config import Config
from realtime.datasets.labels import CLASSES
from realtime.features import FeatureSpec
from realtime.inference_worker import ActionClassification
from realtime.pipeline import Pipeline
from realtime.pose import backend_options, create_backend
from realtime.pose_stage import RoundRobinPose
from realtime.serial import SerialLoop
from realtime.types import FrameRecord


class Recorder:
    """A sink that keeps what each frame showed."""

    needs_image = False

    def __init__(self) -> None:
        self.shown: list[list[tuple]] = []

    def write(self, record: FrameRecord) -> None:
        self.shown.append(_shown(record))

    def close(self) -> None:
        pass


def _shown(result: FrameRecord) -> list[tuple]:
    return [
        (
            t.track_id,
            round(float(t.keypoints.sum()), 2),
            None if t.prediction is None else (t.prediction.label, round(t.prediction.score, 5)),
        )
        for t in result.tracks
    ]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)  # random weights (no trained ones here): the labels are arbitrary but deterministic
    spec = FeatureSpec()
    path = tmp_path_factory.mktemp("w") / "random.pt"
    save_checkpoint(path, ActionLSTMNet(spec, len(CLASSES)), CLASSES, spec)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend, skip, workers", [("blazepose", 0, 1), ("blazepose", 0, 2), ("blazepose", 2, 2), ("movenet", 0, 2)]
)
def test_threaded_pipeline_matches_the_serial_loop(weizmann_clip, weights, tmp_path, backend, skip, workers):
    config = Config()
    config.source = str(weizmann_clip)
    config.pose.backend = backend
    config.pose.skip = skip
    config.pose.workers = workers
    config.classifier.weights = str(weights)
    config.output.headless = True
    recorder = Recorder()
    summary = Pipeline(config, sinks=[recorder]).run()
    threaded = recorder.shown
    assert summary.error is None and summary.dropped == 0

    cap, info = open_source(str(weizmann_clip), config.capture)
    loop = SerialLoop(
        RoundRobinPose([create_backend(backend, backend_options(config.pose)) for _ in range(workers)]),
        ActionClassification(ActionClassifier.load(weights), config.classifier.smoothing_s),
        skip,
    )
    serial = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        index = len(serial)
        serial.append(_shown(loop.process(FrameRecord("cam0", index, 0.0, image, t_source=index / info.fps))))
    loop.close()

    assert len(threaded) == len(serial) == 89
    assert sum(1 for tracks in serial if tracks and tracks[0][2] is not None) > 20  # the LSTM did run
    assert threaded == serial


class DrawnRecorder:
    """A sink that shows images (as a window or a video would) or not, keeping what it was handed."""

    def __init__(self, needs_image: bool) -> None:
        self.needs_image = needs_image
        self.annotated: list[bool] = []
        self.images: list[np.ndarray] = []

    def write(self, record: FrameRecord) -> None:
        self.annotated.append(record.annotated is not None)
        self.images.append(record.image.copy())

    def close(self) -> None:
        pass


@pytest.mark.parametrize("needs_image", [False, True])
def test_frames_are_drawn_only_when_a_sink_shows_them(weizmann_clip, weights, needs_image):
    config = Config()
    config.source = str(weizmann_clip)
    config.classifier.weights = str(weights)
    config.output.headless = True
    config.max_frames = 12
    sink = DrawnRecorder(needs_image)
    summary = Pipeline(config, sinks=[sink]).run()
    assert summary.error is None
    originals = read_frames(weizmann_clip)[:12]
    assert len(sink.images) == 12
    # Drawing happens on the frame's own image (the HUD at least changes every frame).
    untouched = [np.array_equal(shown, original) for shown, original in zip(sink.images, originals, strict=True)]
    if needs_image:
        assert all(sink.annotated) and not any(untouched)
    else:
        assert not any(sink.annotated) and all(untouched)
