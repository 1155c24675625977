"""Keeps a running pipeline on the registry's active model: notices an activation, hands the model over.

The registry may be changed by another process (the `serve` app's Teach page), so the
active row is read every `interval_s`. The new checkpoint is loaded here, off the
camera's path, and handed to the classify stage, which takes it between two frames.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from .classifier import ActionClassifier
from .errors import ConfigError, RealtimeError
from .model_registry import REGISTRY_NAME, ModelRecord, ModelRegistry

log = logging.getLogger("realtime")

POLL_INTERVAL_S = 0.5


def open_registry(folder: str | Path) -> ModelRegistry:
    """The registry of a `--models DIR` folder, which must hold one already."""
    if not (Path(folder) / REGISTRY_NAME).is_file():
        raise ConfigError(
            f"--models {folder}: no {REGISTRY_NAME} there — give the --work-dir of a `serve` that was taught a model"
        )
    return ModelRegistry(folder)


def active_checkpoint(registry: ModelRegistry) -> tuple[ModelRecord, Path]:
    record = registry.active()
    if record is None:
        raise ConfigError(f"{registry.path} has no active model — activate one on the Teach page")
    return record, registry.checkpoint_path(record)


class ModelFollower(threading.Thread):
    """Polls the active model until `stop`; calls `switch` with each newly activated one, loaded."""

    def __init__(
        self,
        registry: ModelRegistry,
        switch: Callable[[ActionClassifier], None],
        stop: threading.Event,
        interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        super().__init__(name="model-follower", daemon=True)
        self.registry = registry
        self.switch = switch
        self.stop = stop
        self.interval_s = interval_s
        self.current: int | None = None
        self.switches = 0

    def poll(self) -> bool:
        """Hand over the active model if it changed; whether it did."""
        record = self.registry.active()
        if record is None or record.id == self.current:
            return False
        self.current = record.id  # a broken file is reported once, not every poll
        try:
            classifier = ActionClassifier.load(self.registry.checkpoint_path(record), name=record.name)
        except RealtimeError as exc:
            log.error("cannot switch to model %s: %s", record.name, exc)
            return False
        self.switch(classifier)
        self.switches += 1
        log.info("switched to model %s (%s)", record.name, ", ".join(classifier.labels))
        return True

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception as exc:  # a locked or moved registry must not end the run
                log.warning("cannot read the model registry %s: %s", self.registry.path, exc)
