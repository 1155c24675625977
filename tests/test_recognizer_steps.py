"""The pipeline poses in a pool of threads and classifies in another; it must show exactly what
the one-thread loop shows, when that loop deals frames to its pose models in the same turn."""

from __future__ import annotations

import pytest
import torch

from realtime.capture import open_source
from realtime.classifier import CLASSES, ActionClassifier, ActionLSTM, save_checkpoint
from realtime.config import Config
from realtime.features import FeatureSpec
from realtime.inference_worker import ActionRecognizer
from realtime.pipeline import Pipeline
from realtime.pose import create_backend
from realtime.pose_pool import RoundRobinPose
from realtime.types import Frame, FrameResult


def _shown(result: FrameResult) -> list[tuple]:
    return [(t.track_id, round(float(t.keypoints.sum()), 2),
             None if t.prediction is None else (t.prediction.label, round(t.prediction.score, 5)))
            for t in result.tracks]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)  # random weights (no trained ones here): the labels are arbitrary but deterministic
    spec = FeatureSpec()
    path = tmp_path_factory.mktemp("w") / "random.pt"
    save_checkpoint(path, ActionLSTM(spec.dim, len(CLASSES)), CLASSES, spec)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("skip, workers", [(0, 1), (0, 2), (2, 2)])
def test_threaded_pipeline_matches_the_serial_loop(weizmann_clip, weights, tmp_path, skip, workers):
    config = Config()
    config.source = str(weizmann_clip)
    config.pose.skip = skip
    config.pose.workers = workers
    config.classifier.weights = str(weights)
    config.output.headless = True
    pipeline = Pipeline(config, weights_explicit=True, notice=lambda message: None)
    threaded: list[list[tuple]] = []
    record = pipeline._record
    pipeline._record = lambda result: (threaded.append(_shown(result)), record(result))
    summary = pipeline.run()
    assert summary.error is None and summary.dropped == 0

    cap, info = open_source(str(weizmann_clip), config.capture)
    backend = RoundRobinPose([create_backend("mediapipe") for _ in range(workers)])
    recognizer = ActionRecognizer(backend, ActionClassifier.load(weights), skip,
                                  smoothing_s=config.classifier.smoothing_s)
    serial = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        index = len(serial)
        serial.append(_shown(recognizer.process(Frame(index, 0.0, image, t_source=index / info.fps))))
    recognizer.close()

    assert len(threaded) == len(serial) == 89
    assert sum(1 for tracks in serial if tracks and tracks[0][2] is not None) > 20  # the LSTM did run
    assert threaded == serial
