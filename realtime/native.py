"""Settings for the native libraries (OpenCV/FFmpeg, TensorFlow Lite, glog), applied once.

They are read when those libraries load, so the entry points (`python -m realtime`, the web
app, the tests' conftest) call `configure()` before anything imports cv2 or a pose model.
Values already in the environment win, so a user can turn any of them back up.
"""

from __future__ import annotations

import os

NATIVE_DEFAULTS = {
    # MediaPipe's and LiteRT's start-up chatter (TensorFlow Lite, glog).
    "GLOG_minloglevel": "2",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    # OpenCV's own complaints about bad input: the user gets ours, in one line.
    "OPENCV_LOG_LEVEL": "OFF",
    # FFmpeg's errors (one "connection refused" per reconnect attempt, decoder complaints after
    # a drop) would flood stderr; the stream events say what happened. 16 shows them.
    "OPENCV_FFMPEG_LOGLEVEL": "8",
    # OpenCV 4.11 ignores this variable through an inverted check (fixed upstream in PR #26793),
    # but FFmpeg tries UDP first when it is unset, so RTSP goes over TCP with it set.
    "OPENCV_FFMPEG_CAPTURE_OPTIONS": "rtsp_transport;tcp",
    # One inference thread per pose model: the pool runs one model per core.
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
}


def configure() -> None:
    for name, value in NATIVE_DEFAULTS.items():
        os.environ.setdefault(name, value)
