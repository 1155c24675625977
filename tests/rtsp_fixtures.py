"""Stream servers for the tests: the RTSP server (from realtime.bench, which the soak run uses too)
and an HTTP MJPEG server (tests/mjpeg_server.py), each a real child process."""

from __future__ import annotations

import sys
from pathlib import Path

from realtime.bench.rtsp import RtspServer, free_port, wait_for

__all__ = ["MjpegServer", "RtspServer", "free_port", "wait_for"]

MJPEG_SCRIPT = Path(__file__).resolve().parent / "mjpeg_server.py"


class MjpegServer(RtspServer):
    """tests/mjpeg_server.py: HTTP multipart MJPEG of a clip. Its own process: OpenCV holds the
    GIL while opening a capture, so a server thread in the reader's process would stall."""

    def _command(self) -> list[str]:
        return [
            sys.executable,
            str(MJPEG_SCRIPT),
            "--clip",
            str(self.clip),
            "--port",
            str(self.port),
            "--fps",
            str(self.fps),
        ]
