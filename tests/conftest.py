"""Shared fixtures for the training-side tests: where the real datasets are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _datasets_root() -> Path:
    return Path(os.environ.get("REALTIME_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """The shared real data ($REALTIME_DATASETS, else ../shared/datasets beside the repo)."""
    root = _datasets_root()
    if not (root / "README.md").is_file():
        pytest.fail(f"real datasets not found at {root}; set REALTIME_DATASETS")
    return root


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "mediapipe: runs the real MediaPipe pose model on video")
    config.addinivalue_line("markers", "training: trains a real (small) model with PyTorch Lightning")
