"""The whole pipeline as users run it: `python -m realtime` on real clips, in a subprocess."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from conftest import count_frames, read_events, run_cli, start_cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("clip_fixture", ["weizmann_clip", "exercise_clip"])
def test_every_input_frame_is_written_once(request, tmp_path, random_weights, clip_fixture):
    clip = request.getfixturevalue(clip_fixture)
    out, events = tmp_path / "out.mp4", tmp_path / "events.jsonl"
    proc = run_cli(
        "--source",
        str(clip),
        "--headless",
        "--weights",
        str(random_weights),
        "--output",
        str(out),
        "--events",
        str(events),
    )
    assert proc.returncode == 0, proc.stderr
    n_in = count_frames(clip)
    assert count_frames(out) == n_in
    summary = read_events(events)[-1]
    assert summary["type"] == "summary"
    assert summary["frames_in"] == summary["frames_out"] == n_in
    assert summary["dropped"] == 0


def test_events_parse_and_summary_counts_match(tmp_path, weizmann_clip, random_weights):
    events_path = tmp_path / "events.jsonl"
    proc = run_cli(
        "--source", str(weizmann_clip), "--headless", "--weights", str(random_weights), "--events", str(events_path)
    )
    assert proc.returncode == 0, proc.stderr
    events = read_events(events_path)
    opened, *middle, ended, summary = events
    assert abs(opened.pop("time") - time.time()) < 600  # wall clock, for joining with other logs
    assert opened == {
        "type": "stream",
        "camera": "cam0",
        "status": "opened",
        "source": str(weizmann_clip),
        "fps": 25.0,
        "width": 180,
        "height": 144,
    }
    assert ended["type"] == "stream" and ended["status"] == "ended"
    assert summary["type"] == "summary"
    actions = [e for e in middle if e["type"] == "action"]
    assert actions, "a 3.5 s clip with a person in view must yield at least one label"
    frames = [a["frame"] for a in actions]
    assert frames == sorted(frames)
    for a in actions:
        assert set(a) == {"type", "camera", "t", "frame", "track", "label", "score", "reps", "reps_total"}
        assert 0 <= a["score"] <= 1 and a["t"] == pytest.approx(a["frame"] / 25.0, abs=1e-3)
    # A label appears in the summary exactly when some action event announced it, and it
    # was shown on at most every frame since that announcement.
    assert set(summary["labels"]) == {a["label"] for a in actions}
    first_shown = min(frames)
    assert all(0 < n <= summary["frames_out"] - first_shown for n in summary["labels"].values())
    assert sum(summary["labels"].values()) >= summary["frames_out"] - first_shown
    # The first window needs 31/25 s of poses before any label can exist.
    assert first_shown >= 31
    assert f"{summary['frames_in']} frames in, {summary['frames_out']} out" in proc.stdout


def test_skip_poses_fewer_frames_but_writes_all(tmp_path, weizmann_clip, random_weights):
    out = tmp_path / "out.avi"
    proc = run_cli(
        "--source",
        str(weizmann_clip),
        "--headless",
        "--skip",
        "2",
        "--weights",
        str(random_weights),
        "--output",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert count_frames(out) == count_frames(weizmann_clip)


def test_max_frames_stops_early(tmp_path, exercise_clip):
    out = tmp_path / "out.mp4"
    proc = run_cli("--source", str(exercise_clip), "--headless", "--max-frames", "15", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert count_frames(out) == 15
    assert "stopped by max_frames" in proc.stdout  # not "end": the file had 393 frames


def test_sigterm_mid_file_leaves_a_playable_video(tmp_path, exercise_clip, random_weights):
    out, events_path = tmp_path / "out.mp4", tmp_path / "events.jsonl"
    # --pace plays the 39 s file at its native 10 fps, so SIGTERM surely lands mid-file.
    proc = start_cli(
        "--source", str(exercise_clip), "--headless", "--pace", "--weights", str(random_weights),
        "--output", str(out), "--events", str(events_path), "--flush-events",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (events_path.exists() and events_path.stat().st_size > 0):
            time.sleep(0.2)
        time.sleep(3)  # about 30 frames
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    events = read_events(events_path)
    summary = events[-1]
    assert events[-2]["stopped_by"] == "sigterm"
    assert 0 < summary["frames_out"] < 393
    assert count_frames(out) == summary["frames_out"]
    # Frames between the stages when the stop came count as dropped: the figures add up.
    assert summary["frames_in"] == summary["frames_out"] + summary["dropped"]


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler of its own for SIGTERM (the kernel's SigCgt mask)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def test_sigterm_while_starting_up_ends_the_run_cleanly(tmp_path, exercise_clip, random_weights):
    """A SIGTERM that comes while the models load (before any source is read) is not a hard kill: the
    run ends as after any SIGTERM, with its events and summary."""
    events = tmp_path / "events.jsonl"
    proc = start_cli(
        "--source",
        str(exercise_clip),
        "--headless",
        "--pace",
        "--weights",
        str(random_weights),
        "--events",
        str(events),
    )
    try:
        # As soon as it catches SIGTERM: importing the pipeline and loading the models take a second or more after.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not catches_sigterm(proc.pid):
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped by sigterm" in out and "0 frames in, 0 out, 0 dropped" in out
    log = read_events(events)
    assert [e.get("status") for e in log[:-1]] == ["ended"]  # never opened, nothing read: stopped first
    assert log[0]["stopped_by"] == "sigterm" and "error" not in log[0]
    assert log[-1]["type"] == "summary" and log[-1]["frames_in"] == 0


def test_output_folder_is_created(tmp_path, weizmann_clip):
    out = tmp_path / "deep" / "er" / "out.mp4"
    proc = run_cli("--source", str(weizmann_clip), "--headless", "--max-frames", "5", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert count_frames(out) == 5


@pytest.mark.parametrize(
    "clip, skip, expected",
    [
        ("jack/daria_jack", 0, "JUMPING_JACKS"),
        ("pjump/lena_pjump", 0, "JUMPING"),
        ("wave1/eli_wave1", 0, "WAVING_1HAND"),
        ("wave2/ido_wave2", 0, "WAVING_2HANDS"),
        ("walk/denis_walk", 0, "OTHER"),
        ("bend/ira_bend", 0, "OTHER"),
        ("jack/denis_jack", 1, "JUMPING_JACKS"),
        ("wave2/eli_wave2", 2, "WAVING_2HANDS"),
    ],
)
def test_shipped_weights_label_clips_through_the_real_pipeline(tmp_path, datasets, clip, skip, expected):
    """The shipped model, as users get it: the most-shown label is the clip's class.

    These clips were in the training data (the model ships trained on all of it); the
    judgement on unseen people is `realtime evaluate`'s cross-validation (weights/MODEL_CARD.md).
    """
    events_path = tmp_path / "events.jsonl"
    proc = run_cli(
        "--source",
        str(datasets / "weizmann" / f"{clip}.avi"),
        "--headless",
        "--skip",
        str(skip),
        "--events",
        str(events_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", "a run with the shipped weights prints no notice"
    labels = read_events(events_path)[-1]["labels"]
    assert labels, "no label was shown"
    assert max(labels, key=labels.get) == expected, labels


def test_config_outside_the_repository_still_recognises_actions(tmp_path, datasets):
    """A config file elsewhere, run from elsewhere: the shipped weights are found and used."""
    (tmp_path / "c.yaml").write_text("pose:\n  skip: 1\n")
    events = tmp_path / "events.jsonl"
    proc = run_cli(
        "--config",
        "c.yaml",
        "--source",
        str(datasets / "weizmann" / "jack" / "daria_jack.avi"),
        "--headless",
        "--events",
        str(events),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "poses only" not in proc.stderr
    assert [e for e in read_events(events) if e["type"] == "action"], "no action was recognised"


def test_two_cameras_in_one_process(tmp_path, datasets, random_weights):
    """Two named cameras: one video file each in the output folder, every event names its camera,
    and each camera's summary counts its own frames."""
    jack, wave = datasets / "weizmann" / "jack" / "daria_jack.avi", datasets / "weizmann" / "wave2" / "ido_wave2.avi"
    out, events = tmp_path / "videos", tmp_path / "events.jsonl"
    proc = run_cli(
        "--source",
        f"gym={jack}",
        "--source",
        f"hall={wave}",
        "--headless",
        "--weights",
        str(random_weights),
        "--output",
        str(out),
        "--events",
        str(events),
    )
    assert proc.returncode == 0, proc.stderr
    assert count_frames(out / "gym.mp4") == count_frames(jack)
    assert count_frames(out / "hall.mp4") == count_frames(wave)
    all_events = read_events(events)
    assert {e["camera"] for e in all_events} == {"gym", "hall"}
    summaries = {e["camera"]: e for e in all_events if e["type"] == "summary"}
    assert summaries["gym"]["frames_out"] == count_frames(jack)
    assert summaries["hall"]["frames_out"] == count_frames(wave)
    assert {e["camera"] for e in all_events if e["type"] == "action"} == {"gym", "hall"}
    assert "realtime: gym: " in proc.stdout and "realtime: hall: " in proc.stdout


@pytest.mark.mediapipe
def test_weights_trained_on_another_backends_poses_are_flagged(weizmann_clip):
    """The shipped weights learnt MoveNet's joints; a BlazePose run is told what that costs."""
    other = run_cli("--source", str(weizmann_clip), "--headless", "--pose", "blazepose", "--max-frames", "5")
    assert other.returncode == 0, other.stderr
    assert "trained on movenet poses and this run poses with blazepose" in other.stderr
    assert "realtime train --pose blazepose" in other.stderr
    same = run_cli("--source", str(weizmann_clip), "--headless", "--max-frames", "5")
    assert same.returncode == 0 and "trained on" not in same.stderr


@pytest.mark.parametrize("suffix", [".webm", ".mkv"])
def test_other_containers_are_written_whole_and_quietly(tmp_path, weizmann_clip, suffix):
    out = tmp_path / f"out{suffix}"
    proc = run_cli("--source", str(weizmann_clip), "--headless", "--max-frames", "12", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert count_frames(out) == 12
    assert proc.stderr.strip() == ""  # OpenCV's note on the VP8 tag of .webm said nothing a user could act on
