"""The Detectron2 pose backend against the real detectron2 library (run in .venv-d2).

No pretrained weights exist here (no internet), so the network is built with the named
test-only option `random-init-for-tests`: these tests check the plumbing, shapes, weights
handling and conversion with real detectron2 objects, never keypoint accuracy.
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.detectron2

# Collected only by `make test-detectron2` (inside .venv-d2); the main suite ignores this file.
# A missing detectron2 there must fail, not skip.
import detectron2  # noqa: E402,F401
import torch  # noqa: E402
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402

from realtime.errors import ConfigError, WeightsError  # noqa: E402
from realtime.pose import create_backend  # noqa: E402
from realtime.pose.detectron2_backend import (  # noqa: E402
    DEFAULT_CONFIG,
    RANDOM_INIT_FOR_TESTS,
    Detectron2Pose,
    instances_to_poses,
    keypoint_confidence,
)
from realtime.types import Poses  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("REALTIME_DATASETS", REPO.parent / "shared" / "datasets"))
CLIP = DATASETS / "weizmann" / "jack" / "daria_jack.avi"
SMALL = 320  # MIN_SIZE_TEST for tests: seconds per frame on CPU instead of many


def read_frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    for index in indices:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = cap.read()
        assert ok, f"cannot read frame {index} of {path}"
        frames.append(image)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def backend():
    b = create_backend("detectron2", {"weights": RANDOM_INIT_FOR_TESTS, "min_size_test": SMALL})
    yield b
    b.close()


def make_instances(image_size, keypoints, boxes, scores) -> Instances:
    inst = Instances(image_size)
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.zeros(len(scores), dtype=torch.int64)
    inst.pred_keypoints = torch.tensor(keypoints, dtype=torch.float32).reshape(-1, 17, 3)
    return inst


# --- config ---------------------------------------------------------------------------


def test_config_loads_from_model_zoo_with_the_requested_settings(backend):
    cfg = backend.cfg
    assert cfg.MODEL.KEYPOINT_ON
    assert cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS == 17
    assert cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
    assert cfg.MODEL.RESNETS.DEPTH == 50  # R50-FPN, the article's model
    assert cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.5
    assert cfg.INPUT.MIN_SIZE_TEST == SMALL
    assert ("cuda" if torch.cuda.is_available() else "cpu") == cfg.MODEL.DEVICE
    assert backend.weights == RANDOM_INIT_FOR_TESTS
    # the built network really has the 17-keypoint head
    assert backend.predictor.model.roi_heads.keypoint_head.score_lowres.out_channels == 17


def test_unknown_or_non_keypoint_config_is_a_config_error():
    with pytest.raises(ConfigError, match="model zoo"):
        Detectron2Pose(config="COCO-Keypoints/no_such_model.yaml", weights=RANDOM_INIT_FOR_TESTS)
    with pytest.raises(ConfigError, match="not a COCO-17 keypoint model"):
        Detectron2Pose(config="COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml", weights=RANDOM_INIT_FOR_TESTS)


def test_cuda_without_a_gpu_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # pragma: no cover - CI has none
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        Detectron2Pose(weights=RANDOM_INIT_FOR_TESTS, device="cuda")


# --- predictor on real frames ---------------------------------------------------------


def test_predictor_runs_on_real_weizmann_frames(backend):
    frames = read_frames(CLIP, [0, 40])
    height, width = frames[0].shape[:2]
    for image in frames:
        poses = backend.estimate(image)
        assert isinstance(poses, Poses)
        n = len(poses)
        assert poses.keypoints.shape == (n, 17, 2)
        assert poses.scores.shape == (n, 17)
        assert poses.boxes.shape == (n, 4)
        assert np.isfinite(poses.keypoints).all() and np.isfinite(poses.scores).all()
        assert ((poses.scores >= 0) & (poses.scores <= 1)).all()
        # detectron2 clips boxes to the input image: pixels of the original frame, not the resized one
        assert (poses.boxes[:, [0, 2]] <= width + 1e-3).all() and (poses.boxes[:, [1, 3]] <= height + 1e-3).all()


def test_keypoint_head_on_a_real_frame_returns_every_person_inside_their_box(backend):
    """The random detector finds few people, so the keypoint head is driven with given boxes
    (detectron2's forward_with_given_boxes): two people in, two poses out, in their boxes."""
    image = read_frames(CLIP, [30])[0]
    height, width = image.shape[:2]
    model = backend.predictor.model
    boxes = [[20.0, 10.0, 90.0, 140.0], [100.0, 5.0, 170.0, 130.0]]
    with torch.no_grad():
        inputs = [
            {"image": torch.as_tensor(image.transpose(2, 0, 1).astype("float32")), "height": height, "width": width}
        ]
        images = model.preprocess_image(inputs)
        features = model.backbone(images.tensor)
        given = make_instances(images.image_sizes[0], np.zeros((2, 17, 3)), boxes, [0.9, 0.7])
        given.remove("pred_keypoints")
        out = model.roi_heads.forward_with_given_boxes(features, [given])[0]
    assert out.pred_keypoints.shape == (2, 17, 3)
    poses = instances_to_poses(out)
    assert len(poses) == 2
    np.testing.assert_allclose(poses.boxes, boxes)
    for kp, (x1, y1, x2, y2) in zip(poses.keypoints, boxes, strict=True):
        assert (kp[:, 0] >= x1).all() and (kp[:, 0] <= x2).all()
        assert (kp[:, 1] >= y1).all() and (kp[:, 1] <= y2).all()
    assert ((poses.scores > 0) & (poses.scores <= 1)).all()


# --- conversion of real Instances -----------------------------------------------------


def test_no_people_converts_to_empty_poses():
    inst = make_instances((144, 180), np.zeros((0, 17, 3)), np.zeros((0, 4)), [])
    poses = instances_to_poses(inst)
    assert len(poses) == 0
    assert poses.keypoints.shape == (0, 17, 2) and poses.scores.shape == (0, 17) and poses.boxes.shape == (0, 4)
    # an Instances without any field (what a model without detections may hand back) too
    assert len(instances_to_poses(Instances((144, 180)))) == 0


def test_one_person_converts_with_pixels_kept_and_scores_mapped():
    kp = np.zeros((1, 17, 3), dtype=np.float32)
    kp[0, :, 0] = np.arange(17) * 10 + 0.5  # x
    kp[0, :, 1] = np.arange(17) * 5 + 100.25  # y
    kp[0, :, 2] = np.linspace(0.0, 1.2, 17)  # detectron2 score, may exceed 1 a little
    poses = instances_to_poses(make_instances((480, 640), kp, [[1, 2, 200, 300]], [0.98]))
    assert len(poses) == 1
    np.testing.assert_allclose(poses.keypoints[0, :, 0], kp[0, :, 0])
    np.testing.assert_allclose(poses.keypoints[0, :, 1], kp[0, :, 1])
    np.testing.assert_allclose(poses.boxes[0], [1, 2, 200, 300])
    np.testing.assert_allclose(poses.scores[0], keypoint_confidence(kp[0, :, 2]))
    assert poses.scores[0, 0] == 0.0 and poses.scores[0, -1] == 1.0
    assert (np.diff(poses.scores[0]) >= 0).all()  # order of confidence kept


def test_several_people_all_returned_most_confident_first():
    n = 4
    kp = np.zeros((n, 17, 3), dtype=np.float32)
    for i in range(n):
        kp[i, :, 0] = 100 * i + np.arange(17)  # person i lives around x = 100 i
        kp[i, :, 1] = 50 + np.arange(17)
        kp[i, :, 2] = 0.05 * (i + 1)
    boxes = [[100 * i, 40, 100 * i + 30, 80] for i in range(n)]
    det_scores = [0.6, 0.95, 0.7, 0.8]  # not in order on purpose
    poses = instances_to_poses(make_instances((480, 640), kp, boxes, det_scores))
    assert len(poses) == n
    order = [1, 3, 2, 0]
    np.testing.assert_allclose(poses.keypoints, kp[order, :, :2])
    np.testing.assert_allclose(poses.boxes, np.array(boxes, dtype=np.float32)[order])
    np.testing.assert_allclose(poses.scores, keypoint_confidence(kp[order, :, 2]))
    # each box still belongs to its own person's keypoints
    for person in range(n):
        assert poses.boxes[person, 0] <= poses.keypoints[person, 0, 0] <= poses.boxes[person, 2]


def test_instances_from_a_detection_only_model_are_refused():
    inst = Instances((10, 10))
    inst.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 5.0, 5.0]]))
    inst.scores = torch.tensor([0.9])
    with pytest.raises(ValueError, match="pred_keypoints"):
        instances_to_poses(inst)


def test_keypoint_confidence_anchors():
    raw = np.array([0.0, 0.025, 0.05, 0.525, 1.0, 3.0, -1.0])
    np.testing.assert_allclose(keypoint_confidence(raw), [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.0], atol=1e-6)


# --- weights --------------------------------------------------------------------------


def test_missing_local_weights_file_is_a_one_line_weights_error(tmp_path):
    missing = tmp_path / "model_final.pkl"
    with pytest.raises(WeightsError) as err:
        Detectron2Pose(weights=str(missing))
    message = str(err.value)
    assert str(missing) in message and "--weights-pose FILE" in message and "pose.detectron2.weights" in message
    assert "\n" not in message


def test_a_config_file_of_ones_own_needs_weights_given(tmp_path):
    from detectron2 import model_zoo

    own = tmp_path / "my_keypoint_rcnn.yaml"
    zoo_file = Path(model_zoo.get_config_file(DEFAULT_CONFIG))
    base = zoo_file.parent / "Base-Keypoint-RCNN-FPN.yaml"  # its _BASE_, relative to the zoo's folder
    own.write_text(zoo_file.read_text().replace('"Base-Keypoint-RCNN-FPN.yaml"', f'"{base}"'))
    with pytest.raises(WeightsError, match=r"has no model-zoo weights.*--weights-pose FILE"):
        Detectron2Pose(config=str(own))
    assert Detectron2Pose(config=str(own), weights=RANDOM_INIT_FOR_TESTS, min_size_test=SMALL).cfg.MODEL.KEYPOINT_ON


def test_default_weights_url_that_cannot_be_downloaded_fails_fast_with_one_line(tmp_path):
    """The default is the model-zoo URL. Here it cannot be downloaded; the proxy is pointed at
    a closed local port so that this holds on a machine with internet too, and a fresh cache
    dir makes sure no earlier download answers instead."""
    closed_port = _free_port()
    env = dict(
        os.environ,
        https_proxy=f"http://127.0.0.1:{closed_port}",
        HTTPS_PROXY=f"http://127.0.0.1:{closed_port}",
        FVCORE_CACHE=str(tmp_path / "cache"),
        PYTHONPATH=str(REPO),
    )
    code = (
        "from realtime.errors import WeightsError\n"
        "from realtime.pose import create_backend\n"
        "try:\n"
        "    create_backend('detectron2', {})\n"
        "except WeightsError as exc:\n"
        "    print('WEIGHTS-ERROR', exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in run.stdout.splitlines() if line.startswith("WEIGHTS-ERROR")]
    assert run.returncode == 0 and len(lines) == 1, run.stdout + run.stderr
    line = lines[0]
    assert "model_final_a6e10b.pkl" in line  # names the file to fetch
    assert "--weights-pose FILE" in line and "pose.detectron2.weights" in line


def test_a_server_that_never_answers_times_out_instead_of_hanging(tmp_path, monkeypatch):
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "cache"))
    with socket.socket() as silent:  # accepts connections (backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/model_final.pkl"
        with pytest.raises(WeightsError, match="cannot download") as err:
            Detectron2Pose(weights=url, download_timeout=1.0)
    assert "timed out" in str(err.value)


def test_a_url_that_is_not_found_is_a_weights_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "cache"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/model_final.pkl"
        with pytest.raises(WeightsError, match="404"):
            Detectron2Pose(weights=url)
    finally:
        server.shutdown()
        server.server_close()


def test_a_local_checkpoint_is_loaded_and_one_that_does_not_fit_is_refused(backend, tmp_path):
    # A complete checkpoint in detectron2's own format, written by detectron2's checkpointer.
    DetectionCheckpointer(backend.predictor.model, save_dir=str(tmp_path)).save("complete")
    complete = tmp_path / "complete.pth"
    loaded = Detectron2Pose(weights=str(complete), min_size_test=SMALL)
    assert loaded.weights == str(complete)
    expected = backend.predictor.model.state_dict()
    got = loaded.predictor.model.state_dict()
    for key in ("backbone.bottom_up.stem.conv1.weight", "roi_heads.keypoint_head.score_lowres.weight"):
        assert torch.equal(got[key], expected[key])

    # Without the keypoint head, detectron2 would leave that head random and carry on.
    state = {k: v for k, v in expected.items() if not k.startswith("roi_heads.keypoint_head")}
    partial = tmp_path / "partial.pth"
    torch.save({"model": state}, partial)
    with pytest.raises(WeightsError, match="do not fit") as err:
        Detectron2Pose(weights=str(partial), min_size_test=SMALL)
    assert "keypoint_head" in str(err.value)

    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="cannot be read"):
        Detectron2Pose(weights=str(garbage), min_size_test=SMALL)


def test_random_weights_only_when_asked_by_name():
    import inspect

    assert inspect.signature(Detectron2Pose).parameters["weights"].default is None
    assert RANDOM_INIT_FOR_TESTS == "random-init-for-tests"
    assert DEFAULT_CONFIG == "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"


# --- the command line (needs the lead's CLI: --weights-pose and pose.detectron2.*) ----


@pytest.mark.timeout(600)
def test_cli_runs_detectron2_headless_and_writes_ten_frames(tmp_path):
    import importlib.util

    if importlib.util.find_spec("realtime.__main__") is None:
        pytest.skip("the realtime CLI (realtime/__main__.py) is not in this checkout yet")
    config = tmp_path / "config.yaml"
    config.write_text(f"pose:\n  backend: detectron2\n  detectron2:\n    min_size_test: {SMALL}\n")
    output = tmp_path / "o.mp4"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "realtime",
            "--config",
            str(config),
            "--pose",
            "detectron2",
            "--source",
            str(CLIP),
            "--headless",
            "--max-frames",
            "10",
            "--output",
            str(output),
            "--weights-pose",
            RANDOM_INIT_FOR_TESTS,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    cap = cv2.VideoCapture(str(output))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 10


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_error(404)

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
