"""`python -m realtime --source URL --serve HOST:PORT`: the annotated stream in a browser.

A FrameSink for the pipeline. write() only swaps the newest frame into a one-slot
queue and returns: an encoder thread makes the JPEG (only while someone watches) and
hands it to every viewer's one-slot inbox, so a slow viewer loses frames, never the
pipeline time. Pages: / (the stream and the current labels), /stream.mjpg
(multipart/x-mixed-replace), /labels (Server-Sent Events), /frame.jpg (the latest frame).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from dataclasses import dataclass
from typing import Iterator

from ..capture import BufferPolicy, FrameQueue  # first: it sets FFmpeg's log level before cv2 loads
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from flask import Flask, Response, render_template  # noqa: E402
from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

from ..errors import ConfigError, RealtimeError  # noqa: E402
from ..stats import RateMeter  # noqa: E402
from ..types import FrameResult  # noqa: E402
from .broadcast import Broadcaster  # noqa: E402

BOUNDARY = "frame"
JPEG_QUALITY = 80
SEND_TIMEOUT_S = 30.0  # a viewer that accepts nothing for this long is disconnected


class LiveViewError(RealtimeError):
    """The live view cannot listen where it was asked to."""


@dataclass(frozen=True)
class LiveFrame:
    index: int
    jpeg: bytes


class _Handler(WSGIRequestHandler):
    # A stalled viewer's send times out instead of holding its thread forever.
    timeout = SEND_TIMEOUT_S

    def log_request(self, *args, **kwargs) -> None:  # one line per MJPEG frame would flood stderr
        pass


def parse_address(address: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or PORT (then 127.0.0.1)."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    host = host or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--serve {address!r} is not HOST:PORT — e.g. --serve 127.0.0.1:8000")
    return host, int(port)


class LiveViewServer:
    """Serves the pipeline's annotated frames and labels over HTTP from daemon threads."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, jpeg_quality: int = JPEG_QUALITY) -> None:
        self.jpeg_quality = jpeg_quality
        self.frames: Broadcaster[LiveFrame] = Broadcaster()
        self.labels: Broadcaster[dict] = Broadcaster()
        self._pending = FrameQueue(1, BufferPolicy.DROP_OLDEST)  # newest (index, image) for the encoder
        self._stop = threading.Event()
        self._rate = RateMeter()
        try:
            self._server = make_server(host, port, create_live_app(self), threaded=True, request_handler=_Handler)
        except OSError as exc:
            raise LiveViewError(f"cannot serve the live view on {host}:{port} ({exc.strerror or exc}) — choose "
                                f"another --serve HOST:PORT") from None
        self.host = host
        self.port = self._server.port
        self._threads = [threading.Thread(target=self._server.serve_forever, name="live-http", daemon=True),
                         threading.Thread(target=self._encode_loop, name="live-jpeg", daemon=True)]
        for thread in self._threads:
            thread.start()

    @classmethod
    def from_address(cls, address: str) -> LiveViewServer:
        server = cls(*parse_address(address))
        print(f"realtime: live view on {server.url}", file=sys.stderr, flush=True)
        return server

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # --- the FrameSink side: called on the pipeline's thread, must never wait ---

    def write(self, image: np.ndarray, result: FrameResult) -> None:
        self._rate.tick()
        self.labels.publish(_labels(result, self._rate.rate()))
        if self.frames.subscriber_count == 0:
            return  # nobody watches: spend nothing on JPEG
        # The overlay drew on this frame's own image and nothing touches it afterwards, so no copy.
        # If the encoder has not taken the last one yet, this one replaces it.
        self._pending.put((result.frame.index, image), self._stop)

    def close(self) -> None:
        self._stop.set()
        self.frames.close()
        self.labels.close()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    # --- the encoder thread ---

    def _encode_loop(self) -> None:
        params = [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
        for index, image in self._pending.items(self._stop):
            ok, buffer = cv2.imencode(".jpg", image, params)
            if ok:
                self.frames.publish(LiveFrame(index, buffer.tobytes()))

    # --- the viewers' threads ---

    def mjpeg_parts(self) -> Iterator[bytes]:
        inbox = self.frames.subscribe()
        try:
            while not self._stop.is_set():
                try:
                    frame = inbox.get(timeout=1.0)
                except queue.Empty:
                    continue
                if frame is None:
                    return
                head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
                        f"X-Frame-Index: {frame.index}\r\n\r\n").encode("ascii")
                yield head + frame.jpeg + b"\r\n"
        finally:
            self.frames.unsubscribe(inbox)

    def label_events(self) -> Iterator[str]:
        inbox = self.labels.subscribe()
        try:
            yield "retry: 1000\n\n"
            while not self._stop.is_set():
                try:
                    labels = inbox.get(timeout=15.0)
                except queue.Empty:
                    yield ": keep-alive\n\n"
                    continue
                if labels is None:
                    return
                yield f"data: {json.dumps(labels)}\n\n"
        finally:
            self.labels.unsubscribe(inbox)

    def latest_jpeg(self, timeout: float = 5.0) -> LiveFrame | None:
        inbox = self.frames.subscribe()
        try:
            return inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        finally:
            self.frames.unsubscribe(inbox)


def _labels(result: FrameResult, fps: float) -> dict:
    people = [{"track": t.track_id,
               "label": t.prediction.label if t.prediction else None,
               "score": round(t.prediction.score, 3) if t.prediction else None}
              for t in result.tracks]
    return {"frame": result.frame.index, "fps": round(fps, 1), "people": people}


def create_live_app(live: LiveViewServer) -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def page():
        return render_template("live.html")

    @app.get("/stream.mjpg")
    def stream():
        return Response(live.mjpeg_parts(), mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                        headers={"Cache-Control": "no-store"})

    @app.get("/labels")
    def labels():
        return Response(live.label_events(), mimetype="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.get("/frame.jpg")
    def frame():
        latest = live.latest_jpeg()
        if latest is None:
            return Response("no frame yet", status=503, mimetype="text/plain")
        return Response(latest.jpeg, mimetype="image/jpeg",
                        headers={"Cache-Control": "no-store", "X-Frame-Index": str(latest.index)})

    return app
