"""The shipped model on real footage unlike the studios: waist-up people, two boxers, a one-second clip.

Each clip runs through the real command line (MoveNet, ByteTrack, the shipped classifier) and is
judged from its events, as a user's tool would read them.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import cv2
import pytest

from clips import read_all, write_clip
from conftest import read_events, run_cli

ARM_ACTIONS = {"CLAPPING_HANDS", "WAVING_1HAND", "WAVING_2HANDS", "BOXING"}
WHOLE_BODY = {"JUMPING", "JUMPING_JACKS"}


def frames_per_label_by_track(events: list[dict]) -> dict[int, Counter]:
    """Frames each track showed each label, from its `action` events (a label holds until the next
    one, the person leaving, or the run's last frame)."""
    summary = events[-1]
    assert summary["type"] == "summary", summary
    last_frame = summary["frames_out"] - 1
    changes: dict[int, list[tuple[int, str]]] = {}
    ends: dict[int, int] = {}
    for e in events:
        if e["type"] == "action":
            changes.setdefault(e["track"], []).append((e["frame"], e["label"]))
        elif e["type"] == "person" and e.get("status") == "left":
            ends[e["track"]] = e["frame"]
    shown: dict[int, Counter] = {}
    for track, steps in changes.items():
        counter: Counter = Counter()
        bounds = [frame for frame, _ in steps[1:]] + [ends.get(track, last_frame) + 1]
        for (start, label), stop in zip(steps, bounds, strict=True):
            counter[label] += max(0, stop - start)
        shown[track] = counter
    return shown


def run_clip(clip: Path, tmp_path: Path, *extra: str) -> list[dict]:
    events_path = tmp_path / "events.jsonl"
    proc = run_cli("--source", str(clip), "--headless", "--events", str(events_path), *extra, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return read_events(events_path)


def waist_up_copy(clip: Path, out: Path, keep: float = 0.45, zoom: int = 3) -> Path:
    """The clip as a camera framed at the waist would film it: the top `keep` of each frame (Weizmann's
    people stand in the middle, so that is head to waist), enlarged as a closer camera sees it."""
    frames = read_all(clip)
    height = int(frames[0].shape[0] * keep)
    cut = [cv2.resize(f[:height], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC) for f in frames]
    write_clip(out, cut, fps=25.0)
    return out


@pytest.mark.slow
def test_a_waist_up_clapper_gets_clapping_and_never_a_whole_body_action(datasets, tmp_path):
    events = run_clip(datasets / "wild_dev" / "CLAPPING_HANDS" / "bdmemes_colbert_clap.mp4", tmp_path)
    labels = Counter(events[-1]["labels"])
    assert not WHOLE_BODY & set(labels), labels
    actions = {label: n for label, n in labels.items() if label != "OTHER"}
    assert actions and max(actions, key=actions.get) == "CLAPPING_HANDS", labels


@pytest.mark.slow
def test_jumping_jacks_cut_at_the_waist_are_never_jumping_jacks_and_waving_cut_so_is_still_waving(datasets, tmp_path):
    jacks = run_clip(waist_up_copy(datasets / "weizmann" / "jack" / "lena_jack.avi", tmp_path / "j.avi"), tmp_path)
    jack_labels = jacks[-1]["labels"]
    assert jacks[-1]["people_max"] >= 1
    assert not WHOLE_BODY & set(jack_labels), jack_labels
    wave = run_clip(waist_up_copy(datasets / "weizmann" / "wave2" / "lena_wave2.avi", tmp_path / "w.avi"), tmp_path)
    labels = wave[-1]["labels"]
    assert labels and max(labels, key=labels.get) in ARM_ACTIONS - {"BOXING", "CLAPPING_HANDS"}, labels


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known miss of the shipped model: two boxers sparring side-on get BOXING 0.1-0.3 and are OTHER "
    "(it learnt boxing from shadow boxing facing the camera); strict, so it fails once it passes",
)
def test_two_sparring_boxers_are_two_tracks_both_boxing_on_most_frames(datasets, tmp_path):
    events = run_clip(datasets / "multi" / "compubox_sparring_jab_cross.mp4", tmp_path)
    shown = frames_per_label_by_track(events)
    boxers = [track for track, counts in shown.items() if counts.total() >= 10]
    assert len(boxers) == 2, shown
    for track in boxers:
        counts = shown[track]
        assert counts["BOXING"] > counts.total() / 2, (track, shown)


def run_daria_waving(datasets, tmp_path, frames: int) -> tuple[subprocess.CompletedProcess, dict]:
    """The first `frames` of a 25 fps two-hand wave as a clip of their own, run: the process and its summary."""
    clip = tmp_path / f"first_{frames}.avi"
    write_clip(clip, read_all(datasets / "weizmann" / "wave2" / "daria_wave2.avi")[:frames], fps=25.0)
    events_path = tmp_path / "events.jsonl"
    proc = run_cli("--source", str(clip), "--headless", "--events", str(events_path), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc, read_events(events_path)[-1]


@pytest.mark.slow
def test_a_one_second_clip_is_played_until_one_window_and_gets_its_label(datasets, tmp_path):
    proc, summary = run_daria_waving(datasets, tmp_path, 25)  # 1.0 s
    assert "less than one window" in proc.stderr
    assert summary["frames_in"] >= 50  # played twice: 2 s covers the 1.24 s window
    labels = summary["labels"]
    assert labels and max(labels, key=labels.get) == "WAVING_2HANDS", labels


@pytest.mark.slow
def test_a_clip_under_half_a_window_is_played_once_and_the_log_says_why_it_has_no_label(datasets, tmp_path):
    proc, summary = run_daria_waving(datasets, tmp_path, 10)  # 0.4 s
    assert "lasts 0.40 s, less than half a window (0.62 s): too short to be given an action" in proc.stderr
    assert summary["frames_in"] == 10 and summary["labels"] == {}
