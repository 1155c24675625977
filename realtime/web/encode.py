"""Turning the pipeline's annotated video into one that browsers play.

OpenCV here cannot write H.264, and its mp4v does not play in browsers. Two ways out:
- "h264": the pipeline writes Motion-JPEG (cheap, ~4 ms/frame) and an ffmpeg binary
  transcodes it to H.264 MP4 afterwards (~2 ms/frame). Needs `ffmpeg` on PATH (Debian's
  ffmpeg, or the one imageio-ffmpeg ships).
- "vp8": the pipeline writes VP8 WebM itself (~25 ms/frame on this CPU). Needs nothing else.
"auto" takes h264 when an ffmpeg binary is found.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..recording import find_ffmpeg as find_ffmpeg  # where it lived before; jobs and media import it here

CODECS = ("auto", "h264", "vp8")


@dataclass(frozen=True)
class ResultFormat:
    codec: str  # h264 | vp8
    pipeline_name: str  # what the pipeline writes into the job folder
    result_name: str  # what the browser gets
    mimetype: str
    ffmpeg: str | None = None


MIMETYPES = {".mp4": "video/mp4", ".webm": "video/webm"}


def result_mimetype(path: Path) -> str:
    """A stored result's type, from its name: results outlive the server that chose their format."""
    return MIMETYPES.get(path.suffix.lower(), "application/octet-stream")


class EncoderUnavailable(Exception):
    pass


def choose_format(codec: str = "auto") -> ResultFormat:
    if codec not in CODECS:
        raise EncoderUnavailable(f"video codec must be one of {', '.join(CODECS)}, got {codec!r}")
    ffmpeg = find_ffmpeg() if codec in ("auto", "h264") else None
    if ffmpeg:
        return ResultFormat("h264", "annotated-mjpeg.avi", "annotated.mp4", "video/mp4", ffmpeg)
    if codec == "h264":
        raise EncoderUnavailable(
            "H.264 output needs an ffmpeg binary — install ffmpeg (apt-get install ffmpeg) or use --video-codec vp8"
        )
    return ResultFormat("vp8", "annotated.webm", "annotated.webm", "video/webm")


def finish_result(fmt: ResultFormat, directory: Path, timeout_s: float = 600.0) -> None:
    """Make the browser-playable file from what the pipeline wrote (a no-op for vp8)."""
    if fmt.codec != "h264" or fmt.ffmpeg is None:
        return
    source, target = directory / fmt.pipeline_name, directory / fmt.result_name
    command = [
        fmt.ffmpeg,
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-i",
        str(source),
        # yuv420p with even sides: what every browser's H.264 decoder accepts.
        "-vf",
        "scale=trunc(iw/2)*2:trunc(ih/2)*2",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        "-an",
        str(target),
    ]
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise EncoderUnavailable(f"encoding the result to H.264 took longer than {timeout_s:g} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise EncoderUnavailable(f"ffmpeg could not encode the result to H.264: {last}")
    source.unlink(missing_ok=True)
