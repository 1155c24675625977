"""Checking an uploaded file before it becomes a job: is it a video we can decode?"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import cv2

# Suffixes kept from the client's file name, only as a hint to FFmpeg; the name itself is never used.
VIDEO_SUFFIXES = frozenset(
    {".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".ogv", ".wmv", ".flv", ".3gp", ".ts"}
)


class UploadRejected(Exception):
    """An upload that will not become a job; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class VideoProbe:
    width: int
    height: int
    fps: float
    frame_count: int | None


def safe_suffix(client_filename: str | None) -> str:
    """The suffix of a known video type, else none: nothing else of the client's name survives."""
    suffix = Path(client_filename or "").suffix.lower()
    return suffix if suffix in VIDEO_SUFFIXES else ""


def display_name(client_filename: str | None, longest: int = 120) -> str | None:
    """The client's file name as messages may show it: its last part, no control characters, bounded.

    Only ever shown back as text (the page sets textContent); never a path on this server.
    """
    last = (client_filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    printable = "".join(c for c in last if not unicodedata.category(c).startswith("C")).strip()
    if len(printable) > longest:
        printable = printable[: longest - 1] + "…"
    return printable or None


def probe_video(path: Path) -> VideoProbe:
    """Open the file with the same decoder the pipeline uses and read one frame."""
    if path.stat().st_size == 0:
        raise UploadRejected("the uploaded file is empty (0 bytes) — choose a video file", 400)
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise UploadRejected(
                "the upload is not a video this server can decode — upload an .mp4, .avi, .mov, .mkv or .webm file", 422
            )
        ok, image = cap.read()
        if not ok or image is None:
            raise UploadRejected(
                "the video opened but no frame could be decoded — the file is corrupt or truncated", 422
            )
        # FFmpeg opens a PNG or JPEG as a one-frame stream; a one-frame video file is still a video.
        if cv2.haveImageReader(str(path)) and not cap.grab():
            raise UploadRejected(
                "the upload is a single still image, not a video — upload a video file such as .mp4, .avi or .webm",
                422,
            )
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = cap.get(cv2.CAP_PROP_FPS)
        return VideoProbe(
            width=image.shape[1],
            height=image.shape[0],
            fps=float(fps) if 0 < fps < 1000 else 0.0,
            frame_count=count if count > 0 else None,
        )
    finally:
        cap.release()
