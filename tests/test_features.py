"""Properties of the shared feature code that training and live inference both rely on."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.augment import NAMES as AUGMENTATIONS
from realtime.augment import Augment
from realtime.evaluation import cut_at_waist
from realtime.features import MIRROR, FeatureSpec, PoseSequence, TrackWindow, resample, window_features
from realtime.types import COCO_KEYPOINTS, KEYPOINT_INDEX

SPEC = FeatureSpec()
C = KEYPOINT_INDEX


@pytest.fixture(scope="module")
def jack(datasets, tmp_path_factory) -> PoseSequence:
    """Real 25 fps MediaPipe poses of a jumping-jacks clip."""
    from realtime.datasets.videos import load_videos

    root = datasets / "weizmann"
    (seq,) = load_videos(root, cache_dir=tmp_path_factory.mktemp("poses"), clips=[root / "jack" / "lena_jack.avi"])
    return seq


@pytest.fixture(scope="module")
def kth_box(datasets) -> PoseSequence:
    from realtime.datasets import load

    seqs = load("kth", datasets / "kth_pose" / "kth_pose_persons21-23.csv")
    return next(s for s in seqs if s.meta["action"] == "boxing")


def _window(seq: PoseSequence, end: float, spec: FeatureSpec = SPEC):
    grid = end - np.arange(spec.window - 1, -1, -1) / spec.rate_hz
    kp, vis = resample(seq.times, seq.keypoints, seq.scores >= spec.min_score, grid, spec.max_gap_s)
    return kp, vis


def _positions(features: np.ndarray, spec: FeatureSpec = SPEC) -> np.ndarray:
    n = len(spec.joints)
    return features[:, : 2 * n].reshape(len(features), n, 2)


def test_mirror_table_swaps_left_and_right():
    assert COCO_KEYPOINTS[MIRROR[C["left_wrist"]]] == "right_wrist"
    assert COCO_KEYPOINTS[MIRROR[C["right_ankle"]]] == "left_ankle"
    assert MIRROR[C["nose"]] == C["nose"]
    assert sorted(MIRROR) == list(range(17))


def test_mirrored_pose_gives_swapped_and_flipped_features(kth_box):
    kp, vis = _window(kth_box, kth_box.times[0] + 2.0)
    mirrored = kp[:, MIRROR].copy()
    mirrored[..., 0] *= -1
    f = _positions(window_features(kp, vis, SPEC))
    fm = _positions(window_features(mirrored, vis[:, MIRROR], SPEC))
    pos = {j: p for p, j in enumerate(SPEC.joints)}
    left, right = pos[C["left_wrist"]], pos[C["right_wrist"]]
    np.testing.assert_allclose(fm[:, left, 0], -f[:, right, 0], atol=1e-5)
    np.testing.assert_allclose(fm[:, left, 1], f[:, right, 1], atol=1e-5)
    assert not np.allclose(f[:, left], f[:, right], atol=0.05)  # a boxer's wrists differ


def test_features_ignore_where_the_person_is_and_how_big(kth_box):
    kp, vis = _window(kth_box, kth_box.times[0] + 2.0)
    moved = kp * 2.7 + np.array([130.0, -40.0], np.float32)
    np.testing.assert_allclose(window_features(moved, vis, SPEC), window_features(kp, vis, SPEC), atol=1e-4)


def test_8hz_and_25hz_versions_of_one_motion_give_close_windows(jack):
    end = jack.times[-1] - 0.5
    # The same clip posed on every 3rd frame only, as KTH was, or as skip 2 does.
    every3 = PoseSequence(jack.keypoints[::3], jack.scores[::3], jack.times[::3])
    end = every3.times[every3.times <= end][-1]
    full = _positions(window_features(*_window(jack, end), SPEC))
    sparse = _positions(window_features(*_window(every3, end), SPEC))
    other = _positions(window_features(*_window(jack, end - 0.3), SPEC))  # a different phase
    gap = np.abs(full - sparse).mean()
    assert gap < 0.12
    assert gap < 0.5 * np.abs(full - other).mean()


def test_missing_joint_is_masked_not_invented(kth_box):
    kp, vis = _window(kth_box, kth_box.times[0] + 2.0)
    vis = vis.copy()
    vis[10:, C["left_wrist"]] = False
    f = window_features(kp, vis, SPEC)
    n = len(SPEC.joints)
    p = SPEC.joints.index(C["left_wrist"])
    assert (_positions(f)[10:, p] == 0).all()
    mask = f[:, -n:]
    assert (mask[10:, p] == 0).all() and (mask[:10, p] == 1).all()
    velocity = f[:, 2 * n + 2 : 4 * n + 2].reshape(len(f), n, 2)
    assert (velocity[10:, p] == 0).all()  # disappearing is not motion
    # KTH has no eyes/ears and the features do not use them.
    assert not {C["left_eye"], C["right_ear"]} & set(SPEC.joints)


def test_resample_does_not_bridge_long_gaps():
    times = np.array([0.0, 0.04, 0.08, 1.5, 1.54])
    kp = np.tile(np.arange(17 * 2, dtype=np.float32).reshape(1, 17, 2), (5, 1, 1))
    grid = np.arange(0.0, 1.56, 0.04)
    _, vis = resample(times, kp, np.ones((5, 17), bool), grid, max_gap_s=0.6)
    assert vis[grid <= 0.08].all() and vis[grid >= 1.5].all()
    assert not vis[(grid > 0.2) & (grid < 1.4)].any()


def test_track_window_fills_then_resets_after_a_gap(jack):
    window = TrackWindow(SPEC)
    out = None
    for t, kp, sc in zip(jack.times, jack.keypoints, jack.scores, strict=True):
        window.add(t, kp, sc)
        out = window.features() if t - jack.times[0] >= SPEC.duration_s else None
        if out is not None:
            break
    assert out is not None and out.shape == (SPEC.window, SPEC.dim)
    t_last = t
    window.add(t_last + SPEC.max_gap_s + 0.2, jack.keypoints[0], jack.scores[0])
    assert len(window) == 1 and window.features() is None
    # A live window equals the offline window over the same samples.
    live = TrackWindow(SPEC)
    for t, kp, sc in zip(jack.times, jack.keypoints, jack.scores, strict=True):
        live.add(t, kp, sc)
    np.testing.assert_allclose(live.features(), window_features(*_window(jack, jack.times[-1]), SPEC), atol=1e-5)


def test_augment_keeps_shape_and_visibility_but_changes_values(kth_box):
    kp, vis = _window(kth_box, kth_box.times[0] + 2.0)
    rng = np.random.default_rng(1)
    aug = Augment(dropout_p=1.0)
    kp2, vis2 = aug(kp, vis, rng, SPEC.joints)
    assert kp2.shape == kp.shape and vis2.sum() < vis.sum()
    assert not np.allclose(kp2[vis2], kp[vis2])
    speeds = [aug.speed(rng) for _ in range(200)]
    assert 0.75 <= min(speeds) < 0.85 and 1.2 < max(speeds) <= 1.33


def test_bone_features_follow_the_limbs_and_vanish_with_an_unseen_end(kth_box):
    from realtime.features import BONES

    spec = FeatureSpec(bones=True)
    kp, vis = _window(kth_box, kth_box.times[0] + 2.0)
    vis = vis.copy()
    vis[10:, C["left_wrist"]] = False
    f = window_features(kp, vis, spec)
    assert f.shape == (spec.window, spec.dim) and spec.dim > SPEC.dim
    n, pairs = len(spec.joints), spec.bone_pairs
    assert len(pairs) == len(BONES)  # every bone joins two of the body joints
    bones = f[:, 2 * n + 2 : 2 * n + 2 + 2 * len(pairs)].reshape(len(f), len(pairs), 2)
    forearm = pairs.index((C["left_elbow"], C["left_wrist"]))
    positions = _positions(f, spec)
    p = {j: i for i, j in enumerate(spec.joints)}
    np.testing.assert_allclose(
        bones[:10, forearm], positions[:10, p[C["left_wrist"]]] - positions[:10, p[C["left_elbow"]]], atol=1e-5
    )
    assert (bones[10:, forearm] == 0).all()
    static = 2 * n + 2 + 2 * len(pairs)
    bone_velocity = f[:, static + 2 * n + 2 : 2 * static].reshape(len(f), len(pairs), 2)
    assert (bone_velocity[10:, forearm] == 0).all() and np.abs(bone_velocity[1:10, forearm]).sum() > 0
    # Without bones the features are the same as before bones existed.
    np.testing.assert_array_equal(
        window_features(kp, vis, SPEC),
        np.concatenate([f[:, : 2 * n + 2], f[:, static : static + 2 * n + 2], f[:, -n:]], axis=1),
    )


def test_reach_features_join_the_hands_face_and_feet_and_older_checkpoints_go_without(kth_box):
    from realtime.features import REACHES

    spec, bones_only = FeatureSpec(bones=True, reaches=True), FeatureSpec(bones=True)
    kp, vis = _window(kth_box, kth_box.times[0] + 2.0)
    vis = vis.copy()
    vis[10:, C["right_wrist"]] = False
    f = window_features(kp, vis, spec)
    n, pairs = len(spec.joints), spec.bone_pairs
    assert pairs[-len(REACHES) :] == REACHES and spec.dim == bones_only.dim + 4 * len(REACHES)
    static = 2 * n + 2 + 2 * len(pairs)
    vectors = f[:, 2 * n + 2 : static].reshape(len(f), len(pairs), 2)
    hands = pairs.index((C["left_wrist"], C["right_wrist"]))
    positions, p = _positions(f, spec), {j: i for i, j in enumerate(spec.joints)}
    np.testing.assert_allclose(
        vectors[:10, hands], positions[:10, p[C["right_wrist"]]] - positions[:10, p[C["left_wrist"]]], atol=1e-5
    )
    assert np.abs(vectors[:10, hands]).sum() > 0 and (vectors[10:, hands] == 0).all()
    # Everything else is the bone features as they were.
    reach_columns = np.r_[static - 2 * len(REACHES) : static, 2 * static - 2 * len(REACHES) : 2 * static]
    np.testing.assert_array_equal(np.delete(f, reach_columns, axis=1), window_features(kp, vis, bones_only))
    # A checkpoint saved before reaches existed has no such key, and gets the features it was trained on.
    older = bones_only.to_dict()
    del older["reaches"]
    assert FeatureSpec.from_dict(older) == bones_only


def test_camera_augmentations_each_change_what_they_should(kth_box):
    kp, vis = _window(kth_box, kth_box.times[0] + 2.0)
    none = Augment().without(AUGMENTATIONS)
    rng = np.random.default_rng(3)
    same, _same_vis = none(kp, vis, rng, SPEC.joints)
    np.testing.assert_allclose(same[vis], kp[vis], atol=1e-4)
    # Yaw shortens the body across the image, never along it.
    yaw = Augment(max_yaw_deg=60.0).without(["mirror", "roll", "aspect", "noise", "dropout", "cutoff", "waist_up"])
    widths = [np.ptp(yaw(kp, vis, np.random.default_rng(s), SPEC.joints)[0][vis][:, 0]) for s in range(20)]
    heights = [np.ptp(yaw(kp, vis, np.random.default_rng(s), SPEC.joints)[0][vis][:, 1]) for s in range(20)]
    assert max(widths) <= np.ptp(kp[vis][:, 0]) + 1e-3 and min(widths) < 0.8 * np.ptp(kp[vis][:, 0])
    np.testing.assert_allclose(heights, np.ptp(kp[vis][:, 1]), rtol=1e-4)
    # Frame edges across the legs and through the head hide the ankles and the nose, keep the hips.
    cut = Augment(cutoff_p=1.0).without(["mirror", "roll", "yaw", "aspect", "noise", "dropout", "waist_up"])
    cuts = np.stack([cut(kp, vis, np.random.default_rng(s), SPEC.joints)[1] for s in range(10)])
    ankles, knees = cuts[..., C["left_ankle"]].mean(), cuts[..., C["left_knee"]].mean()
    assert ankles < 0.7 and ankles < knees and cuts[..., C["left_hip"]].all()
    assert cuts[..., C["nose"]].mean() < 0.7 and cuts[..., C["nose"]].mean() < cuts[..., C["left_shoulder"]].mean()
    with pytest.raises(ValueError, match="unknown augmentation"):
        Augment().without(["zoom"])


def test_frame_rate_augmentation_keeps_the_samples_a_slower_camera_would_give():
    from realtime.training import _retimed

    times = np.arange(0, 4, 1 / 30)
    keep = _retimed(times, 1.0, 3.0, 10.0, np.random.default_rng(0))
    assert 19 <= len(keep) <= 21 and (times[keep] >= 1.0).all() and (times[keep] <= 3.0).all()
    np.testing.assert_allclose(np.diff(times[keep]), 0.1, atol=1 / 30 + 1e-9)


@pytest.mark.parametrize("spec", [FeatureSpec(bones=True, reaches=True), FeatureSpec(), FeatureSpec(velocities=False)])
def test_joint_columns_pick_each_joints_own_position_motion_and_mask(kth_box, spec):
    """The graph network reads a joint's values through `joint_columns`; they must be that joint's."""
    kp, vis = _window(kth_box, kth_box.times[0] + 2.0, spec)
    vis = vis.copy()
    vis[10:, C["left_wrist"]] = False
    f = window_features(kp, vis, spec)
    per_joint, other = spec.joint_columns()
    assert per_joint.shape == (len(spec.joints), 5 if spec.velocities else 3)
    assert sorted(np.r_[per_joint.ravel(), other]) == list(range(spec.dim))  # every column once
    own = f[:, per_joint]  # (W, joints, k)
    np.testing.assert_array_equal(own[..., :2], _positions(f, spec))
    wrist = spec.joints.index(C["left_wrist"])
    assert (own[10:, wrist, -1] == 0).all() and (own[:10, wrist, -1] == 1).all()  # the mask
    if spec.velocities:
        np.testing.assert_allclose(own[1:10, wrist, 2:4], np.diff(own[:10, wrist, :2], axis=0), atol=1e-6)


def test_a_person_seen_from_the_waist_up_gets_a_window_in_the_same_frame_and_scale(kth_box):
    from realtime.features import legs_seen, window_is_usable

    waist_up = cut_at_waist(kth_box)
    end = float(kth_box.times[0]) + 3.0
    kp, vis = _window(kth_box, end)
    kp_up, vis_up = _window(waist_up, end)
    assert not vis_up[:, [C["left_hip"], C["right_hip"], C["left_knee"], C["left_ankle"]]].any()
    assert window_is_usable(vis, SPEC) and window_is_usable(vis_up, SPEC)
    full, up = window_features(kp, vis, SPEC), window_features(kp_up, vis_up, SPEC)
    # Anchored on the shoulders, a joint seen in both keeps its place: the scale from the shoulders and
    # head is within a third of the torso's.
    nose = slice(2 * SPEC.joints.index(C["nose"]), 2 * SPEC.joints.index(C["nose"]) + 2)
    ratio = up[:, nose] / np.where(np.abs(full[:, nose]) > 1e-3, full[:, nose], np.nan)
    assert 0.67 < np.nanmedian(ratio) < 1.5
    seen = legs_seen(np.stack([full, up]), SPEC)
    assert seen.tolist() == [True, False]


def test_a_window_without_shoulders_is_not_judged(kth_box):
    from realtime.features import window_is_usable

    _kp, vis = _window(kth_box, float(kth_box.times[0]) + 3.0)
    vis = vis.copy()
    vis[:, [C["left_shoulder"], C["right_shoulder"]]] = False
    assert not window_is_usable(vis, SPEC)


def test_whole_body_classes_go_to_other_where_the_legs_are_not_seen(kth_box):
    from realtime.classifier import gate_whole_body
    from realtime.datasets.labels import CLASSES, WHOLE_BODY

    assert set(WHOLE_BODY) == {"JUMPING", "JUMPING_JACKS"}
    end = float(kth_box.times[0]) + 3.0
    full = window_features(*_window(kth_box, end), SPEC)
    up = window_features(*_window(cut_at_waist(kth_box), end), SPEC)
    probs = np.tile(np.array([0.5, 0.3, 0.05, 0.05, 0.05, 0.05, 0.0], np.float32), (2, 1))
    gated = gate_whole_body(probs, np.stack([full, up]), SPEC, CLASSES, WHOLE_BODY)
    np.testing.assert_allclose(gated[0], probs[0])
    assert gated[1, CLASSES.index("JUMPING")] == 0 and gated[1, CLASSES.index("JUMPING_JACKS")] == 0
    assert gated[1, CLASSES.index("OTHER")] == pytest.approx(0.8)
    np.testing.assert_allclose(gated.sum(axis=1), 1.0, atol=1e-6)


def test_waist_up_augmentation_hides_the_hips_and_never_the_legs_of_a_whole_body_action(jack, kth_box):
    from realtime.features import LEGS

    aug = Augment(waist_up_p=1.0, cutoff_p=1.0, dropout_p=0.0)
    rng = np.random.default_rng(0)
    kp, vis = _window(kth_box, float(kth_box.times[0]) + 2.0)
    hips = [C["left_hip"], C["right_hip"]]
    hidden = [1.0 - aug(kp, vis, rng, SPEC.joints)[1][:, hips].any(axis=1).mean() for _ in range(20)]
    assert min(hidden) >= 0.5 and np.mean(hidden) > 0.8
    kp, vis = _window(jack, float(jack.times[0]) + 1.5)
    for _ in range(20):
        _, kept = aug(kp, vis, rng, SPEC.joints, whole_body=True)
        assert kept[:, list(LEGS[:2])].any(axis=1).mean() >= 0.5
