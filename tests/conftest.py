"""Shared fixtures: the real datasets beside the repository, and running the CLI for real."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from realtime import native

native.configure()  # as the command line does, before any test loads cv2 or a pose model

from realtime.datasets import default_root  # noqa: E402  (after the native settings)

REPO = Path(__file__).resolve().parent.parent

# The detectron2 tests run only inside .venv-d2 (`make test-detectron2`); elsewhere the file
# is not collected. In .venv-d2 a run that selects no test fails (pytest exit 5), so they
# cannot vanish silently there.
collect_ignore = [] if importlib.util.find_spec("detectron2") else ["test_detectron2.py"]
DATASETS = default_root()  # $REALTIME_DATASETS, else ../shared/datasets beside the repository


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not (DATASETS / "README.md").is_file():
        pytest.fail(f"shared datasets not found at {DATASETS}; set REALTIME_DATASETS")
    return DATASETS


@pytest.fixture(scope="session")
def weizmann_clip(datasets) -> Path:
    return datasets / "weizmann" / "jack" / "daria_jack.avi"


@pytest.fixture(scope="session")
def exercise_clip(datasets) -> Path:
    return datasets / "videos" / "exercise.avi"


def run_cli(
    *args: str,
    timeout: float = 240,
    env: dict | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """`python -m realtime ARGS` in a fresh process, as a user would run it."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("DISPLAY", None) if env is None or "DISPLAY" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "realtime", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or REPO,
    )


def start_cli(*args: str) -> subprocess.Popen:
    """`python -m realtime ARGS` started in the background, for tests that signal it mid-run."""
    return subprocess.Popen(
        [sys.executable, "-m", "realtime", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A TEST-ONLY checkpoint with random weights but the real shape and labels.

    It exercises the classifier path (windows, batching, events) without depending on
    how well the shipped model is trained.
    """
    from realtime.classifier import CLASSES, ActionLSTMNet, save_checkpoint
    from realtime.features import FeatureSpec

    spec = FeatureSpec()
    path = tmp_path_factory.mktemp("weights") / "random_init_test_only.pt"
    save_checkpoint(path, ActionLSTMNet(spec, len(CLASSES)), CLASSES, spec, info={"test_only": True})
    return path


def count_frames(path: Path) -> int:
    """Frames a decoder actually gets out of a video file."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def read_frames(path: Path, limit: int | None = None) -> list:
    """The decoded frames of a video file (at most `limit`)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def poll_until_finished(client, url: str, timeout_s: float, pause_s: float) -> dict:
    """GET `url` from a web test client until its `status` is done or failed; that state."""
    import time

    deadline = time.monotonic() + timeout_s
    state: dict = {}
    while time.monotonic() < deadline:
        state = client.get(url).get_json()
        if state["status"] in ("done", "failed"):
            return state
        time.sleep(pause_s)
    pytest.fail(f"{url} not finished after {timeout_s} s: {state}")
