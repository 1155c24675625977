"""`python -m realtime --source URL --serve HOST:PORT`: the annotated stream in a browser.

A Sink for the pipeline. write() only swaps the newest frame into a one-slot
queue and returns: an encoder thread makes the JPEG (only while someone watches) and
hands it to every viewer's one-slot inbox, so a slow viewer loses frames, never the
pipeline time. Pages: / (the stream and the current labels), /stream.mjpg
(multipart/x-mixed-replace), /labels (Server-Sent Events), /frame.jpg (the latest frame).
It carries the upload app's security headers and Host check (security.py).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from flask import Flask, Response, render_template

from ..errors import ConfigError
from ..queues import BufferPolicy, FrameQueue
from ..stats import RateMeter
from ..types import FrameRecord
from .broadcast import Broadcaster
from .security import allowed_host_names, harden
from .serving import RequestHandler, bind, serve

BOUNDARY = "frame"
JPEG_QUALITY = 80
SEND_TIMEOUT_S = 30.0  # a viewer that accepts nothing for this long is disconnected


@dataclass(frozen=True)
class LiveFrame:
    index: int
    jpeg: bytes


class _Handler(RequestHandler):
    # A stalled viewer's send times out instead of holding its thread forever.
    timeout = SEND_TIMEOUT_S


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

    def __init__(self, host: str = "127.0.0.1", port: int = 8000, jpeg_quality: int = JPEG_QUALITY,
                 allowed_hosts: Iterable[str] = ()) -> None:
        """`allowed_hosts`: host names to answer besides the loopback ones and `host` (see security.py)."""
        self.jpeg_quality = jpeg_quality
        self.frames: Broadcaster[LiveFrame] = Broadcaster()
        self.labels: Broadcaster[dict] = Broadcaster()
        self._pending: FrameQueue[tuple[int, np.ndarray]] = FrameQueue(1, BufferPolicy.DROP_OLDEST)  # for the encoder
        self._stop = threading.Event()
        self._rate = RateMeter()
        names = allowed_host_names(host, allowed_hosts)
        sock = bind(host, port, fix="choose another --serve HOST:PORT")
        self._server = serve(create_live_app(self, names), sock, handler=_Handler)
        self.host = host
        self.port = self._server.port
        self._threads = [threading.Thread(target=self._server.serve_forever, name="live-http", daemon=True),
                         threading.Thread(target=self._encode_loop, name="live-jpeg", daemon=True)]
        for thread in self._threads:
            thread.start()

    @classmethod
    def from_address(cls, address: str, allowed_hosts: Iterable[str] = ()) -> LiveViewServer:
        server = cls(*parse_address(address), allowed_hosts=allowed_hosts)
        print(f"realtime: live view on {server.url}", file=sys.stderr, flush=True)
        return server

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # --- the Sink side: called on the pipeline's thread, must never wait ---

    def write(self, record: FrameRecord) -> None:
        self._rate.tick()
        self.labels.publish(_labels(record, self._rate.rate()))
        if self.frames.subscriber_count == 0:
            return  # nobody watches: spend nothing on JPEG
        image = record.annotated if record.annotated is not None else record.image
        # The overlay drew on this frame's own image and nothing touches it afterwards, so no copy.
        # If the encoder has not taken the last one yet, this one replaces it.
        self._pending.put((record.index, image), self._stop)

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
        for item in self._pending.items(self._stop):
            if not isinstance(item, tuple):
                continue  # EndOfStream: nobody sends it here; close() ends the loop through _stop
            index, image = item
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


def _labels(record: FrameRecord, fps: float) -> dict:
    people = [{"track": t.track_id,
               "label": t.prediction.label if t.prediction else None,
               "score": round(t.prediction.score, 3) if t.prediction else None}
              for t in record.tracks]
    return {"frame": record.index, "fps": round(fps, 1), "people": people}


def create_live_app(live: LiveViewServer, allowed_hosts: frozenset[str]) -> Flask:
    app = Flask(__name__)
    harden(app, allowed_hosts)

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
