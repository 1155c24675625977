"""Which of the people posed in a labelled clip is the one the label is about.

A clip's label names one person, but a multi-person pose model also finds bystanders
(two wild_dev clips have people in the background) and now and then a ghost. Training on
them would teach the classifier that a seated onlooker is BOXING.

The rule: follow everyone with the project's tracker; in each posed frame the *main*
person is the largest one (area of the box around their confident joints). The track
that is the main person on the most frames is the labelled person. A track that is main on
at least `MIN_MAIN_SHARE` of the frames and never shares a frame with a track already
chosen is kept too: it is the same person after the tracker lost them, or the next
performer after a scene cut (wild_dev's Leap Fitness clips alternate a woman and a man).
A track seen at the same time as a chosen one is a bystander and is dropped, whatever
its size later.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..types import NUM_KEYPOINTS, Poses

# A track must be the main person on at least this share of the posed frames to be kept
# besides the first: shorter ones are flickers of a bystander when the main person is lost.
MIN_MAIN_SHARE = 0.1


@dataclass
class PersonTrack:
    """One tracked person: the posed frames it was seen on and its poses there."""

    track_id: int
    frames: list[int]
    keypoints: list[np.ndarray]
    scores: list[np.ndarray]
    areas: list[float]


def track_people(frames: list[Poses], times: np.ndarray) -> dict[int, PersonTrack]:
    """Follow the people of successive posed frames with the pipeline's own tracker."""
    from ..tracker import Tracker

    tracker = Tracker()
    people: dict[int, PersonTrack] = {}
    for index, (poses, t) in enumerate(zip(frames, times, strict=False)):
        tracks, _ = tracker.update(poses, float(t))
        for track in tracks:
            box = np.asarray(track.box, np.float32)
            area = float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))
            person = people.setdefault(track.track_id, PersonTrack(track.track_id, [], [], [], []))
            person.frames.append(index)
            person.keypoints.append(np.asarray(track.keypoints, np.float32))
            person.scores.append(np.asarray(track.scores, np.float32))
            person.areas.append(area)
    return people


def choose_tracks(people: dict[int, PersonTrack], min_share: float = MIN_MAIN_SHARE) -> list[int]:
    """Ids of the labelled person's tracks, by the rule in the module docstring."""
    largest: dict[int, tuple[float, int]] = {}  # frame -> (area, track id) of its main person
    for person in people.values():
        for frame, area in zip(person.frames, person.areas, strict=True):
            if frame not in largest or area > largest[frame][0]:
                largest[frame] = (area, person.track_id)
    main_frames = Counter(track_id for _, track_id in largest.values())
    if not main_frames:
        return []
    posed_frames = len(largest)
    chosen: list[int] = []
    taken: set[int] = set()
    for track_id, count in main_frames.most_common():
        if chosen and count < min_share * posed_frames:
            break
        frames = set(people[track_id].frames)
        if frames & taken:
            continue  # seen beside a chosen track: a bystander
        chosen.append(track_id)
        taken |= frames
    return chosen


def labelled_person(frames: list[Poses], times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The labelled person's keypoints (T,17,2), scores (T,17) and times (T,) from all posed frames.

    The last item says how the choice went: tracks found, tracks kept, frames kept.
    """
    people = track_people(frames, times)
    chosen = choose_tracks(people)
    rows = sorted((frame, track_id, i) for track_id in chosen for i, frame in enumerate(people[track_id].frames))
    kp = np.array([people[track_id].keypoints[i] for _, track_id, i in rows], np.float32)
    sc = np.array([people[track_id].scores[i] for _, track_id, i in rows], np.float32)
    t = np.asarray([times[frame] for frame, _, _ in rows], np.float64)
    info = {
        "tracks": len(people),
        "kept_tracks": len(chosen),
        "kept_frames": len(rows),
        "frames_with_people": sum(1 for p in frames if len(p)),
    }
    return kp.reshape(-1, NUM_KEYPOINTS, 2), sc.reshape(-1, NUM_KEYPOINTS), t, info
