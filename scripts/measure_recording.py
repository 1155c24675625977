"""What recording costs per frame, in each format `--output` writes, and what survives a kill.

    PYTHONPATH=. .venv/bin/python scripts/measure_recording.py [--seconds 20] [--size 640x480]

Frames: the real exercise clip (../shared/datasets/videos/exercise.avi) resized and looped. Per
format: the CPU time per frame of the writing thread and of the encoder process (ffmpeg), the
file's size per second, and the frames that decode when the writer (and ffmpeg with it) is
killed with SIGKILL half-way. Figures go to docs/outputs.md by hand.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import signal
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from realtime.datasets import default_root
from realtime.recording import find_ffmpeg, open_encoder, recording_format

FPS = 10.0


def load_frames(size: tuple[int, int], count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(default_root() / "videos" / "exercise.avi"))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    cap.release()
    return [frames[i % len(frames)] for i in range(count)]


def decoded(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def cost(path: Path, frames: list[np.ndarray]) -> dict:
    """CPU per frame: this process's writing thread, plus ffmpeg's (a child) when it encodes."""
    fmt = recording_format(path)
    height, width = frames[0].shape[:2]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.perf_counter(), time.thread_time()
    encoder = open_encoder(fmt, FPS, width, height)
    for image in frames:
        encoder.write(image)
    encoder.close()
    own = time.thread_time() - c0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    wall = time.perf_counter() - t0
    n = len(frames)
    return {
        "format": fmt.describe(),
        "cpu_ms_per_frame": round((own + child) * 1000 / n, 2),
        "wall_ms_per_frame": round(wall * 1000 / n, 2),
        "kb_per_s": round(fmt.path.stat().st_size / 1024 / (n / FPS), 1),
        "decoded": decoded(fmt.path),
    }


def cost_mp4v(path: Path, frames: list[np.ndarray]) -> dict:
    """What --output .mp4 wrote before: OpenCV's MPEG-4 Part 2, indexed only when closed."""
    height, width = frames[0].shape[:2]
    t0, c0 = time.perf_counter(), time.thread_time()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (width, height))
    for image in frames:
        writer.write(image)
    writer.release()
    n = len(frames)
    return {
        "format": "mp4v by OpenCV (before)",
        "cpu_ms_per_frame": round((time.thread_time() - c0) * 1000 / n, 2),
        "wall_ms_per_frame": round((time.perf_counter() - t0) * 1000 / n, 2),
        "kb_per_s": round(path.stat().st_size / 1024 / (n / FPS), 1),
        "decoded": decoded(path),
    }


def _write_until_killed(path: str, frames: list[np.ndarray]) -> None:
    fmt = recording_format(Path(path))
    height, width = frames[0].shape[:2]
    encoder = open_encoder(fmt, FPS, width, height)
    for image in frames:
        encoder.write(image)
        time.sleep(1 / FPS)
    time.sleep(3600)


def survives_kill(path: Path, frames: list[np.ndarray], kill_after_s: float) -> dict:
    """Frames that decode after SIGKILL to the writer and every process of its own (ffmpeg too)."""
    process = multiprocessing.get_context("fork").Process(target=_write_until_killed, args=(str(path), frames))
    process.start()
    time.sleep(kill_after_s)
    sent = int(kill_after_s * FPS)
    children = [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
    for pid in [process.pid, *children]:
        os.kill(pid, signal.SIGKILL)
    process.join()
    time.sleep(0.5)
    fmt = recording_format(path)
    return {"format": fmt.describe(), "sent_about": sent, "decoded_after_kill": decoded(fmt.path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", default="640x480")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = load_frames((width, height), int(args.seconds * FPS))
    print(f"ffmpeg: {find_ffmpeg()}; {len(frames)} frames of {width}x{height} at {FPS:g} fps")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print("cost mp4v.mp4", cost_mp4v(folder / "mp4v.mp4", frames))
        for name in ("out.mp4", "out.mkv", "out.avi", "out.webm"):
            print("cost", name, cost(folder / name, frames))
        for name in ("killed.mp4", "killed.avi"):
            print("kill", name, survives_kill(folder / name, frames, kill_after_s=args.seconds / 2))


if __name__ == "__main__":
    main()
