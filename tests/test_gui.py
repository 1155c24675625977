"""The live window for real: an OpenCV window on an Xvfb screen, a screenshot, and q to quit."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO, read_events

pytestmark = [pytest.mark.gui, pytest.mark.slow]

# The overlay's limb colours (BGR), as they must appear on screen.
LEFT_BGR = np.array([0, 140, 255])
RIGHT_BGR = np.array([255, 140, 0])


@pytest.fixture()
def xvfb(tmp_path):
    if shutil.which("Xvfb") is None:
        pytest.fail("Xvfb is missing: run `make system-deps` (make test does)")
    for number in range(90, 120):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            break
    display = f":{number}"
    server = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        assert time.monotonic() < deadline, "Xvfb did not start"
        time.sleep(0.05)
    yield display
    server.terminate()
    server.wait(timeout=10)


def screenshot(display: str, path: Path) -> np.ndarray:
    subprocess.run(
        ["import", "-window", "root", str(path)], env={**os.environ, "DISPLAY": display}, check=True, timeout=30
    )
    image = cv2.imread(str(path))
    assert image is not None
    return image


def colour_pixels(image: np.ndarray, bgr: np.ndarray, tolerance: int = 40) -> int:
    return int((np.abs(image.astype(int) - bgr).max(axis=2) <= tolerance).sum())


def test_live_window_shows_annotated_frames_and_quits_on_q(xvfb, tmp_path, exercise_clip, random_weights):
    events_path = tmp_path / "events.jsonl"
    env = {**os.environ, "DISPLAY": xvfb}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "realtime",
            "--source",
            str(exercise_clip),
            "--pace",
            "--weights",
            str(random_weights),
            "--events",
            str(events_path),
            "--flush-events",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        window = None
        deadline = time.monotonic() + 90
        while window is None and time.monotonic() < deadline:
            found = subprocess.run(
                ["xdotool", "search", "--name", "^realtime$"], env=env, capture_output=True, text=True
            )
            window = found.stdout.split()[0] if found.returncode == 0 and found.stdout.split() else None
            time.sleep(0.3)
        assert window is not None, f"no window appeared: {proc.stderr if proc.poll() is not None else ''}"
        time.sleep(4)  # let a few seconds of annotated frames through
        shot = screenshot(xvfb, tmp_path / "screen.png")

        # The raw video has hardly any of the overlay's pure limb colours; the screen must.
        cap = cv2.VideoCapture(str(exercise_clip))
        raw = cap.read()[1]
        cap.release()
        assert colour_pixels(shot, LEFT_BGR) > 20 + colour_pixels(raw, LEFT_BGR)
        assert colour_pixels(shot, RIGHT_BGR) > 20 + colour_pixels(raw, RIGHT_BGR)
        # The HUD's dark label background sits in the window's top-left corner area.
        assert colour_pixels(shot, np.array([40, 40, 40]), tolerance=3) > 500

        subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, timeout=10)
        subprocess.run(["xdotool", "key", "--window", window, "q"], env=env, timeout=10)
        subprocess.run(["xdotool", "key", "q"], env=env, timeout=10)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    assert proc.returncode == 0, proc.stderr
    events = read_events(events_path)
    assert events[-2]["stopped_by"] == "key"
    assert 0 < events[-1]["frames_out"] < 393


@pytest.mark.parametrize("window_manager", [True, False], ids=["window-manager", "bare-x"])
def test_fullscreen_fills_the_screen(xvfb, tmp_path, exercise_clip, random_weights, window_manager):
    """Kiosk mode: the window covers the screen and the image is scaled to it, also on a bare X
    server (no window manager to honour the fullscreen request), as kiosk boxes often run."""
    env = {**os.environ, "DISPLAY": xvfb}
    manager = (
        subprocess.Popen(
            ["matchbox-window-manager", "-use_titlebar", "no"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if window_manager
        else None
    )
    events_path = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "realtime",
            "--source",
            str(exercise_clip),
            "--pace",
            "--fullscreen",
            "--weights",
            str(random_weights),
            "--events",
            str(events_path),
            "--flush-events",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (events_path.exists() and events_path.stat().st_size > 0):
            time.sleep(0.2)
        time.sleep(4)
        shot = screenshot(xvfb, tmp_path / "fullscreen.png")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        for p in (proc, manager):
            if p is not None and p.poll() is None:
                p.kill()
    assert proc.returncode == 0, proc.stderr
    # The 384x288 clip, letterboxed to 1280x720, spans the full height: video pixels (not black,
    # not the toolkit's grey) reach the top and bottom rows and most of the width in between.
    assert shot.shape[:2] == (720, 1280)
    video = np.abs(shot.astype(int) - shot[:, :, :1]).max(axis=2) > 25  # coloured, not grey or black
    rows = np.flatnonzero(video.any(axis=1))
    cols = np.flatnonzero(video.any(axis=0))
    assert rows.min() < 40 and rows.max() > 680
    assert cols.max() - cols.min() > 900
    assert colour_pixels(shot, LEFT_BGR) > 100  # the skeleton is drawn, and scaled up with the image
