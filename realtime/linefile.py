"""A file written line by line from a thread of its own, that only ever holds whole lines.

Lines reach the file as they come, one write per batch (whatever queued while the last write
ran), so a crash or a full disk loses at most the lines still queued. A write the disk cut
short is cut back to its last whole line: every line in the file parses.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from .queues import put_unless_failed

# Lines waiting for the disk, at most; beyond, `put` waits (a slow disk, not a lost event).
QUEUE_LINES = 10_000
BATCH_LINES = 1_000


class LineFile:
    """Appends lines (bytes ending in a newline) to a new file at `path`; `sync` also fsyncs each batch.

    If a write fails, `on_fault` is called once, from the writer's thread, with the OSError, and
    later lines are let go. Opening raises OSError as `open` does.
    """

    def __init__(self, path: Path, on_fault: Callable[[OSError], None], sync: bool = False) -> None:
        self.path = path
        self.sync = sync
        self.on_fault = on_fault
        self.lines = 0  # whole lines in the file
        self._size = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_LINES)
        self._failed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"write-{path.name}", daemon=True)
        self._thread.start()

    def put(self, line: bytes | None) -> None:
        put_unless_failed(self._queue, line, self._failed)

    def close(self) -> None:
        self.put(None)
        self._thread.join()
        if not self._failed.is_set():
            with contextlib.suppress(OSError):  # the lines were written; a sync that fails loses none of them
                os.fsync(self._fd)
        os.close(self._fd)

    def _run(self) -> None:
        ended = False
        while not ended:
            batch = [self._queue.get()]
            while batch[-1] is not None and len(batch) < BATCH_LINES:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            ended = batch[-1] is None
            data = b"".join(line for line in batch if line is not None)
            try:
                self._write(data)
                if self.sync and data:
                    os.fsync(self._fd)
            except OSError as exc:
                self._failed.set()
                self.on_fault(exc)
                return

    def _write(self, data: bytes) -> None:
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError:
            whole = data.rfind(b"\n", 0, done) + 1  # keep the lines that made it whole, drop a cut one
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size + whole)
            self._size += whole
            self.lines += data.count(b"\n", 0, whole)
            raise
        self._size += len(data)
        self.lines += data.count(b"\n")
