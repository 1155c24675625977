"""Keep native libraries' chatter off the user's terminal.

MediaPipe's TensorFlow Lite and absl/glog write start-up notes straight to file
descriptor 2, from their own threads and at moments Python does not control. The
command line routes fd 2 through a pipe and drops just those lines; everything else,
including our own one-line errors, passes through in order.
"""

from __future__ import annotations

import os
import re
import sys
import threading

NOISE = re.compile(
    r"^(INFO: Created TensorFlow Lite"
    r"|WARNING: All log messages before absl::InitializeLog"
    r"|[IW]\d{4} \d\d:\d\d:\d\d"  # glog/absl info and warning lines, e.g. "W0000 00:00:17..."
    # OpenCV's FFmpeg writer on the VP8 tag of .webm; the file is written right all the same.
    r"|OpenCV: FFMPEG: tag 0x30385056/'VP80' is not supported"
    r")"
)


class NativeLogFilter:
    """Context manager: while active, lines on fd 2 matching NOISE are dropped."""

    def __init__(self) -> None:
        self._saved: int | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> NativeLogFilter:
        if os.environ.get("REALTIME_NATIVE_LOGS"):  # set it to see everything
            return self
        try:
            read_end, write_end = os.pipe()
            self._saved = os.dup(2)
        except OSError:
            return self
        sys.stderr.flush()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._thread = threading.Thread(
            target=self._forward, args=(read_end, self._saved), name="stderr-filter", daemon=True
        )
        self._thread.start()
        return self

    @staticmethod
    def _forward(read_end: int, target: int) -> None:
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            pending = b""
            while True:
                chunk = pipe.read(4096)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not NOISE.match(line.decode("utf-8", "replace")):
                        os.write(target, line + b"\n")
            if pending and not NOISE.match(pending.decode("utf-8", "replace")):
                os.write(target, pending)

    def __exit__(self, *exc: object) -> None:
        if self._saved is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the reader sees EOF
        if self._thread is not None:
            self._thread.join(timeout=5)
        os.close(self._saved)
        self._saved = None
