"""`make run` on a machine with no camera or no display plays the shipped demo clip (realtime/demo.py).

No camera devices exist on these machines, so index 0 is really missing; displays are real
environment settings probed for real.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import cv2
import pytest

from conftest import REPO, count_frames, read_events, run_cli
from realtime.demo import DEMO_CLIP, fallback_reason
from test_bad_input import assert_one_line_error


def test_demo_clip_ships_with_its_source():
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) > 300
    cap.release()
    source_note = (DEMO_CLIP.parent / "SOURCE.md").read_text()
    assert "felixchenfy/Realtime-Action-Recognition" in source_note and "MIT" in source_note


def test_only_a_missing_local_camera_or_display_falls_back(monkeypatch, exercise_clip):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert "DISPLAY is not set" in fallback_reason(["0"], headless=False)
    assert fallback_reason(["0"], headless=True) == "no camera at index 0"
    monkeypatch.setenv("DISPLAY", ":97")  # no X server on :97 here
    assert "DISPLAY=:97" in fallback_reason(["0"], headless=False)
    # A file or stream someone configured keeps its own behaviour and errors.
    assert fallback_reason([str(exercise_clip)], headless=False) is None
    assert fallback_reason(["rtsp://127.0.0.1:1/none"], headless=True) is None
    assert fallback_reason(["0", str(exercise_clip)], headless=True) is None


def test_an_explicit_camera_keeps_its_one_line_error(random_weights):
    proc = run_cli("--source", "0", "--headless", "--demo-if-no-camera", "--weights", str(random_weights))
    assert_one_line_error(proc, "no camera at index 0", "use --source FILE or URL")


@pytest.mark.slow
def test_make_run_without_display_plays_the_demo(tmp_path):
    # The make target's own command line (a dry run executes nothing), run from another folder
    # with DISPLAY unset, as on a fresh server.
    dry = subprocess.run(
        ["make", "-n", "-s", "run", f"PY={sys.executable}"], cwd=REPO, capture_output=True, text=True, check=True
    )
    command = shlex.split([line for line in dry.stdout.splitlines() if " -m realtime" in line][-1])
    assert "--demo-if-no-camera" in command
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env["PYTHONPATH"] = str(REPO)  # this checkout, whichever one the environment was installed from
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    notices = [line for line in proc.stderr.splitlines() if "demo clip" in line]
    assert len(notices) == 1 and "DISPLAY is not set" in notices[0], proc.stderr
    assert "into out/" in notices[0], notices[0]
    assert "Traceback" not in proc.stderr

    out = tmp_path / "out"
    assert "out/demo.mp4" in proc.stdout and "next:" in proc.stdout, proc.stdout
    clip = cv2.VideoCapture(str(DEMO_CLIP))
    assert count_frames(out / "demo.mp4") == int(clip.get(cv2.CAP_PROP_FRAME_COUNT))
    clip.release()
    events = read_events(out / "events.jsonl")
    assert {e["type"] for e in events} >= {"stream", "action", "summary"}
    assert max(e["people_max"] for e in events if e["type"] == "summary") == 3
    timeline = cv2.imread(str(out / "timeline.png"))
    assert timeline is not None and timeline.shape[0] > 0

    # `make run ARGS="--output …"` sends the video elsewhere, and the notice says where.
    elsewhere = tmp_path / "elsewhere" / "demo.mp4"
    moved = subprocess.run(
        [*command, "--output", str(elsewhere), "--max-frames", "20"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    assert f"into {elsewhere.parent}/" in moved.stderr and count_frames(elsewhere) == 20, moved.stderr
