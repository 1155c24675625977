"""Start, kill and restart a real RTSP server (rtsp_server.py beside this file) as a child process.

Used by `realtime benchmark soak` and the RTSP tests. The server runs under Debian's
python3 (GStreamer's RTSP server through python3-gi, which the project's venv cannot
install); REALTIME_GST_PYTHON overrides it.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import SourceError

SERVER_SCRIPT = Path(__file__).resolve().parent / "rtsp_server.py"
GST_PYTHON = os.environ.get("REALTIME_GST_PYTHON", "/usr/bin/python3")
INSTALL_HINT = "install it with `make system-deps` (scripts/install_system_deps.sh)"


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """One server process at a time; `kill` and `start` again keep the same port."""

    def __init__(self, clip: Path, fps: int = 25, size: tuple[int, int] | None = None, port: int = 0) -> None:
        self.clip = Path(clip)
        self.fps = fps
        self.size = size
        self.port = port
        self.url = ""
        self.process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="rtsp_server_", suffix=".log", delete=False)

    def start(self, timeout: float = 30.0) -> str:
        """Start the server and wait for its READY line; returns the stream URL."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the RTSP server is already running")
        self.process = subprocess.Popen(self._command(), stdout=subprocess.PIPE, stderr=self._log, text=True)
        line = self._read_line(timeout)
        if not line.startswith("READY "):
            self.kill()
            log = Path(self._log.name).read_text(errors="replace").strip().splitlines()[-5:]
            raise SourceError(
                f"{type(self).__name__} did not start ({' | '.join(log) or 'no output'}) — {INSTALL_HINT}"
            )
        self.url = line.split()[1]
        self.port = int(self.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])  # kept for restarts
        return self.url

    def _command(self) -> list[str]:
        cmd = [
            GST_PYTHON,
            str(SERVER_SCRIPT),
            "--clip",
            str(self.clip),
            "--port",
            str(self.port),
            "--fps",
            str(self.fps),
        ]
        if self.size:
            cmd += ["--width", str(self.size[0]), "--height", str(self.size[1])]
        return cmd

    def _read_line(self, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.process.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                return ""
        return self.process.stdout.readline().strip()

    def kill(self) -> None:
        """Die like a crashed camera: SIGKILL, no goodbye to clients."""
        self._end(signal.SIGKILL)

    def freeze(self) -> None:
        """Stop the process without closing its sockets: a hung camera."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> int | None:
        """SIGTERM and wait; the server's exit code (0 when it shut down cleanly)."""
        return self._end(signal.SIGTERM)

    def _end(self, sig: int) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        code = self.process.returncode
        self.process = None
        return code

    def close(self) -> None:
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll until predicate() is true or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
