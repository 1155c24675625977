"""Wild clips through the real command line, labelled by a model that never saw their people.

A model is trained by the shipped recipe (`python -m realtime train` on TrainConfig's defaults,
storing the shipped rejection threshold) on all the shared data except the subjects of the clips
below, posed with the pipeline's default backend. It is the validated model, capped at 13 epochs
(see the fixture): the shipped weights add `--all`, a refit on the validation subjects too, which
CI has no time for (about 1.5 min) and which cannot bring the clips' people back in. Then each clip runs
through `python -m realtime --source CLIP --headless --events F --weights W` and the label
shown on the most frames (the summary event's `labels`) must be the clip's class.

Training takes minutes (and posing the videos, the first time, more), so the model is kept
in cache/models/ under a key made of everything it depends on: the training flags, the
backend, and the code and label files that shape training. Delete that folder to retrain.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conftest import REPO, read_events, run_cli

# (clip, class, its subject in wild_dev/SOURCES.md)
CLIPS = [
    pytest.param(
        "JUMPING_JACKS/ahmedlila_studio_jj.mp4",
        "JUMPING_JACKS",
        "ahmedlila_man",
        # A regression of the waist-up recipe (issue 28): the model that never saw him splits his jacks
        # between JUMPING_JACKS (0.3-0.8) and BOXING (0.15-0.55), so at the shipped 0.7 they are OTHER.
        # Training is deterministic, so this is strict: it fails once the clip is right again.
        marks=pytest.mark.xfail(strict=True, reason="known miss since issue 28: portrait studio jacks as OTHER"),
    ),
    pytest.param(
        "BOXING/muneeb_webcam_jabs.mp4",
        "BOXING",
        "muneeb_man",
        # A seated webcam boxer, half the body out of frame, was OTHER on every frame for a model that
        # never saw him (issue 13); since waist-up windows (issue 28) it is not settled either way.
        marks=pytest.mark.xfail(strict=False, reason="known weak case: seated webcam jabs, waist up"),
    ),
    ("OTHER/treadtv_trunk_twist.mp4", "OTHER", "treadtv_ibbu"),
    ("OTHER/akshay_yoga_seated.mp4", "OTHER", "akshay_yoga_woman"),
]
# A pytest.param unpacks as (values, marks, id), so the subjects are read from its values.
CLIP_SUBJECTS = [(clip.values if hasattr(clip, "values") else clip)[2] for clip in CLIPS]
MODEL_CACHE = REPO / "cache" / "models"
NON_COMMERCIAL = ["vibe_boxer", "vibe_dancers"]  # wild_dev subjects whose clips may not train shipped weights
# What the cached model depends on besides its data: a change to any of these retrains it.
TRAINING_CODE = [
    "realtime/features.py",
    "realtime/training.py",
    "realtime/early_stopping.py",
    "realtime/commands/train.py",
    "realtime/commands/training_args.py",
    "realtime/classifier.py",
    "realtime/augment.py",
    "realtime/datasets/labels.yaml",
    "realtime/datasets/labelled_person.py",
    "realtime/tracker.py",
]


def _data_args(datasets: Path) -> list[str]:
    return [
        "--data",
        f"videos:{datasets / 'weizmann'}",
        "--data",
        f"kth:{datasets / 'kth_pose' / 'kth_pose_persons16-20.csv'}",
        "--data",
        f"kth:{datasets / 'kth_pose' / 'kth_pose_persons21-23.csv'}",
        "--data",
        f"wild:{datasets / 'wild_dev'}",
        "--data",
        f"openpose:{datasets / 'openpose_chenge' / 'skeleton_raw.csv'}",
    ]


@pytest.fixture(scope="module")
def weights_without_clip_subjects(datasets) -> Path:
    from realtime.classifier import load_checkpoint
    from realtime.config import DEFAULT_WEIGHTS
    from realtime.datasets import default_pose_backend

    excluded = sorted(set(CLIP_SUBJECTS))
    threshold = load_checkpoint(DEFAULT_WEIGHTS).threshold
    # As the shipped weights (without their refit): validate, keep the shipped threshold. Today
    # the validation run keeps epoch 9 and would stop at 15 (patience 6); the cap drops the last
    # epochs, which only confirm it (the kept epoch comes before them, so its weights are the
    # same, in less time). Should a change move the best epoch past it, the model is a capped
    # one, still blind to the clips' people.
    # The shipped recipe also leaves out the two clips whose licence allows evaluation only.
    recipe = [
        "--exclude",
        ",".join([*excluded, *NON_COMMERCIAL]),
        "--threshold",
        str(threshold),
        "--threads",
        "2",
        "--epochs",
        "13",
    ]
    key = hashlib.sha256()
    key.update(f"{recipe}{default_pose_backend()}".encode())
    for name in TRAINING_CODE:
        key.update((REPO / name).read_bytes())
    path = MODEL_CACHE / f"without-{'-'.join(excluded)}-{key.hexdigest()[:12]}.pt"
    if not path.is_file():
        proc = run_cli(
            "train",
            *_data_args(datasets),
            *recipe,
            "--quiet",
            "--out",
            str(path),
            "--runs",
            str(MODEL_CACHE / "runs"),
            timeout=3600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    return path


@pytest.mark.slow
@pytest.mark.training
@pytest.mark.timeout(4000)
@pytest.mark.parametrize("clip, expected, subject", CLIPS)
def test_wild_clip_gets_its_label_from_a_model_that_never_saw_its_person(
    datasets, tmp_path, weights_without_clip_subjects, clip, expected, subject
):
    from realtime.classifier import load_checkpoint

    assert subject in load_checkpoint(weights_without_clip_subjects).info["excluded_subjects"]
    events_path = tmp_path / "events.jsonl"
    proc = run_cli(
        "--source",
        str(datasets / "wild_dev" / clip),
        "--headless",
        "--events",
        str(events_path),
        "--weights",
        str(weights_without_clip_subjects),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    labels = read_events(events_path)[-1]["labels"]
    assert labels, "no label was shown"
    assert max(labels, key=labels.get) == expected, labels
