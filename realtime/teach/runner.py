"""The Teach page's back end: taught clips, one training run at a time in a thread, its progress to followers.

A run's model joins the registry only once its checkpoint is whole (trainer.py), so a
run cut short, by a stop or by the server being killed, leaves the registry and the
active model as they were. At start, a run the last server left queued or running is
marked failed with why, and its scratch folder deleted.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import RealtimeError
from ..model_registry import MODELS_FOLDER, ModelRegistry
from ..web.broadcast import Broadcaster
from .store import STORE_NAME, ClipRecord, TeachStore, TrainingRecord
from .trainer import TAUGHT_FOLDER, TeachRequest, TeachSettings, TrainingStopped, train_taught

log = logging.getLogger("realtime.web")

INTERRUPTED = (
    "the server stopped during this training (it was killed or restarted); the active model is unchanged — train again"
)
STOPPED = "the server was stopped during this training; the active model is unchanged — train again"


class TrainingBusy(Exception):
    pass


class TeachRunner:
    def __init__(self, root: Path, registry: ModelRegistry, settings: TeachSettings | None = None) -> None:
        self.root = root
        self.registry = registry
        self.settings = settings or TeachSettings()
        self.store = TeachStore(root / STORE_NAME)
        (root / TAUGHT_FOLDER).mkdir(parents=True, exist_ok=True)
        self._recover()
        self._lock = threading.Lock()  # a store write and its broadcast happen together
        self._updates: dict[str, Broadcaster[TrainingRecord]] = {}
        self._pending: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="teach-trainer", daemon=True)
        self._thread.start()

    def _recover(self) -> None:
        for training in self.store.trainings("queued", "running"):
            self.store.update_training(training.id, status="failed", finished_at=time.time(), error=INTERRUPTED)
            log.info("training %s was cut short by the last server: marked failed", training.id)
        for scratch in (self.root / MODELS_FOLDER).glob(".training-*"):
            shutil.rmtree(scratch, ignore_errors=True)

    # --- clips ---

    def new_clip_path(self, suffix: str) -> tuple[str, Path]:
        clip_id = uuid.uuid4().hex
        return clip_id, self.root / TAUGHT_FOLDER / f"{clip_id}{suffix}"

    def add_clip(self, clip: ClipRecord) -> ClipRecord:
        return self.store.add_clip(clip)

    def delete_clip(self, clip_id: str) -> bool:
        clip = self.store.clip(clip_id)
        if clip is None:
            return False
        self.store.delete_clip(clip_id)
        (self.root / clip.path).unlink(missing_ok=True)
        return True

    # --- trainings ---

    def start(self, request: TeachRequest) -> TrainingRecord:
        with self._lock:  # two clicks at once must not start two runs
            if self.store.trainings("queued", "running"):
                raise TrainingBusy("a training is already running — wait for it to end")
            if not self.store.clips():
                raise TrainingBusy("no taught clips yet — add clips of the new action first")
            training = self.store.add_training(uuid.uuid4().hex, time.time(), request.to_json())
        self._pending.put(training.id)
        return training

    def get(self, training_id: str) -> TrainingRecord | None:
        return self.store.training(training_id)

    def subscribe(self, training_id: str) -> tuple[Broadcaster[TrainingRecord], queue.Queue]:
        with self._lock:
            updates = self._updates.setdefault(training_id, Broadcaster())
            record = self.store.training(training_id)
            if record is not None:
                updates.publish(record)  # primes the inbox with the state now
        return updates, updates.subscribe()

    def report(self, training_id: str, **changes: Any) -> TrainingRecord:
        with self._lock:
            record = self.store.update_training(training_id, **changes)
            updates = self._updates.get(training_id)
            if updates is not None:
                updates.publish(record)
        return record

    def _work(self) -> None:
        while not self._stop.is_set():
            training_id = self._pending.get()
            if training_id is None or self._stop.is_set():
                return
            try:
                self._run(training_id)
            except Exception as exc:  # a bug must not kill the thread and strand later runs
                log.exception("training %s crashed", training_id)
                self.report(training_id, status="failed", finished_at=time.time(), error=f"internal error: {exc}")

    def _run(self, training_id: str) -> None:
        training = self.store.training(training_id)
        if training is None or training.status != "queued":
            return
        self.report(training_id, status="running", started_at=time.time(), phase="starting", progress=0.0)
        last = [0.0]

        def progress(phase: str, percent: float) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.2 or phase.startswith(("training", "scoring", "reading")):
                last[0] = now
                self.report(training_id, phase=phase, progress=percent)

        try:
            model = train_taught(
                self.root,
                self.store.clips(),
                TeachRequest(**training.request),
                self.settings,
                self.registry,
                progress,
                stop=self._stop.is_set,
                scratch=self.root / MODELS_FOLDER / f".training-{training_id}",
            )
        except TrainingStopped:
            self.report(training_id, status="failed", finished_at=time.time(), error=STOPPED)
            return
        except RealtimeError as exc:
            self.report(training_id, status="failed", finished_at=time.time(), error=str(exc))
            return
        finally:
            shutil.rmtree(self.root / MODELS_FOLDER / f".training-{training_id}", ignore_errors=True)
        self.report(
            training_id,
            status="done",
            finished_at=time.time(),
            phase="done",
            progress=100.0,
            model_id=model.id,
            metrics=model.metrics,
        )

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._pending.put(None)
        self._thread.join(timeout=timeout)
        with self._lock:
            updates = list(self._updates.values())
            self._updates.clear()
        for broadcaster in updates:
            broadcaster.close()
        self.store.close()
