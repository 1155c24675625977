"""Recordings and events when things go wrong: a full disk, a killed process, frames too small to
record; and what a recording shows (no HUD unless asked).

The full disk is real: a 2 MB tmpfs the test mounts (a loop-mounted ext4 image where tmpfs is not
allowed), filled with a file of zeros to leave a little room. Mounting needs root; without it
these tests skip and say why.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import count_frames, read_frames, run_cli, start_cli
from realtime.errors import OutputError
from realtime.output import OutputStep
from realtime.recording import MIN_SIDE
from realtime.sinks import JsonlWriter, WindowSink, wants_hud
from realtime.types import FrameRecord
from realtime.web.live import LiveViewServer
from test_bad_input import assert_one_line_error

pytestmark = pytest.mark.slow

DISK_BYTES = 2 << 20
HUD_ROWS = 12  # the HUD's strip at the top of a 180x144 frame


def _mount(target: Path) -> list[str] | None:
    """Mount a small filesystem at `target`; the command that unmounts it, or None if none could be made."""
    if os.geteuid() != 0:
        return None
    # huge=never: a kernel that gives tmpfs huge pages (transparent_hugepage_tmpfs=always) would
    # take the whole 2 MB for the first file written, and leave no room to record anything.
    tmpfs = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},huge=never", "tmpfs", str(target)],
        capture_output=True,
        check=False,
    )
    if tmpfs.returncode == 0:
        return ["umount", str(target)]
    image = target.parent / "disk.img"
    with open(image, "wb") as f:
        f.truncate(DISK_BYTES * 2)  # ext4's own tables take some of it
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, check=False)
    loop = subprocess.run(["mount", "-o", "loop", str(image), str(target)], capture_output=True, check=False)
    if made.returncode == 0 and loop.returncode == 0:
        return ["umount", str(target)]
    return None


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    unmount = _mount(disk)
    if unmount is None:
        pytest.skip("cannot mount a small filesystem here (needs root, and tmpfs or loop devices)")
    try:
        yield disk
    finally:
        # Lazily if a file there is still open: a mount left behind breaks pytest's clean-up of old runs.
        if subprocess.run(unmount, capture_output=True, check=False).returncode != 0:
            subprocess.run([*unmount[:1], "-l", *unmount[1:]], capture_output=True, check=False)


def free_space(disk: Path) -> int:
    stats = os.statvfs(disk)
    return stats.f_bavail * stats.f_frsize


def fill(disk: Path, leave: int) -> None:
    """Take all the disk's free space but `leave` bytes."""
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, free_space(disk) - leave))
        f.flush()
        os.fsync(f.fileno())
    # The tests mean "some room left" (to a page or two): a filesystem that took more makes them vacuous.
    assert free_space(disk) >= leave - (8 << 10), f"filling the test disk left {free_space(disk)} bytes, not {leave}"


def parsed_lines(path: Path) -> list[dict]:
    """Every line of a JSON-lines file, each of which must parse."""
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("ffmpeg", [True, False], ids=["ffmpeg", "no-ffmpeg"])
def test_a_full_disk_ends_the_run_in_one_line_keeping_the_video_and_events_so_far(
    small_disk, tmp_path, exercise_clip, random_weights, ffmpeg
):
    fill(small_disk, leave=600_000)  # some seconds of the clip, in either format
    video, events = small_disk / "out.mp4", small_disk / "events.jsonl"
    no_ffmpeg = {"PATH": str(tmp_path)}  # an empty folder: no ffmpeg on it
    proc = run_cli(
        "--source", str(exercise_clip), "--headless", "--weights", str(random_weights),
        "--output", str(video), "--events", str(events),
        env=None if ffmpeg else no_ffmpeg,
    )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    if not ffmpeg:  # said once at the start: where the recording goes instead, and why
        warning = lines.pop(0)
        assert "no ffmpeg found" in warning and "out.mkv" in warning and "install ffmpeg" in warning, warning
        video = video.with_suffix(".mkv")
        assert not (small_disk / "out.mp4").exists()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("realtime: error: no space left on device for ") and str(video) in lines[0]
    assert "stopped by output_error" in proc.stdout
    # Everything written before the disk filled is there: the video plays, every event line parses.
    size = video.stat().st_size if video.exists() else None
    assert count_frames(video) > 10, f"{video} ({size} bytes) plays no frames; the run said: {lines[0]}"
    written = parsed_lines(events)
    assert written and written[0]["type"] == "stream" and written[0]["status"] == "opened"


@pytest.mark.parametrize("flush", [False, True], ids=["batched", "flush-events"])
def test_events_to_a_full_device_are_one_line_not_a_traceback(weizmann_clip, random_weights, flush):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    proc = run_cli(
        "--source", str(weizmann_clip), "--headless", "--weights", str(random_weights),
        "--events", "/dev/full", *(["--flush-events"] if flush else []),
    )  # fmt: skip
    assert_one_line_error(proc, "no space left on device for events /dev/full")


def test_events_up_to_a_full_disk_stay_whole_lines(small_disk):
    """The events writer on its own: a disk that fills part-way through a write keeps whole lines only."""
    fill(small_disk, leave=20_000)
    faults: list[OutputError] = []
    writer = JsonlWriter(small_disk / "events.jsonl", on_fault=faults.append)
    for i in range(2000):  # about 140 kB of events, far more than the room left
        writer.send({"type": "action", "camera": "cam0", "frame": i, "label": "WAVING_2HANDS", "score": 0.9})
    writer.close()
    assert len(faults) == 1 and "no space left on device for events" in str(faults[0])
    kept = parsed_lines(small_disk / "events.jsonl")
    assert 0 < len(kept) < 2000
    assert [e["frame"] for e in kept] == list(range(len(kept)))  # in order, none lost before the end
    assert f"the {len(kept)} events written before it filled are in the file" in str(faults[0])


def children_of(pid: int) -> list[int]:
    """The processes any thread of `pid` started (the recorder's ffmpeg)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def test_a_killed_run_leaves_a_playable_video(tmp_path, exercise_clip, random_weights):
    out = tmp_path / "out.mp4"
    proc = start_cli(
        "--source", str(exercise_clip), "--headless", "--pace", "--weights", str(random_weights), "--output", str(out)
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size > 100_000):
            time.sleep(0.2)
        time.sleep(1)
        assert proc.poll() is None, "the 39 s clip, paced, should still be playing"
        encoders = children_of(proc.pid)
        # The whole lot at once, ffmpeg too, as the OOM killer or a power cut would: nothing gets to finish up.
        for pid in [proc.pid, *encoders]:
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert count_frames(out) > 10
    assert encoders, "the recording should be encoded by an ffmpeg process of its own"


def test_recordings_carry_no_hud_unless_asked(tmp_path, weizmann_clip, random_weights):
    source = read_frames(weizmann_clip, 30)

    def top_strip_change(*flags: str) -> float:
        """How far the recording's top strip (where the HUD goes) differs from the source, on average."""
        out = tmp_path / f"out{''.join(flags)}.mp4"
        proc = run_cli(
            "--source", str(weizmann_clip), "--headless", "--weights", str(random_weights),
            "--max-frames", "30", "--output", str(out), *flags,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        recorded = read_frames(out)
        assert len(recorded) == 30
        pairs = zip(recorded, source, strict=True)
        changes = [np.abs(r[:HUD_ROWS].astype(int) - s[:HUD_ROWS]).mean() for r, s in pairs]
        return float(np.mean(changes))

    assert top_strip_change() < 8, "the recording's top strip should be the scene itself (compression aside)"
    assert top_strip_change("--hud") > 30, "with --hud the strip should be the HUD's dark label and text"


class Kept:
    """A sink that keeps the image it would show, with or without the HUD (as VideoSink and WindowSink pick)."""

    needs_image = True

    def __init__(self, hud: bool) -> None:
        self.hud = hud
        self.images: list[np.ndarray] = []

    def write(self, record: FrameRecord) -> None:
        self.images.append(record.shown(self.hud).copy())

    def close(self) -> None:
        pass


def test_the_live_window_and_page_keep_the_hud_while_the_recording_has_none():
    assert wants_hud(WindowSink) and wants_hud(LiveViewServer)
    recording, live = Kept(hud=False), Kept(hud=True)
    step = OutputStep([recording, live])
    step(FrameRecord("cam0", 0, time.monotonic(), np.zeros((144, 180, 3), np.uint8)))
    assert not recording.images[0].any()  # nobody in view, no HUD: nothing drawn
    assert live.images[0][:HUD_ROWS].any() and not live.images[0][HUD_ROWS + 8 :].any()


def test_a_video_too_small_to_record_is_blamed_on_the_input(tmp_path, random_weights):
    tiny = tmp_path / "in_1x1.avi"
    writer = cv2.VideoWriter(str(tiny), cv2.VideoWriter.fourcc(*"MJPG"), 10, (1, 1))
    for _ in range(10):
        writer.write(np.full((1, 1, 3), 128, np.uint8))
    writer.release()
    out = tmp_path / "o_1x1.mp4"
    proc = run_cli("--source", str(tiny), "--headless", "--weights", str(random_weights), "--output", str(out))
    line = assert_one_line_error(proc, "in_1x1.avi", "1x1 pixels", f"at least {MIN_SIDE}x{MIN_SIDE}")
    assert "o_1x1.mp4" not in line
