"""Repetition counting on real clips: the counter alone on cached MoveNet poses, and the whole
pipeline (real MoveNet, tracker, classify stage, events) on real and tiled real videos.

True counts were taken from the frames (realtime/bench/reps_truth.yaml says how): a repetition is a
completed cycle whose turning point (arms overhead, the top of a jump) is inside the clip.
None of these tests depends on the classifier's labels: they read the counts, not the actions.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from clips import write_clip
from conftest import read_events, run_cli
from realtime.bench.clips import read_frames
from realtime.bench.reps import load_truth, posed
from realtime.datasets import DEFAULT_POSE_CACHE
from realtime.features import PoseSequence
from realtime.reps import RepCounter, RepSettings
from realtime.timeline import Timeline

# Taken from the frames (contact sheets, one frame in 4): arms overhead at frames 16, 44 and 72, down
# again after each; the clip starts and ends with the arms down.
DARIA_JACKS = 3
# The hips' tops of 9 jumps, frames 3-114 (each one's rise and fall in the clip).
IRA_PJUMPS = 9
# Arms overhead at frames 30, 60, 90 and 118 of lena_jack's first 127 frames (the tiled clip's length),
# the last one on its way down at the cut; frames 0 and 145 of the full clip are cut tops.
LENA_JACKS_IN_127 = 4


def feed(counter: RepCounter, seq: PoseSequence, every: int = 1) -> RepCounter:
    for i in range(0, len(seq), every):
        counter.add(float(seq.times[i]), seq.keypoints[i], seq.scores[i])
    return counter


@pytest.fixture(scope="module")
def jacks(datasets) -> PoseSequence:
    return posed(datasets, "weizmann/jack/daria_jack.avi", DEFAULT_POSE_CACHE)


def test_truth_file_names_real_clips(datasets):
    repeating, still = load_truth()
    assert len(repeating) >= 20 and len(still) >= 20
    for rel in [*repeating, *still]:
        assert (datasets / rel).is_file(), rel
    assert all(count > 0 for count in repeating.values())


def test_counter_counts_jacks_from_poses_and_skipping_every_second_pose(jacks):
    every = feed(RepCounter(), jacks).count
    assert abs(every.total - DARIA_JACKS) <= 1
    assert every.period_s is not None and 0.9 < every.period_s < 1.4  # one jack every ~1.15 s (29 frames)
    half = feed(RepCounter(), jacks, every=2).count
    assert abs(half.total - every.total) <= 1


def test_standing_still_counts_nothing(datasets):
    # rsc_ropeskip_front: the woman stands with the rope for 6.5 s (frames 0-160) before she skips.
    seq = posed(datasets, "wild_dev/JUMPING/rsc_ropeskip_front.mp4", DEFAULT_POSE_CACHE)
    standing = seq.times < 160 / seq.meta["fps"]
    still = PoseSequence(seq.keypoints[standing], seq.scores[standing], seq.times[standing])
    assert feed(RepCounter(), still).count.total == 0
    assert feed(RepCounter(), seq).count.total >= 10  # and the same person skipping is counted


def test_period_range_is_obeyed(jacks):
    # The jacks repeat every ~1.15 s: outside a 0.25-0.8 s range nothing is counted.
    assert feed(RepCounter(RepSettings(0.25, 0.8)), jacks).count.total == 0


def test_run_ends_when_the_person_stops_and_when_the_action_changes(jacks):
    counter = feed(RepCounter(carry_s=0.0), jacks)
    done = counter.count
    assert done.run == done.total > 0
    # The person holds their last pose for 3 s (more than two periods): the run is over, the total stays.
    t = float(jacks.times[-1])
    for step in range(1, 76):
        counter.add(t + step / 25, jacks.keypoints[-1], jacks.scores[-1])
    assert counter.count.run == 0
    assert counter.count.total == done.total
    assert counter.count.period_s is None
    # A new label starts a new run: nothing carried over with carry_s 0.
    fresh = feed(RepCounter(carry_s=0.0), jacks)
    fresh.set_label("JUMPING_JACKS", 0.0)
    fresh.set_label("OTHER", float(jacks.times[-1]))
    assert fresh.count.run == 0 and fresh.count.total == done.total


def tile_side_by_side(left: list[np.ndarray], right: list[np.ndarray], scale: int = 2) -> list[np.ndarray]:
    """Two real clips next to each other in one frame, as long as the shorter, each enlarged."""
    frames = []
    for a, b in zip(left, right, strict=False):
        both = np.hstack([a, b])
        frames.append(cv2.resize(both, (both.shape[1] * scale, both.shape[0] * scale), interpolation=cv2.INTER_LINEAR))
    return frames


def summary_of(events: list[dict]) -> dict:
    return next(e for e in events if e["type"] == "summary")


@pytest.mark.slow
def test_pipeline_counts_weizmann_jacks(tmp_path, weizmann_clip):
    events_path, timeline = tmp_path / "events.jsonl", tmp_path / "timeline.png"
    result = run_cli(
        "--source", str(weizmann_clip), "--headless", "--events", str(events_path), "--timeline", str(timeline)
    )
    assert result.returncode == 0, result.stderr
    events = read_events(events_path)
    reps = summary_of(events)["reps"]
    assert len(reps) == 1
    (total,) = reps.values()
    assert abs(total - DARIA_JACKS) <= 1
    # Every event about the person carries the count; each repetition is told as it happens.
    about_person = [e for e in events if e["type"] in ("action", "reps")]
    assert about_person and all("reps" in e and "reps_total" in e for e in about_person)
    told = [e["reps_total"] for e in events if e["type"] == "reps"]
    assert told == sorted(told) and told[-1] == total
    # The timeline's bars carry the same repetitions as the summary.
    bars = Timeline.from_events(events).rows[0].segments
    assert sum(bar.reps for bar in bars) == total
    assert timeline.is_file()
    # The printed summary says it too.
    (track,) = reps
    assert f"; repetitions: track {track} {total}" in result.stdout, result.stdout


@pytest.mark.slow
def test_pipeline_counts_two_people_at_different_speeds(tmp_path, datasets):
    weizmann = datasets / "weizmann"
    left = read_frames(weizmann / "jack" / "lena_jack.avi")  # a jack every 1.2 s
    right = read_frames(weizmann / "pjump" / "ira_pjump.avi")  # a jump every 0.55 s
    frames = tile_side_by_side(left, right)
    assert len(frames) == 127
    clip = tmp_path / "two.avi"
    write_clip(clip, frames)
    events_path = tmp_path / "events.jsonl"
    result = run_cli("--source", str(clip), "--headless", "--events", str(events_path))
    assert result.returncode == 0, result.stderr
    events = read_events(events_path)
    reps = {int(track): total for track, total in summary_of(events)["reps"].items()}
    assert len(reps) == 2, reps
    # 4 and 9 are more than two apart, so the smaller count is the jacks' and the larger the jumper's.
    counts = sorted(reps.values())
    assert abs(counts[0] - LENA_JACKS_IN_127) <= 1
    assert abs(counts[1] - IRA_PJUMPS) <= 1


@pytest.mark.slow
def test_pipeline_counts_nothing_for_someone_walking_past(tmp_path, datasets):
    # lena walks across the picture: her steps repeat, but she does not stay in place.
    events_path = tmp_path / "events.jsonl"
    clip = datasets / "weizmann" / "walk" / "lena_walk.avi"
    result = run_cli("--source", str(clip), "--headless", "--events", str(events_path))
    assert result.returncode == 0, result.stderr
    events = read_events(events_path)
    assert summary_of(events)["reps"] == {}
    assert not [e for e in events if e["type"] == "reps"]
    assert "repetitions" not in result.stdout


@pytest.mark.slow
def test_pipeline_skipping_every_second_frame_counts_the_same_within_one(tmp_path, datasets):
    clip = datasets / "weizmann" / "pjump" / "ira_pjump.avi"
    totals = []
    for skip in ("0", "1"):
        events_path = tmp_path / f"events{skip}.jsonl"
        result = run_cli("--source", str(clip), "--headless", "--skip", skip, "--events", str(events_path))
        assert result.returncode == 0, result.stderr
        totals.append(sum(summary_of(read_events(events_path))["reps"].values()))
    assert abs(totals[0] - IRA_PJUMPS) <= 1
    assert abs(totals[1] - totals[0]) <= 1


def test_config_refuses_an_empty_period_range(tmp_path):
    from realtime.config import load_config
    from realtime.errors import ConfigError

    path = tmp_path / "config.yaml"
    path.write_text("reps:\n  min_period_s: 2\n  max_period_s: 1\n")
    with pytest.raises(ConfigError, match=r"reps\.min_period_s"):
        load_config(path)


@pytest.mark.slow
def test_counting_can_be_switched_off(tmp_path, weizmann_clip):
    config = tmp_path / "config.yaml"
    config.write_text("reps:\n  enabled: false\n")
    events_path = tmp_path / "events.jsonl"
    result = run_cli(
        "--config", str(config), "--source", str(weizmann_clip), "--headless", "--events", str(events_path)
    )
    assert result.returncode == 0, result.stderr
    events = read_events(events_path)
    assert summary_of(events)["reps"] == {}
    assert not [e for e in events if "reps" in e and e["type"] != "summary"]


def test_caption_shows_the_runs_count(jacks):
    from realtime.overlay import caption
    from realtime.types import Prediction, RepCount, Track

    track = Track(2, jacks.keypoints[0], jacks.scores[0], np.zeros(4), Prediction("JUMPING_JACKS", 0.97))
    assert caption(track) == "#2 JUMPING_JACKS 0.97"
    counted = feed(RepCounter(), jacks).count
    assert caption(Track(**{**vars(track), "reps": counted})) == f"#2 JUMPING_JACKS 0.97 x{counted.run}"
    assert caption(Track(**{**vars(track), "reps": RepCount(0, 5)})) == "#2 JUMPING_JACKS 0.97"  # no run now
