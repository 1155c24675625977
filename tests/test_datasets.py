"""Loaders on the real files in ../shared/datasets."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from realtime.datasets import DatasetError, load, parse_data_arg
from realtime.datasets.common import OPENPOSE18
from realtime.types import COCO_KEYPOINTS, KEYPOINT_INDEX

C = KEYPOINT_INDEX
BLAZEPOSE = "blazepose"  # the backend these tests pose with, by its name in realtime.pose
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
    (tmp_path / "Y_train.txt").write_text("boxing\n")
    with pytest.raises(
        DatasetError, match=r"Y_train\.txt: label 1 is 'boxing'; the MHAD format numbers its classes 1-6"
    ):
        load("mhad", tmp_path)


def test_mhad_without_labels_is_named_when_training_needs_them(datasets, tmp_path):
    from realtime.datasets import load_labelled

    shutil.copy(datasets / "mhad_format" / "X_window_a.txt", tmp_path / "X_mine.txt")
    (seq,) = load("mhad", tmp_path)
    assert seq.label is None
    with pytest.raises(DatasetError, match=r"X_mine\.txt has no label file Y_mine\.txt beside it; write one label"):
        load_labelled([f"mhad:{tmp_path}"], tmp_path / "cache")


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
    with pytest.raises(DatasetError, match=r"is a folder; --data kth:FILE takes the CSV file itself"):
        load("kth", datasets / "kth_pose")
    with pytest.raises(DatasetError, match=r"is a folder; --data openpose:FILE"):
        load("openpose", datasets / "weizmann")
    with pytest.raises(DatasetError, match=r"is a file; --data videos:DIR takes a folder"):
        load("videos", datasets / "videos" / "exercise.avi")


@pytest.mark.mediapipe
def test_videos_loader_poses_with_our_backend_and_caches(datasets, tmp_path):
    from realtime.datasets.videos import find_clips, load_videos

    root = datasets / "weizmann"
    clip = root / "wave2" / "denis_wave2.avi"
    assert clip in find_clips(root)
    (seq,) = load_videos(root, cache_dir=tmp_path, clips=[clip], backend=BLAZEPOSE)
    assert seq.label == "WAVING_2HANDS" and seq.subject == "denis" and seq.source == "weizmann"
    assert len(seq) >= 0.9 * seq.meta["frames"]  # one person, nearly every frame posed
    np.testing.assert_allclose(seq.times * 25, np.round(seq.times * 25), atol=1e-6)
    assert seq.keypoints[:, :, 0].max() <= 180 * 1.2  # pixels of the 180x144 clip
    cached = list(tmp_path.rglob("*.npz"))
    assert len(cached) == 1
    (again,) = load_videos(root, cache_dir=tmp_path, clips=[clip], backend=BLAZEPOSE)
    np.testing.assert_array_equal(again.keypoints, seq.keypoints)
    (every3,) = load_videos(root, cache_dir=tmp_path, clips=[clip], pose_every=3, backend=BLAZEPOSE)
    frames = np.round(every3.times * 25).astype(int)
    assert (frames % 3 == 0).all() and len(every3) <= len(seq) // 3 + 1


@pytest.mark.mediapipe
def test_videos_loader_can_pose_like_the_pipelines_pool(datasets, tmp_path):
    """pose_workers=2 deals frames to two models in turn: its own cache file, poses close to one model's."""
    from realtime.datasets.videos import load_videos

    root = datasets / "weizmann"
    clip = root / "wave2" / "denis_wave2.avi"
    (one,) = load_videos(root, cache_dir=tmp_path, clips=[clip], backend=BLAZEPOSE)
    (two,) = load_videos(root, cache_dir=tmp_path, clips=[clip], pose_workers=2, backend=BLAZEPOSE)
    names = sorted(p.name for p in tmp_path.rglob("*.npz"))
    assert len(names) == 2 and names[0].startswith(f"denis_wave2.{BLAZEPOSE}-") and names[1].endswith(".workers2.npz")
    assert two.meta["pose_workers"] == 2 and abs(len(two) - len(one)) <= 0.1 * len(one)
    shared = np.intersect1d(np.round(one.times * 25), np.round(two.times * 25), return_indices=True)
    a, b = one.keypoints[shared[1]], two.keypoints[shared[2]]
    height = np.ptp(a[:, :, 1], axis=1).mean()
    assert not np.array_equal(a, b)  # two models, two tracking histories
    assert np.abs(a - b).mean() < 0.05 * height  # ...that agree on where the person is
    with pytest.raises(DatasetError, match="pose_workers"):
        load_videos(root, cache_dir=tmp_path, clips=[clip], pose_workers=0, backend=BLAZEPOSE)


def _kth_person(datasets, action: str = "boxing"):
    seqs = load("kth", datasets / "kth_pose" / "kth_pose_persons21-23.csv")
    return next(s for s in seqs if s.meta["action"] == action)


def _poses(kp: np.ndarray, sc: np.ndarray):
    from realtime.types import Poses

    return Poses(kp[None], sc[None], Poses.boxes_from_keypoints(kp[None], sc[None], 0.3))


def _frames(*people):
    """Posed frames holding, in each frame, every given person's pose that frame (None = absent)."""
    from realtime.types import Poses

    frames = []
    for poses in zip(*people, strict=True):
        present = [p for p in poses if p is not None]
        frames.append(
            Poses(
                np.concatenate([p.keypoints for p in present]),
                np.concatenate([p.scores for p in present]),
                np.concatenate([p.boxes for p in present]),
            )
            if present
            else Poses.empty()
        )
    return frames


def test_labelled_person_is_the_largest_track_never_a_smaller_bystander(datasets):
    """The rule: the track that is the largest person on the most frames; bystanders seen beside it are
    dropped even on frames where they are the larger one (real KTH poses, placed as two people)."""
    from realtime.datasets.labelled_person import labelled_person

    main, other = _kth_person(datasets, "boxing"), _kth_person(datasets, "walking")
    n = min(len(main), len(other), 60)
    big = main.keypoints[:n] * 3.0  # 160x120 pixels -> a person about three times the bystander's size
    small = other.keypoints[:n] * 0.8 + np.array([500.0, 50.0], np.float32)
    # The bystander steps close for a few frames: larger than the main person there.
    small[20:24] = (small[20:24] - 500.0) * 6.0 + 500.0
    times = np.arange(n) * 0.12
    frames = _frames(
        [_poses(k, s) for k, s in zip(big, main.scores[:n], strict=True)],
        [_poses(k, s) for k, s in zip(small, other.scores[:n], strict=True)],
    )
    kp, _, t, info = labelled_person(frames, times)
    assert info["tracks"] >= 2 and info["kept_tracks"] == 1
    np.testing.assert_allclose(t, times)
    np.testing.assert_allclose(kp, big)  # the bystander's frames 20-23 did not take over


def test_labelled_person_continues_after_a_scene_cut_to_another_performer(datasets):
    """A clip that cuts from one performer to another (wild_dev's Leap Fitness clips) keeps both: their
    tracks never share a frame, so neither is a bystander of the other."""
    from realtime.datasets.labelled_person import labelled_person

    a, b = _kth_person(datasets, "boxing"), _kth_person(datasets, "handwaving")
    first = [_poses(k * 2.0, s) for k, s in zip(a.keypoints[:30], a.scores[:30], strict=True)]
    second = [
        _poses(k * 2.0 + np.array([300.0, 0.0], np.float32), s)
        for k, s in zip(b.keypoints[:30], b.scores[:30], strict=True)
    ]
    frames = _frames(first + [None] * 30, [None] * 30 + second)
    kp, _, t, info = labelled_person(frames, np.arange(60) * 0.12)
    assert info["kept_tracks"] == 2 and len(t) == 60
    np.testing.assert_allclose(kp[30:], b.keypoints[:30] * 2.0 + np.array([300.0, 0.0], np.float32))


def test_wild_subjects_come_from_sources_md(datasets):
    from realtime.datasets.wild import wild_clips

    clips = wild_clips(datasets / "wild_dev")
    assert len(clips) == 51
    by_name = {c.path.name: c for c in clips}
    assert by_name["venkat_gym_jj.mp4"].subject == by_name["venkat_high_knees.mp4"].subject == "venkat_gym"
    assert by_name["stevewoz_rope_garage.mp4"].action == "JUMPING"
    # Rows appended below a blank line, with no header of their own, continue the table above.
    assert by_name["dollarpy_forward_hops_a.mp4"].subject == "dollarpy_boy_a"
    assert by_name["rsc_ropeskip_front.mp4"].subject == by_name["rsc_ropeskip_side.mp4"].subject == "rsc_woman"
    from collections import Counter

    assert Counter(c.action for c in clips) == {
        "OTHER": 20,
        "JUMPING_JACKS": 6,
        "BOXING": 8,
        "JUMPING": 9,
        "WAVING_1HAND": 1,
        "CLAPPING_HANDS": 7,
    }
    assert len({c.subject for c in clips}) == 33


def test_wild_clip_missing_from_sources_md_or_a_bad_folder_is_an_error(datasets, tmp_path):
    from realtime.datasets.wild import wild_clips

    root = tmp_path / "wild"
    (root / "OTHER").mkdir(parents=True)
    (root / "OTHER" / "arm.mp4").symlink_to(datasets / "wild_dev" / "OTHER" / "treadtv_arm_circles.mp4")
    with pytest.raises(DatasetError, match=r"SOURCES\.md not found"):
        wild_clips(root)
    (root / "SOURCES.md").write_text("| file | subject |\n|---|---|\n| OTHER/other.mp4 | someone |\n")
    with pytest.raises(DatasetError, match=r"arm\.mp4: not listed"):
        wild_clips(root)
    (root / "SOURCES.md").write_text(
        "| file | subject |\n|---|---|\n| OTHER/arm.mp4 | someone |\n| DANCING/arm.mp4 | someone |\n"
    )
    (root / "DANCING").mkdir()
    (root / "DANCING" / "arm.mp4").symlink_to(datasets / "wild_dev" / "OTHER" / "treadtv_arm_circles.mp4")
    with pytest.raises(DatasetError, match="'DANCING' is not in the 'wild' section"):
        load("wild", root, cache_dir=tmp_path / "cache", backend=BLAZEPOSE)


def test_weizmann_jump_is_jumping_now():
    from realtime.datasets import map_label

    assert map_label("videos", "jump", "x") == map_label("videos", "pjump", "x") == "JUMPING"


@pytest.mark.mediapipe
def test_wild_loader_poses_a_clip_and_names_its_data_set(datasets, tmp_path):
    from realtime.datasets.videos import load_clips
    from realtime.datasets.wild import wild_clips

    root = datasets / "wild_dev"
    clip = next(c for c in wild_clips(root) if c.path.name == "treadtv_arm_circles.mp4")  # 53 frames, 10 fps
    (seq,) = load_clips(root, [clip], "wild", tmp_path, backend=BLAZEPOSE)
    assert (seq.label, seq.subject, seq.source) == ("OTHER", "treadtv_armcircle_woman", "wild_dev")
    assert len(seq) >= 0.8 * seq.meta["frames"] and seq.meta["kept_tracks"] >= 1
    np.testing.assert_allclose(seq.times * 10, np.round(seq.times * 10), atol=1e-6)


def test_pose_cache_names_the_backend_settings(tmp_path):
    """Poses made with another person threshold must not pass for the default's."""
    from realtime.datasets.videos import cache_path, default_backend_options

    root, clip = tmp_path / "wild", tmp_path / "wild" / "OTHER" / "a.mp4"
    default = cache_path(tmp_path, root, clip, "movenet", 1, 1, default_backend_options("movenet"))
    other = cache_path(
        tmp_path, root, clip, "movenet", 1, 1, {**default_backend_options("movenet"), "person_threshold": 0.3}
    )
    assert default != other and default.parent == other.parent == tmp_path / "wild" / "OTHER"
    assert default.name.startswith("a.movenet-") and default.suffix == ".npz"


def test_pose_cache_takes_writers_of_the_same_clip_at_once(tmp_path):
    """Two runs posing one clip (two seeds of `evaluate` at once) each write its cache file whole."""
    import threading

    from realtime.datasets.videos import _write_cache

    path = tmp_path / "wild" / "OTHER" / "a.movenet-0.npz"
    start, failures = threading.Barrier(6), []

    def write(n: int) -> None:
        start.wait()
        for _ in range(20):
            try:
                _write_cache(path, {"keypoints": np.full((50, 17, 3), n, np.float32), "version": 3})
            except OSError as exc:
                failures.append(exc)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    assert not failures
    with np.load(path) as data:  # whole, and one writer's
        assert len(np.unique(data["keypoints"])) == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no half-written files left


@pytest.mark.mediapipe
def test_pose_cache_never_hands_a_clip_another_clips_poses(datasets, tmp_path):
    """Two data sets that share a folder name, and a clip replaced by an older copy of another, are posed anew."""
    import os

    from realtime.datasets.videos import load_videos

    weizmann = datasets / "weizmann"
    cache = tmp_path / "cache"
    first, second = tmp_path / "a" / "mydata", tmp_path / "b" / "mydata"
    for root, source in ((first, "jack/daria_jack.avi"), (second, "wave2/lena_wave2.avi")):
        (root / "jack").mkdir(parents=True)
        (root / "jack" / "daria_jack.avi").symlink_to(weizmann / source)
    (a,) = load_videos(first, cache_dir=cache, backend=BLAZEPOSE)
    (b,) = load_videos(second, cache_dir=cache, backend=BLAZEPOSE)
    assert a.meta["frames"] != b.meta["frames"]  # each its own clip's poses
    assert b.meta["frames"] == load_videos(second, cache_dir=None, backend=BLAZEPOSE)[0].meta["frames"]

    replaced = first / "jack" / "daria_jack.avi"
    replaced.unlink()
    shutil.copy2(weizmann / "jack" / "eli_jack.avi", replaced)
    os.utime(replaced, ns=(1, 1))  # older than every cache file, as an unpacked archive's would be
    (again,) = load_videos(first, cache_dir=cache, backend=BLAZEPOSE)
    assert again.meta["frames"] != a.meta["frames"]
    assert again.meta["frames"] == load_videos(first, cache_dir=None, backend=BLAZEPOSE)[0].meta["frames"]


def test_video_folder_subjects_come_from_names_or_folders_never_from_the_action(datasets, tmp_path):
    from realtime.datasets.videos import clip_entry, find_clips

    root = tmp_path / "mine"
    for rel in ("jack/alice_jack.avi", "jack/bob/take2.mp4", "wave1/alice_wave1.avi"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(datasets / "weizmann" / "jack" / "daria_jack.avi")
    entries = [clip_entry(root, p) for p in find_clips(root)]
    assert [(e.action, e.subject) for e in entries] == [("jack", "alice"), ("jack", "bob"), ("wave1", "alice")]

    (root / "jack" / "jack_01.avi").symlink_to(datasets / "weizmann" / "jack" / "daria_jack.avi")
    with pytest.raises(DatasetError, match=r"cannot tell who is in jack/jack_01\.avi: name clips .*alice_jack"):
        load("videos", root, cache_dir=tmp_path / "cache")


def test_a_truncated_training_clip_is_an_error_not_half_an_action(datasets, tmp_path):
    from realtime.datasets.videos import pose_clip

    good = datasets / "weizmann" / "wave2" / "lena_wave2.avi"
    cut = tmp_path / "lena_wave2.avi"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(DatasetError, match=r"lena_wave2\.avi ended at frame \d+ of 79 .*; re-encode it or remove it"):
        pose_clip(cut, BLAZEPOSE)


def test_labels_are_checked_before_any_clip_is_posed(datasets, tmp_path):
    from realtime.datasets.videos import load_videos

    root = tmp_path / "mine"
    for rel in ("jack/alice_jack.avi", "squat/alice_squat.avi"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(datasets / "weizmann" / "jack" / "daria_jack.avi")
    posed = []
    with pytest.raises(DatasetError, match="'squat' is not in the 'videos' section"):
        load_videos(root, cache_dir=tmp_path / "cache", backend=BLAZEPOSE, progress=lambda it: posed.extend(it) or [])
    assert posed == []


def test_a_labels_file_of_your_own_names_its_classes_and_its_mistakes(tmp_path):
    from realtime.datasets import LabelTable

    path = tmp_path / "labels.yaml"
    path.write_text("videos:\n  walk: OTHER\n  squat: SQUAT\n  lunge: LUNGE\n  wave: null\n")
    table = LabelTable.read(path)
    assert table.classes == ("SQUAT", "LUNGE", "OTHER")  # as first mapped, OTHER last
    assert table.map("videos", "lunge", "x") == "LUNGE" and table.map("videos", "wave", "x") is None
    with pytest.raises(DatasetError, match=f"'plank' is not in the 'videos' section of {path}"):
        table.map("videos", "plank", "x")
    with pytest.raises(DatasetError, match="has no section 'kth'"):
        table.map("kth", "boxing", "x")
    path.write_text("classes: [LUNGE, SQUAT]\nvideos:\n  squat: SQUAT\n  lunge: LUNGE\n")
    assert LabelTable.read(path).classes == ("LUNGE", "SQUAT", "OTHER")  # OTHER is always a class
    for text, problem in (
        ("videos:\n  squat: deep squat\n", "class name 'deep squat' must be a letter"),
        ("classes: [SQUAT]\nvideos:\n  lunge: LUNGE\n", "videos.lunge maps to 'LUNGE', not one of its classes"),
        ("videos:\n  walk: OTHER\n", "maps no action to a class other than OTHER"),
        ("videos: [squat]\n", "section 'videos' must map action names"),
    ):
        path.write_text(text)
        with pytest.raises(DatasetError, match=problem):
            LabelTable.read(path)


def test_a_split_that_cannot_teach_a_class_or_tune_rejection_says_so():
    from realtime.features import PoseSequence
    from realtime.training import split_warnings

    def seq(label: str, subject: str) -> PoseSequence:
        return PoseSequence(np.zeros((4, 17, 2)), np.ones((4, 17)), np.arange(4) / 25, label=label, subject=subject)

    train = [seq("JUMPING", "ann"), seq("OTHER", "ann")]
    val = [seq("BOXING", "bob"), seq("JUMPING", "bob")]
    first, second = split_warnings(train, val, threshold_given=False)
    assert first.startswith("class BOXING has no training sequences: all its subjects (bob)")
    assert "no OTHER sequences" in second and "pass --threshold" in second
    assert split_warnings(train, val, threshold_given=True) == [first]
    assert "no validation subjects" in split_warnings(train, [], threshold_given=False)[0]
    assert split_warnings(train, [seq("JUMPING", "bob"), seq("OTHER", "bob")], threshold_given=False) == []
