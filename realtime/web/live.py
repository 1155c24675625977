"""`python -m realtime --serve HOST:PORT`: every camera's annotated stream and labels in a browser.

A Sink for the pipeline. write() only updates the camera's labels and swaps its newest
frame into that camera's one-slot queue, then returns. Each camera has its own JPEG
encoder thread, which works only while someone watches that camera and hands each JPEG
to every viewer's one-slot inbox: a slow viewer loses frames, never the pipeline's time
nor another camera's frames.

Pages:
  /                        one panel per camera: its stream, its people with label and score
  /stream/<camera>.mjpg    multipart/x-mixed-replace
  /frame/<camera>.jpg      the camera's newest frame
  /labels                  Server-Sent Events: each camera's state (with its `camera`) when it changes
  /stream.mjpg, /frame.jpg the first camera: the single-camera URLs
  /api/events...           the media folder's events, with --media (events_api.py); the page lists them
It carries the upload app's security headers and Host check (security.py).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from flask import Flask, Response, render_template
from flask.typing import ResponseReturnValue

from ..errors import ConfigError
from ..queues import BufferPolicy, FrameQueue
from ..stats import RateMeter
from ..types import FrameRecord
from .broadcast import Broadcaster
from .events_api import EventsSource, register_events_api
from .security import allowed_host_names, harden
from .serving import RequestHandler, bind, serve

log = logging.getLogger("realtime")

BOUNDARY = "frame"
JPEG_QUALITY = 80
SEND_TIMEOUT_S = 30.0  # a viewer that accepts nothing for this long is disconnected
# A browser opens at most 6 connections to one host over HTTP/1.1 and each MJPEG stream holds
# one for good: 4 live streams per page leave room for the labels' SSE and the stills' requests.
LIVE_STREAMS_PER_PAGE = 4
# Labels change per frame per camera (25/s each); a page needs a few updates a second, not 25 x cameras.
LABELS_INTERVAL_S = 0.2


@dataclass(frozen=True)
class LiveFrame:
    camera: str
    index: int
    t_capture: float  # the record's time.monotonic() at the grab: orders frames across reconnects
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


class CameraFeed:
    """One camera's frames: a one-slot hand-off to its own JPEG encoder, and its viewers."""

    def __init__(self, name: str, jpeg_quality: int, stop: threading.Event) -> None:
        self.name = name
        self.frames: Broadcaster[LiveFrame] = Broadcaster()
        self.rate = RateMeter()
        self.encoded = 0  # JPEGs made: none while nobody watches
        self._params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        self._stop = stop
        self._pending: FrameQueue[tuple[int, float, np.ndarray]] = FrameQueue(1, BufferPolicy.DROP_OLDEST)
        # Makes "nobody watched this frame" and a new viewer's subscription one step, so a viewer
        # knows which frames are older than one that went by unencoded (see watch()).
        self._watch_lock = threading.Lock()
        self._unwatched_t = float("-inf")
        self.thread = threading.Thread(target=self._encode_loop, name=f"live-jpeg-{name}", daemon=True)
        self.thread.start()

    def offer(self, record: FrameRecord) -> None:
        """On the pipeline's thread: never waits. The encoder takes the newest frame when it is free."""
        with self._watch_lock:
            if self.frames.subscriber_count == 0:
                self._unwatched_t = record.t_capture  # nobody watches: spend nothing on JPEG
                return
        image = record.shown(hud=True)
        # The overlay drew on this frame's own image and nothing touches it afterwards, so no copy.
        # If the encoder has not taken the last one yet, this one replaces it.
        self._pending.put((record.index, record.t_capture, image), self._stop)

    def watch(self) -> tuple[queue.Queue, float]:
        """A viewer's inbox, and the capture time up to which its frames are stale: the broadcaster
        primes the inbox with the last JPEG made, which may predate frames nobody watched."""
        with self._watch_lock:
            return self.frames.subscribe(), self._unwatched_t

    def close(self) -> None:
        self.frames.close()

    def _encode_loop(self) -> None:
        for item in self._pending.items(self._stop):
            if not isinstance(item, tuple):
                continue  # EndOfStream: nobody sends it here; close() ends the loop through the stop event
            index, t_capture, image = item
            ok, buffer = cv2.imencode(".jpg", image, self._params)
            if ok:
                self.encoded += 1
                self.frames.publish(LiveFrame(self.name, index, t_capture, buffer.tobytes()))


class LiveViewServer:
    """Serves the pipeline's annotated frames and labels, per camera, over HTTP from daemon threads.

    `cameras`: the names in the order the page shows them (the first is /stream.mjpg's).
    Without them, cameras are added as their first frame arrives, in that order.
    """

    needs_image = True
    hud = True  # the live page shows how the pipeline keeps up, as the window does

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        jpeg_quality: int = JPEG_QUALITY,
        allowed_hosts: Iterable[str] = (),
        cameras: Iterable[str] = (),
        media: str | None = None,
        teach_url: str | None = None,
    ) -> None:
        """`allowed_hosts`: host names to answer besides the loopback ones and `host` (see security.py);
        `media`: the media folder whose events the page lists; `teach_url`: the Teach page the live
        page links to (a `serve` of the --models folder)."""
        self.teach_url = teach_url
        names = allowed_host_names(host, allowed_hosts)
        sock = bind(host, port, fix="choose another --serve HOST:PORT")  # before any thread: it may fail
        self.jpeg_quality = jpeg_quality
        self._stop = threading.Event()
        self.events = EventsSource(Path(media) if media else None)
        self._feeds: dict[str, CameraFeed] = {}
        self._feeds_lock = threading.Lock()
        self._any_camera = threading.Event()
        for name in cameras:
            self._add_camera(name)
        # Every camera's latest state, replaced (never changed in place) on each frame: a viewer
        # that missed updates still finds every camera's newest state in the one it takes.
        self._board: dict[str, dict] = {}
        self.labels: Broadcaster[dict[str, dict]] = Broadcaster()
        self._server = serve(create_live_app(self, names), sock, handler=_Handler)
        self.host = host
        self.port = self._server.port
        self._http = threading.Thread(target=self._server.serve_forever, name="live-http", daemon=True)
        self._http.start()

    @classmethod
    def from_address(
        cls,
        address: str,
        allowed_hosts: Iterable[str] = (),
        cameras: Iterable[str] = (),
        media: str | None = None,
        teach_url: str | None = None,
    ) -> LiveViewServer:
        server = cls(
            *parse_address(address), allowed_hosts=allowed_hosts, cameras=cameras, media=media, teach_url=teach_url
        )
        log.info("live view on %s", server.url)
        return server

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def cameras(self) -> list[str]:
        with self._feeds_lock:
            return list(self._feeds)

    def feed(self, camera: str) -> CameraFeed | None:
        with self._feeds_lock:
            return self._feeds.get(camera)

    def _add_camera(self, name: str) -> CameraFeed:
        with self._feeds_lock:
            feed = self._feeds.get(name)
            if feed is None:
                feed = self._feeds[name] = CameraFeed(name, self.jpeg_quality, self._stop)
        self._any_camera.set()
        return feed

    def first_feed(self, timeout: float | None = None) -> CameraFeed | None:
        """The first camera, once there is one (None if the server stops or `timeout` passes first)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait < 0:
                return None
            if self._any_camera.wait(wait):
                with self._feeds_lock:
                    return next(iter(self._feeds.values()))
        return None

    # --- the Sink side: called on the pipeline's thread, must never wait ---

    def write(self, record: FrameRecord) -> None:
        if self._stop.is_set():
            return
        feed = self.feed(record.camera) or self._add_camera(record.camera)
        feed.rate.tick()
        self._board = {**self._board, record.camera: _labels(record, feed.rate.rate())}
        self.labels.publish(self._board)
        feed.offer(record)

    def close(self) -> None:
        self._stop.set()
        with self._feeds_lock:
            feeds = list(self._feeds.values())
        for feed in feeds:
            feed.close()
        self.labels.close()
        self._server.shutdown()
        self._server.server_close()
        for thread in [self._http, *(feed.thread for feed in feeds)]:
            thread.join(timeout=5)
        self.events.close()

    # --- the viewers' threads ---

    def frames_of(self, feed: CameraFeed, timeout: float | None = None) -> Iterator[LiveFrame]:
        """The camera's frames as they are encoded, newest first after a wait; ends with the server,
        or when none comes within `timeout`."""
        inbox, stale_until = feed.watch()
        try:
            while not self._stop.is_set():
                try:
                    frame = inbox.get(timeout=1.0 if timeout is None else timeout)
                except queue.Empty:
                    if timeout is None:
                        continue
                    return
                if frame is None:
                    return
                if frame.t_capture > stale_until:
                    yield frame
        finally:
            feed.frames.unsubscribe(inbox)

    def mjpeg_parts(self, feed: CameraFeed) -> Iterator[bytes]:
        for frame in self.frames_of(feed):
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
                f"X-Camera: {frame.camera}\r\nX-Frame-Index: {frame.index}\r\n\r\n"
            ).encode("ascii")
            yield head + frame.jpeg + b"\r\n"

    def latest_jpeg(self, feed: CameraFeed, timeout: float = 5.0) -> LiveFrame | None:
        return next(self.frames_of(feed, timeout), None)

    def label_events(self) -> Iterator[str]:
        inbox = self.labels.subscribe()
        sent: dict[str, dict] = {}
        try:
            yield "retry: 1000\n\n"
            while not self._stop.is_set():
                try:
                    board = inbox.get(timeout=15.0)
                except queue.Empty:
                    yield ": keep-alive\n\n"
                    continue
                if board is None:
                    return
                changed = [state for camera, state in board.items() if sent.get(camera) is not state]
                sent.update(board)
                yield "".join(f"data: {json.dumps(state)}\n\n" for state in changed)
                self._stop.wait(LABELS_INTERVAL_S)  # the next board taken holds every change made meanwhile
        finally:
            self.labels.unsubscribe(inbox)


def _labels(record: FrameRecord, fps: float) -> dict:
    people = [
        {
            "track": t.track_id,
            "label": t.prediction.label if t.prediction else None,
            "score": round(t.prediction.score, 3) if t.prediction else None,
            "model": t.prediction.model if t.prediction else None,
            "reps": t.reps.run if t.reps else 0,  # this run's repetitions
        }
        for t in record.tracks
    ]
    return {"camera": record.camera, "frame": record.index, "fps": round(fps, 1), "people": people}


def create_live_app(live: LiveViewServer, allowed_hosts: frozenset[str]) -> Flask:
    app = Flask(__name__)
    harden(app, allowed_hosts)

    def unknown(camera: str) -> Response:
        known = ", ".join(live.cameras) or "none yet"
        return Response(f"no camera {camera!r} — cameras: {known}", status=404, mimetype="text/plain")

    def stream_of(feed: CameraFeed | None) -> Response:
        return Response(
            live.mjpeg_parts(feed) if feed else iter(()),
            mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            headers={"Cache-Control": "no-store"},
        )

    def frame_of(feed: CameraFeed | None) -> Response:
        latest = live.latest_jpeg(feed) if feed else None
        if latest is None:
            return Response("no new frame within 5 s", status=503, mimetype="text/plain")
        return Response(
            latest.jpeg,
            mimetype="image/jpeg",
            headers={"Cache-Control": "no-store", "X-Camera": latest.camera, "X-Frame-Index": str(latest.index)},
        )

    @app.get("/")
    def page() -> ResponseReturnValue:
        return render_template(
            "live.html",
            cameras=live.cameras,
            live_streams=LIVE_STREAMS_PER_PAGE,
            events=live.events.enabled,
            teach_url=live.teach_url,
        )

    @app.get("/stream.mjpg")
    def stream() -> ResponseReturnValue:
        return stream_of(live.first_feed())

    @app.get("/stream/<camera>.mjpg")
    def camera_stream(camera: str) -> ResponseReturnValue:
        feed = live.feed(camera)
        return stream_of(feed) if feed else unknown(camera)

    @app.get("/frame.jpg")
    def frame() -> ResponseReturnValue:
        return frame_of(live.first_feed(timeout=5.0))

    @app.get("/frame/<camera>.jpg")
    def camera_frame(camera: str) -> ResponseReturnValue:
        feed = live.feed(camera)
        return frame_of(feed) if feed else unknown(camera)

    register_events_api(app, lambda: live.events)

    @app.get("/labels")
    def labels() -> ResponseReturnValue:
        return Response(live.label_events(), mimetype="text/event-stream", headers={"Cache-Control": "no-store"})

    return app
