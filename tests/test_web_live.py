"""The live view: MJPEG and labels from a running pipeline, and no waiting on slow viewers."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from realtime.types import FrameRecord
from realtime.web.live import LiveViewServer, parse_address

from conftest import REPO, read_frames


def read_mjpeg_parts(response: http.client.HTTPResponse, count: int) -> list[tuple[int, bytes]]:
    """(frame index, JPEG bytes) of the next `count` parts of a multipart/x-mixed-replace body."""
    parts = []
    while len(parts) < count:
        line = response.readline()
        if not line:
            break
        if line.strip() != b"--frame":
            continue
        headers = {}
        while (line := response.readline().strip()):
            key, _, value = line.decode().partition(":")
            headers[key.strip().lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        body = response.read(int(headers["content-length"]))
        parts.append((int(headers["x-frame-index"]), body))
    return parts


@pytest.mark.slow
def test_live_view_serves_annotated_frames_from_a_running_pipeline(weizmann_clip, tmp_path):
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "realtime", "--source", str(weizmann_clip), "--headless",
                             "--pace", "--serve", "127.0.0.1:0", "--events", str(events)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in proc.stderr:
            if (match := re.search(r"live view on http://127\.0\.0\.1:(\d+)/", line)):
                port = int(match.group(1))
                break
        assert port, "the live view never announced its address"
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
        assert 'src="/stream.mjpg"' in page

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/stream.mjpg")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
        parts = read_mjpeg_parts(response, 12)
        conn.close()

        labels = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        labels.request("GET", "/labels")
        label_response = labels.getresponse()
        assert label_response.getheader("Content-Type").startswith("text/event-stream")
        while not (line := label_response.readline().decode()).startswith("data: "):
            pass
        state = json.loads(line[len("data: "):])
        labels.close()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert len(parts) == 12
    indices = [index for index, _ in parts]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    original = read_frames(weizmann_clip)
    for index, jpeg in parts:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == original[index].shape
        diff = np.abs(image.astype(int) - original[index].astype(int))
        assert diff[:14].mean() > 20, "the HUD is missing: the frame was not annotated"
        # The person's skeleton is drawn too: beyond JPEG noise, pixels below the HUD changed.
        assert (diff[20:].max(axis=2) > 100).sum() > 30, "no skeleton drawn"
    assert state["frame"] >= 0 and state["people"] and state["people"][0]["track"] >= 1
    assert any(e.get("type") == "summary" and e["frames_out"] == 89 for e in map(json.loads, events.read_text().splitlines()))


def noise_record(index: int, rng: np.random.Generator) -> FrameRecord:
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)  # incompressible: ~400 kB per JPEG
    cv2.putText(image, str(index), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
    return FrameRecord("cam0", index, time.monotonic(), image, annotated=image)


def test_a_stalled_viewer_never_blocks_the_pipeline():
    live = LiveViewServer("127.0.0.1", 0)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        stalled.connect(("127.0.0.1", live.port))
        stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # ...and never reads
        deadline = time.monotonic() + 5
        while live.frames.subscriber_count == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert live.frames.subscriber_count == 1

        rng = np.random.default_rng(0)
        records = [noise_record(i, rng) for i in range(200)]  # ~80 MB of JPEG: far beyond any socket buffer
        writer = threading.Thread(target=lambda: [live.write(record) or time.sleep(0.002) for record in records])
        writer.start()
        writer.join(timeout=30)
        assert not writer.is_alive(), "write() blocked on a viewer that reads nothing"

        deadline = time.monotonic() + 5
        latest = None
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{live.port}/frame.jpg", timeout=5) as reply:
                latest = int(reply.headers["X-Frame-Index"])
            if latest == 199:
                break
            time.sleep(0.05)
        assert latest == 199, "a fresh viewer does not get the newest frame"
        assert live.frames.dropped > 0  # the stalled viewer's frames were replaced, not queued
    finally:
        stalled.close()
        t0 = time.monotonic()
        live.close()
    assert time.monotonic() - t0 < 10


def test_live_view_stops_when_closed():
    live = LiveViewServer("127.0.0.1", 0)
    port = live.port
    live.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_serve_address_parsing():
    assert parse_address("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert parse_address("8001") == ("127.0.0.1", 8001)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("localhost", "1.2.3.4:port", "host:99999"):
        with pytest.raises(Exception, match="HOST:PORT"):
            parse_address(bad)
