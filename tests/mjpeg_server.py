"""An HTTP MJPEG camera for the tests: multipart/x-mixed-replace JPEGs of a looping clip.

    python tests/mjpeg_server.py --clip ../shared/datasets/videos/exercise.avi [--port 0] [--fps 25]

Binds 127.0.0.1; prints `READY http://127.0.0.1:PORT/stream.mjpg` when clients may connect.
"""

from __future__ import annotations

import argparse
import http.server
import signal
import sys
import time

import cv2


def load_jpegs(clip: str) -> list[bytes]:
    cap = cv2.VideoCapture(clip)
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", image)[1].tobytes())
    cap.release()
    if not frames:
        raise SystemExit(f"mjpeg_server: cannot decode {clip}")
    return frames


def handler_for(frames: list[bytes], fps: float) -> type[http.server.BaseHTTPRequestHandler]:
    class MjpegHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            n, t_next = 0, time.monotonic()
            try:
                while True:
                    jpeg = frames[n % len(frames)]
                    self.wfile.write(
                        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                        + str(len(jpeg)).encode()
                        + b"\r\n\r\n"
                        + jpeg
                        + b"\r\n"
                    )
                    n += 1
                    t_next += 1.0 / fps
                    time.sleep(max(0.0, t_next - time.monotonic()))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away

        def log_message(self, *args) -> None:
            pass

    return MjpegHandler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fps", type=float, default=25.0)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(load_jpegs(args.clip), args.fps))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"READY http://127.0.0.1:{server.server_address[1]}/stream.mjpg", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
