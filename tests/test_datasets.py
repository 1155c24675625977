"""Loaders on the real files in ../shared/datasets."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from realtime.datasets import DatasetError, load, parse_data_arg
from realtime.datasets.common import OPENPOSE18
from realtime.types import COCO_KEYPOINTS

C = {name: i for i, name in enumerate(COCO_KEYPOINTS)}
FACE = [C[n] for n in ("left_eye", "right_eye", "left_ear", "right_ear")]


def test_mhad_block_maps_openpose_to_coco_and_marks_zero_as_missing(datasets):
    path = datasets / "mhad_format" / "X_window_a.txt"
    raw = np.loadtxt(path, delimiter=",").reshape(32, 18, 2)
    (seq,) = load("mhad", path)
    assert seq.keypoints.shape == (32, 17, 2) and len(seq.times) == 32
    for name in ("nose", "left_shoulder", "right_wrist", "left_ankle", "right_hip"):
        np.testing.assert_allclose(seq.keypoints[:, C[name]], raw[:, OPENPOSE18.index(name)], rtol=1e-5)
    missing = (raw[..., 0] == 0) & (raw[..., 1] == 0)
    assert missing.any(), "fixture should contain 0,0 joints"
    coco_missing = missing[:, [OPENPOSE18.index(n) for n in COCO_KEYPOINTS]]
    np.testing.assert_array_equal(seq.scores == 0, coco_missing)
    assert seq.label is None  # no Y file beside the fixture


def test_mhad_damaged_line_is_reported_not_guessed(datasets):
    path = datasets / "mhad_format" / "X_window_b.txt"
    with pytest.warns(UserWarning, match="line"):
        (seq,) = load("mhad", path)
    assert seq.meta["damaged_lines"] == [1]
    assert seq.scores[0].sum() == 0 and seq.scores[1].sum() > 10
    with pytest.raises(DatasetError, match="36 numbers"):
        load("mhad", path, strict=True)


def test_mhad_labels_from_y_file(datasets, tmp_path):
    x = tmp_path / "X_train.txt"
    shutil.copy(datasets / "mhad_format" / "X_window_a.txt", x)
    (tmp_path / "Y_train.txt").write_text("2\n")
    (seq,) = load("mhad", tmp_path)
    assert seq.label == "JUMPING_JACKS"
    (tmp_path / "Y_train.txt").write_text("1\n1\n")
    with pytest.raises(DatasetError, match="2 labels for 1 blocks"):
        load("mhad", tmp_path)
    (tmp_path / "Y_train.txt").write_text("9\n")
    with pytest.raises(DatasetError, match="not in the 'mhad' section"):
        load("mhad", tmp_path)


def test_kth_has_no_face_joints_and_keeps_people_apart(datasets):
    seqs = load("kth", datasets / "kth_pose" / "kth_pose_persons21-23.csv")
    assert len(seqs) == 72
    assert {s.subject for s in seqs} == {"person21", "person22", "person23"}
    assert {s.label for s in seqs} == {"BOXING", "CLAPPING_HANDS", "WAVING_2HANDS", "OTHER"}
    assert sum(len(s) for s in seqs) == 4845
    for s in seqs:
        assert (s.scores[:, FACE] == 0).all()
        body = [i for i in range(17) if i not in FACE]
        assert (s.scores[:, body] == 1).all()
        np.testing.assert_allclose(np.diff(s.times), 3 / 25)
    walking = next(s for s in seqs if s.meta["action"] == "walking")
    assert walking.label == "OTHER"
    # Normalised coordinates were scaled to KTH's 160x120 pixels.
    assert 20 < np.median(walking.keypoints[:, C["nose"], 0]) < 160


def test_kth_unmapped_action_is_an_error(datasets, tmp_path):
    src = (datasets / "kth_pose" / "kth_pose_persons21-23.csv").read_text().splitlines()
    header, row = src[0], src[1]
    (tmp_path / "k.csv").write_text(header + "\n" + row.replace(",walking,", ",kicking,") + "\n")
    with pytest.raises(DatasetError, match="'kicking' is not in the 'kth' section"):
        load("kth", tmp_path / "k.csv")


def test_openpose_csv_runs_per_class(datasets):
    seqs = load("openpose", datasets / "openpose_chenge" / "skeleton_raw.csv")
    actions = {s.meta["action"] for s in seqs}
    assert "wave" not in actions  # ambiguous one/two-hand waving is left out
    assert {"punch", "stand", "kick", "squat"} <= actions
    assert next(s for s in seqs if s.meta["action"] == "punch").label == "BOXING"
    for s in seqs:
        np.testing.assert_allclose(np.diff(s.times), 0.1)
        assert len(s) > 100
    # OpenPose's 0,0 became score 0, never a joint at the image corner.
    all_kp = np.concatenate([s.keypoints for s in seqs])
    all_sc = np.concatenate([s.scores for s in seqs])
    assert (all_sc == 0).any()
    assert (all_kp[all_sc == 0] == 0).all() and (all_kp[all_sc > 0] > 0).any()


def test_data_argument_errors_name_the_fix(datasets):
    with pytest.raises(DatasetError, match="KIND:PATH"):
        parse_data_arg("weizmann")
    with pytest.raises(DatasetError, match="does not exist"):
        load("kth", datasets / "nope.csv")
    with pytest.raises(DatasetError, match="not a KTH pose CSV"):
        load("kth", datasets / "openpose_chenge" / "skeleton_raw.csv")


@pytest.mark.mediapipe
def test_videos_loader_poses_with_our_backend_and_caches(datasets, tmp_path):
    from realtime.datasets.videos import find_clips, load_videos

    root = datasets / "weizmann"
    clip = root / "wave2" / "denis_wave2.avi"
    assert clip in find_clips(root)
    (seq,) = load_videos(root, cache_dir=tmp_path, clips=[clip])
    assert seq.label == "WAVING_2HANDS" and seq.subject == "denis"
    assert len(seq) >= 0.9 * seq.meta["frames"]  # one person, nearly every frame posed
    np.testing.assert_allclose(seq.times * 25, np.round(seq.times * 25), atol=1e-6)
    assert seq.keypoints[:, :, 0].max() <= 180 * 1.2  # pixels of the 180x144 clip
    cached = list(tmp_path.rglob("*.npz"))
    assert len(cached) == 1
    (again,) = load_videos(root, cache_dir=tmp_path, clips=[clip])
    np.testing.assert_array_equal(again.keypoints, seq.keypoints)
    (every3,) = load_videos(root, cache_dir=tmp_path, clips=[clip], pose_every=3)
    frames = np.round(every3.times * 25).astype(int)
    assert (frames % 3 == 0).all() and len(every3) <= len(seq) // 3 + 1


@pytest.mark.mediapipe
def test_videos_loader_can_pose_like_the_pipelines_pool(datasets, tmp_path):
    """pose_workers=2 deals frames to two models in turn: its own cache file, poses close to one model's."""
    from realtime.datasets.videos import load_videos

    root = datasets / "weizmann"
    clip = root / "wave2" / "denis_wave2.avi"
    (one,) = load_videos(root, cache_dir=tmp_path, clips=[clip])
    (two,) = load_videos(root, cache_dir=tmp_path, clips=[clip], pose_workers=2)
    assert sorted(p.name for p in tmp_path.rglob("*.npz")) == ["denis_wave2.blazepose.npz",
                                                                "denis_wave2.blazepose.workers2.npz"]
    assert two.meta["pose_workers"] == 2 and abs(len(two) - len(one)) <= 0.1 * len(one)
    shared = np.intersect1d(np.round(one.times * 25), np.round(two.times * 25), return_indices=True)
    a, b = one.keypoints[shared[1]], two.keypoints[shared[2]]
    height = np.ptp(a[:, :, 1], axis=1).mean()
    assert not np.array_equal(a, b)  # two models, two tracking histories
    assert np.abs(a - b).mean() < 0.05 * height  # ...that agree on where the person is
    with pytest.raises(DatasetError, match="pose_workers"):
        load_videos(root, cache_dir=tmp_path, clips=[clip], pose_workers=0)
