"""Training end to end, checkpoint checks, and the shipped weights on real data."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import read_events, run_cli
from realtime.classifier import CLASSES, ActionClassifier, ActionLSTM, load_checkpoint, save_checkpoint
from realtime.config import DEFAULT_WEIGHTS as SHIPPED
from realtime.errors import WeightsError
from realtime.features import FeatureSpec


def _kth(root: Path) -> str:
    return f"kth:{root / 'kth_pose' / 'kth_pose_persons21-23.csv'}"


@pytest.mark.training
@pytest.mark.parametrize("arch", ["tcn", "gcn"])
def test_short_training_writes_a_checkpoint_inference_accepts(datasets, tmp_path, arch):
    from realtime.commands import train

    out = tmp_path / "tiny.pt"
    rc = train.main(
        [
            "--arch",
            arch,
            "--data",
            _kth(datasets),
            "--data",
            f"openpose:{datasets / 'openpose_chenge' / 'skeleton_raw.csv'}",
            "--subset",
            "8",
            "--epochs",
            "2",
            "--min-epochs",
            "2",
            "--epoch-windows",
            "256",
            "--hidden",
            "16",
            "--all",
            "--quiet",
            "--out",
            str(out),
            "--runs",
            str(tmp_path / "runs"),
        ]
    )
    assert rc == 0 and out.is_file()
    clf = ActionClassifier.load(out)
    assert clf.labels == CLASSES and 0.0 <= clf.threshold <= 0.9
    assert clf.checkpoint.info["trained_on"] == "all" and clf.checkpoint.hidden_size == 16
    assert clf.checkpoint.arch == arch
    assert clf.checkpoint.info["epochs"] == 2  # the validated epoch count never precedes --min-epochs
    windows = np.random.default_rng(0).normal(size=(3, clf.spec.window, clf.spec.dim)).astype(np.float32)
    predictions = clf.predict(windows)
    assert len(predictions) == 3 and all(p.label in CLASSES for p in predictions)
    assert abs(sum(predictions[0].probabilities.values()) - 1.0) < 1e-4
    assert not list((tmp_path / "runs").rglob("*.ckpt"))  # Lightning's temporary files are gone


def test_train_command_reports_bad_data_in_one_line(tmp_path):
    proc = run_cli("train", "--data", "weizmann", "--out", str(tmp_path / "x.pt"), timeout=120)
    assert proc.returncode == 2
    assert "KIND:PATH" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize(
    "command, flags, named",
    [
        ("train", ["--min-epochs", "40"], "--min-epochs 40"),
        ("evaluate", ["--min-epochs", "0"], "--min-epochs 0"),
        ("train", ["--other-weight", "0"], "--other-weight 0"),
        ("evaluate", ["--other-weight", "-1"], "--other-weight -1"),
        ("train", ["--ema-decay", "1"], "--ema-decay 1"),
    ],
)
def test_bad_training_flags_fail_in_one_line_before_any_work(datasets, tmp_path, command, flags, named):
    out = ["--out", str(tmp_path / "x.pt")] if command == "train" else []
    proc = run_cli(command, "--data", _kth(datasets), *flags, *out, "--runs", str(tmp_path / "runs"), timeout=120)
    assert proc.returncode == 2, proc.stderr[-500:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["train", "evaluate", "extract-poses"])
def test_commands_print_their_help(command):
    proc = run_cli(command, "--help", timeout=120)
    assert proc.returncode == 0 and f"python -m realtime {command}" in proc.stdout


def test_training_flags_default_to_train_config():
    """TrainConfig is the one source of training defaults: both commands read theirs from it."""
    from realtime.commands import evaluate, train
    from realtime.commands.training_args import train_config_from
    from realtime.training import TrainConfig

    for command in (train, evaluate):
        args = command.build_parser().parse_args(["--data", "kth:x.csv"])
        assert train_config_from(args) == TrainConfig(progress=False)
        # A short run lowers the default epoch floor with it rather than failing.
        short = command.build_parser().parse_args(["--data", "kth:x.csv", "--epochs", "3"])
        assert train_config_from(short).min_epochs == 3 < TrainConfig().min_epochs


def test_the_kept_epoch_is_the_best_one_after_the_warm_up():
    """The callback reads four attributes of Lightning's Trainer; a stand-in gives it a known series
    of validation losses, which a real training run cannot be made to produce."""
    from types import SimpleNamespace

    from realtime.early_stopping import BestSettledEpoch

    layer = torch.nn.Linear(2, 1)
    keeper = BestSettledEpoch(min_epochs=3, patience=2)
    trainer_stand_in = SimpleNamespace(current_epoch=0, callback_metrics={}, sanity_checking=False, should_stop=False)
    stopped_after = None
    for epoch, loss in enumerate([0.2, 0.9, 0.8, 0.6, 0.7, 0.65, 0.1], start=1):
        trainer_stand_in.current_epoch = epoch - 1
        trainer_stand_in.callback_metrics = {"val_loss": torch.tensor(loss)}
        with torch.no_grad():
            layer.weight.fill_(epoch)
        keeper.on_validation_epoch_end(trainer_stand_in, layer)
        with torch.no_grad():
            layer.weight.fill_(-1)  # what weight averaging swaps back in after the keeper's hook
        if trainer_stand_in.should_stop:
            stopped_after = epoch
            break
    # Epoch 1's lower loss is inside the warm-up; epoch 4 is the best after it, and two epochs
    # without a better one end the run before epoch 7 is reached.
    assert keeper.epoch == 4 and keeper.loss == pytest.approx(0.6) and stopped_after == 6
    assert keeper.state is not None and torch.all(keeper.state["weight"] == 4)


@pytest.mark.training
@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_the_kept_weights_are_the_ones_validated_with_or_without_weight_averaging(datasets, tmp_path, ema_decay):
    """With an average of the weights, validation sees the average; the kept model must be that
    average, not the last step's weights, which Lightning swaps back in after validation."""
    from realtime.datasets import load_labelled
    from realtime.training import TrainConfig, WindowDataset, fit

    sequences = load_labelled([_kth(datasets)], tmp_path)
    validation = [s for s in sequences if s.subject == "person21"]
    training = [s for s in sequences if s.subject != "person21"]
    config = TrainConfig(
        hidden_size=16, num_layers=2, max_epochs=3, min_epochs=2, epoch_windows=256, ema_decay=ema_decay, progress=False
    )
    result = fit(training, validation, config, run_dir=tmp_path / "runs")
    windows = WindowDataset(validation, config, None)
    assert windows._fixed is not None and result.val_loss is not None and result.best_epoch >= 2
    with torch.no_grad():
        logits = result.model(torch.from_numpy(windows._fixed))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(windows.targets))
    assert float(loss) == pytest.approx(result.val_loss, rel=1e-4)


@pytest.mark.parametrize("other_weight", [1.0, 3.0])
def test_other_gets_its_weight_times_an_actions_share_of_training_windows(datasets, tmp_path, other_weight):
    from realtime.augment import Augment
    from realtime.datasets import load_labelled
    from realtime.training import TrainConfig, WindowDataset

    sequences = load_labelled([_kth(datasets)], tmp_path)
    config = TrainConfig(other_weight=other_weight)
    windows = WindowDataset(sequences, config, Augment())
    weights = windows.balanced_weights()
    share = {label: float(weights[windows.targets == CLASSES.index(label)].sum()) for label in CLASSES}
    actions = [label for label in CLASSES if label != "OTHER" and share[label] > 0]
    assert sorted(actions) == ["BOXING", "CLAPPING_HANDS", "WAVING_2HANDS"]  # KTH's three
    for label in actions:
        assert share[label] == pytest.approx(1 / (len(actions) + other_weight))
    assert share["OTHER"] == pytest.approx(other_weight / (len(actions) + other_weight))


@pytest.mark.parametrize("balance_sources", [False, True])
def test_a_class_is_shared_by_recordings_or_by_data_sets(datasets, tmp_path, balance_sources):
    """BOXING has 12 KTH videos and one OpenPose run (`punch`): per recording, the run gets a
    thirteenth of BOXING's windows; per data set (`--balance-sources`), half."""
    from realtime.augment import Augment
    from realtime.datasets import load_labelled
    from realtime.training import TrainConfig, WindowDataset

    openpose = f"openpose:{datasets / 'openpose_chenge' / 'skeleton_raw.csv'}"
    sequences = load_labelled([_kth(datasets), openpose], tmp_path)
    windows = WindowDataset(sequences, TrainConfig(balance_sources=balance_sources), Augment())
    weights = windows.balanced_weights()
    boxing = windows.targets == CLASSES.index("BOXING")
    owners = np.array([i for i, _ in windows.items])
    recordings = set(owners[boxing].tolist())
    assert sorted(Counter(sequences[i].source for i in recordings).items()) == [("kth", 12), ("openpose", 1)]
    (run,) = (i for i in recordings if sequences[i].source == "openpose")
    share = weights[boxing & (owners == run)].sum() / weights[boxing].sum()
    assert share == pytest.approx(1 / 2 if balance_sources else 1 / 13)


def _saved(tmp_path: Path, labels=CLASSES, spec: FeatureSpec = FeatureSpec()) -> Path:
    path = tmp_path / "ok.pt"
    save_checkpoint(path, ActionLSTM(spec, len(labels), 24, 2), labels, spec, threshold=0.4)
    return path


def _rewrite(path: Path, **changes) -> Path:
    raw = torch.load(path, weights_only=True)
    raw.update(changes)
    bad = path.with_name("bad.pt")
    torch.save(raw, bad)
    return bad


def test_a_verdicts_score_is_its_own_labels_probability(tmp_path):
    clf = ActionClassifier.load(_saved(tmp_path))  # threshold 0.4
    sure = clf.verdict(np.array([0.9, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01]))
    assert (sure.label, sure.score) == ("JUMPING", pytest.approx(0.9))
    unsure = clf.verdict(np.array([0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2]))
    assert (unsure.label, unsure.score) == ("OTHER", pytest.approx(0.2))  # not JUMPING's 0.3
    assert unsure.probabilities["JUMPING"] == pytest.approx(0.3)


def test_checkpoint_round_trip_keeps_spec_and_threshold(tmp_path):
    spec = FeatureSpec(rate_hz=20.0, window=24)
    ckpt = load_checkpoint(_saved(tmp_path, spec=spec))
    assert ckpt.spec == spec and ckpt.threshold == 0.4 and ckpt.labels == CLASSES


def test_checkpoint_with_wrong_shape_or_labels_is_refused(tmp_path):
    path = _saved(tmp_path)
    raw = torch.load(path, weights_only=True)
    with pytest.raises(WeightsError, match="shape"):
        load_checkpoint(_rewrite(path, labels=list(CLASSES[1:])))  # 6 labels for a 7-way head
    own = ["SQUAT", "LUNGE", "PLANK", "PUSH_UP", "SIT_UP", "BURPEE", "OTHER"]
    assert load_checkpoint(_rewrite(path, labels=own)).labels == tuple(own)  # classes of a user's own
    with pytest.raises(WeightsError, match="including OTHER"):
        load_checkpoint(_rewrite(path, labels=[*CLASSES[:-1], "DANCING"]))
    with pytest.raises(WeightsError, match="a letter, then letters"):
        load_checkpoint(_rewrite(path, labels=[*CLASSES[:-2], "hands up", "OTHER"]))
    with pytest.raises(WeightsError, match="labels"):
        load_checkpoint(_rewrite(path, labels=[*CLASSES[:-1], CLASSES[0]]))
    no_velocity = dict(raw["feature_spec"], velocities=False)
    with pytest.raises(WeightsError, match="input"):
        load_checkpoint(_rewrite(path, feature_spec=no_velocity))
    with pytest.raises(WeightsError, match="format"):
        load_checkpoint(_rewrite(path, format="something-else/9"))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="is not a PyTorch checkpoint or is damaged"):
        load_checkpoint(tmp_path / "junk.pt")


def _evaluate(*args: str) -> dict:
    proc = run_cli("evaluate", *args, "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_shipped_weights_load_and_label_kth_in_sample(datasets):
    clf = ActionClassifier.load(SHIPPED)
    assert clf.labels == CLASSES and 0.0 < clf.threshold < 1.0
    report = _evaluate("--data", _kth(datasets), "--weights", str(SHIPPED), "--pose-fps", "10", "5")
    assert {"accuracy", "macro_f1", "per_class", "clip_accuracy"} <= report.keys()
    # KTH was posed 8.3 times a second: a cap of 10 leaves it as it is, 5 thins it.
    at_10, at_5 = report["by_pose_fps"]["10"]["all"], report["by_pose_fps"]["5"]["all"]
    assert at_10["accuracy"] == report["accuracy"] and at_10["windows"] == report["windows"]
    assert at_5["windows"] > 0 and at_5["clips"] == report["clips"]
    assert set(report["per_class"]) >= {"BOXING", "CLAPPING_HANDS", "WAVING_2HANDS", "OTHER"}
    # In-sample only (the weights were trained on all data); held-out figures are in MODEL_CARD.md.
    assert report["macro_f1"] >= 0.85 and report["clip_accuracy"] >= 0.85


def test_evaluate_reads_the_article_format_with_labels(datasets, tmp_path):
    shutil.copy(datasets / "mhad_format" / "X_window_a.txt", tmp_path / "X_test.txt")
    (tmp_path / "Y_test.txt").write_text("1\n")
    report = _evaluate("--data", f"mhad:{tmp_path}", "--weights", str(SHIPPED))
    assert report["windows"] >= 1 and report["clips"] == 1
    assert list(report["per_class"]) and 0.0 <= report["accuracy"] <= 1.0


@pytest.mark.training
def test_cross_validation_holds_out_whole_people(datasets, tmp_path):
    report = _evaluate(
        "--data",
        _kth(datasets),
        "--epochs",
        "1",
        "--epoch-windows",
        "128",
        "--hidden",
        "16",
        "--runs",
        str(tmp_path),
        "--confusion",
        str(tmp_path / "cm.png"),
    )
    held = [f["held_out"] for f in report["folds"]]
    assert sorted(key for fold in held for key in fold) == ["kth:person21", "kth:person22", "kth:person23"]
    assert report["clips"] == 72 and report["clip_accuracy"] is not None
    tuned = report["cross_fitted"]
    assert len(tuned["thresholds"]) == 3 and tuned["all"]["windows"] == tuned["kth"]["windows"] == report["windows"]
    curve = report["rejection_curve"]
    assert [p["threshold"] for p in curve] == sorted(p["threshold"] for p in curve)
    rates = [p["false_action_rate"] for p in curve]
    assert rates == sorted(rates, reverse=True)  # a higher threshold never gives more false actions
    assert (tmp_path / "cm.png").stat().st_size > 1000


@pytest.mark.training
def test_evaluate_averages_seeds_and_scores_waist_up_and_one_threshold(datasets, tmp_path):
    from realtime.datasets import load
    from realtime.evaluation import cut_at_waist
    from realtime.types import KEYPOINT_INDEX as K

    seq = load("kth", datasets / "kth_pose" / "kth_pose_persons21-23.csv")[0]
    cut = cut_at_waist(seq)
    below = [K["left_hip"], K["right_hip"], K["left_knee"], K["right_ankle"]]
    assert (seq.scores[:, below] > 0).any() and not (cut.scores[:, below] > 0).any()
    assert (cut.scores[:, [K["left_shoulder"], K["nose"]]] > 0).mean() > 0.9

    quick = ["--epochs", "1", "--epoch-windows", "128", "--hidden", "16", "--folds", "3", "--runs", str(tmp_path)]
    report = _evaluate("--data", _kth(datasets), *quick, "--seeds", "2", "--waist-up", "--at-threshold", "0.7")
    seeds = report["seeds"]
    assert seeds["seeds"] == [0, 1]
    for name in ("all", "kth", "waist_up"):
        f1 = seeds["mean"][name]["macro_f1"]
        assert 0.0 <= f1["mean"] <= 1.0 and f1["sd"] >= 0.0
    assert set(seeds["mean"]["kth"]["per_class_f1"]) == {"BOXING", "WAVING_2HANDS", "CLAPPING_HANDS", "OTHER"}
    assert "waist_up" in seeds["at_threshold"]
    # KTH has no whole-body class, so every clip is also scored cut at the waist.
    assert report["waist_up"]["all"]["clips"] == report["clips"] == 72
    at = report["at_threshold"]
    assert at["threshold"] == 0.7 and at["all"]["windows"] == report["windows"]


@pytest.mark.mediapipe
@pytest.mark.parametrize(
    "clip,label",
    [
        ("jack/lena_jack.avi", "JUMPING_JACKS"),
        ("wave1/ira_wave1.avi", "WAVING_1HAND"),
        ("pjump/ira_pjump.avi", "JUMPING"),
    ],
)
def test_live_frame_by_frame_majority_label(datasets, clip, label):
    """The inference worker's path: MediaPipe per frame at 25 fps -> TrackWindow -> classifier."""
    import cv2

    from realtime.features import TrackWindow
    from realtime.pose import create_backend

    clf = ActionClassifier.load(SHIPPED)
    window = TrackWindow(clf.spec)
    backend = create_backend("blazepose")
    cap = cv2.VideoCapture(str(datasets / "weizmann" / clip))
    shown = Counter()
    index = 0
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            poses = backend.estimate(image)
            if len(poses):
                window.add(index / 25.0, poses.keypoints[0], poses.scores[0])
                features = window.features()
                if features is not None:
                    shown[clf.predict(features[None])[0].label] += 1
            index += 1
    finally:
        cap.release()
        backend.close()
    assert shown, "no window was ever classified"
    assert shown.most_common(1)[0][0] == label, shown


@pytest.mark.mediapipe
def test_evaluate_scores_poses_from_round_robin_models(datasets, tmp_path):
    """--pose-workers 1 2 scores the same clips posed by one model and by two in turn."""
    root = tmp_path / "weizmann"
    for rel in ("wave2/denis_wave2.avi", "jack/lena_jack.avi"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(datasets / "weizmann" / rel)
    report = _evaluate(
        "--data",
        f"videos:{root}",
        "--weights",
        str(SHIPPED),
        "--pose-workers",
        "1",
        "2",
        "--cache",
        str(tmp_path / "cache"),
    )
    assert set(report["by_pose_workers"]) == {"1", "2"}
    for row in report["by_pose_workers"].values():
        assert row["clips"] == 2 and row["windows"] > 0
    assert report["by_pose_workers"]["1"]["accuracy"] == report["accuracy"]  # the headline is one model
    assert len(list((tmp_path / "cache").rglob("*.workers2.npz"))) == 2


def test_predicting_no_windows_with_a_bare_network_gives_an_empty_table():
    """`evaluate --weights` scores a plain ActionLSTMNet; data with no full window must not crash it."""
    from realtime.classifier import ActionLSTMNet
    from realtime.training import predict_windows

    spec = FeatureSpec()
    probs = predict_windows(ActionLSTMNet(spec, len(CLASSES)), np.zeros((0, spec.window, spec.dim), np.float32))
    assert probs.shape == (0, len(CLASSES))


def test_tcn_checkpoint_round_trip_and_an_old_lstm_file_still_loads(tmp_path):
    from realtime.classifier import ActionTCNNet

    spec = FeatureSpec(bones=True)
    net = ActionTCNNet(spec, len(CLASSES), 32, 3, 0.2).eval()
    save_checkpoint(tmp_path / "tcn.pt", net, CLASSES, spec, threshold=0.6)
    clf = ActionClassifier.load(tmp_path / "tcn.pt")
    assert clf.checkpoint.arch == "tcn" and clf.spec.bones and clf.checkpoint.num_layers == 3
    windows = np.random.default_rng(0).normal(size=(4, spec.window, spec.dim)).astype(np.float32)
    with torch.inference_mode():
        expected = torch.softmax(net(torch.from_numpy(windows)), dim=1).numpy()
    np.testing.assert_allclose(clf.predict_proba(windows), expected, atol=1e-5)
    # A format-1 file (LSTM only, no arch, no bones in its spec) is read as the LSTM it is.
    old = _rewrite(_saved(tmp_path), format="realtime-action-lstm/1")
    raw = torch.load(old, weights_only=True)
    del raw["arch"]
    raw["feature_spec"].pop("bones")
    torch.save(raw, old)
    ckpt = load_checkpoint(old)
    assert ckpt.arch == "lstm" and not ckpt.spec.bones
    with pytest.raises(WeightsError, match="'transformer' network"):
        load_checkpoint(_rewrite(tmp_path / "tcn.pt", arch="transformer"))


def test_graph_network_round_trips_and_runs_folded_live(datasets, tmp_path):
    """The ST-GCN-style network (`--arch gcn`): trained batch norms folded for live use change no
    probability on real KTH windows, and the checkpoint rebuilds it from the stored feature spec."""
    from realtime.classifier import ActionGCNNet
    from realtime.datasets import load_labelled
    from realtime.features import sequence_windows

    spec = FeatureSpec(bones=True, reaches=True)
    sequences = load_labelled([_kth(datasets)], tmp_path)[::12]
    windows = np.concatenate([sequence_windows(seq, spec, stride=8)[0] for seq in sequences])
    net = ActionGCNNet(spec, len(CLASSES), 16, 2, 0.2)
    net.train()
    with torch.no_grad():  # batch statistics of real windows, so that folding has something to fold
        net(torch.from_numpy(windows))
    net.eval()
    save_checkpoint(tmp_path / "gcn.pt", net, CLASSES, spec, threshold=0.5)
    clf = ActionClassifier.load(tmp_path / "gcn.pt")
    assert clf.checkpoint.arch == "gcn" and clf.checkpoint.hidden_size == 16 and clf.checkpoint.num_layers == 2
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)) for m in clf.model.modules())
    with torch.inference_mode():
        expected = torch.softmax(net(torch.from_numpy(windows)), dim=1).numpy()
    np.testing.assert_allclose(clf.predict_proba(windows), expected, atol=1e-5)
    # The weights hold no copy of the joint layout: a spec with other joints cannot load them.
    raw = torch.load(tmp_path / "gcn.pt", weights_only=True)
    assert not any("columns" in name or name == "adjacency" for name in raw["state_dict"])
    raw["feature_spec"]["joints"] = raw["feature_spec"]["joints"][:-2]
    torch.save(raw, tmp_path / "fewer.pt")
    with pytest.raises(WeightsError, match="shape"):
        load_checkpoint(tmp_path / "fewer.pt")


def test_live_classifier_folds_batch_norm_without_changing_a_probability(datasets, tmp_path):
    """Live prediction runs the TCN with each batch norm folded into its convolution; on real
    KTH windows the shipped weights must give the probabilities the trained network gives."""
    from realtime.datasets import load_labelled
    from realtime.features import sequence_windows

    clf = ActionClassifier.load(SHIPPED)
    layers = list(clf.model.modules())
    assert clf.checkpoint.arch == "tcn" and len(layers) > 5
    assert not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.Dropout)) for m in layers)
    sequences = load_labelled([_kth(datasets)], tmp_path)[::12]
    windows = np.concatenate([sequence_windows(seq, clf.spec, stride=8)[0] for seq in sequences])
    assert len(windows) >= 50
    trained = clf.checkpoint.build_model().eval()
    with torch.inference_mode():
        expected = torch.softmax(trained(torch.from_numpy(windows)), dim=1).numpy()
    got = clf.predict_proba(windows)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_threshold_keeps_false_actions_on_other_under_the_cap():
    from realtime.classifier import decide
    from realtime.training import choose_threshold, false_action_rate

    rng = np.random.default_rng(0)
    other, boxing = CLASSES.index("OTHER"), CLASSES.index("BOXING")
    y_true = np.array([other] * 100 + [boxing] * 100)
    probs = np.full((200, len(CLASSES)), 0.01)
    # A fifth of the OTHER windows look like unsure boxing (0.5-0.7), like half the boxing windows;
    # the other boxing windows are sure (0.8-0.99).
    probs[:100, other] = 0.9
    probs[:20, other], probs[:20, boxing] = 0.1, rng.uniform(0.5, 0.7, 20)
    probs[100:150, boxing] = rng.uniform(0.5, 0.7, 50)
    probs[150:, boxing] = rng.uniform(0.8, 0.99, 50)
    probs[100:, other] = 0.05
    probs /= probs.sum(axis=1, keepdims=True)
    loose = choose_threshold(probs, y_true, CLASSES, max_false_action=1.0)
    strict = choose_threshold(probs, y_true, CLASSES, max_false_action=0.05)
    assert false_action_rate(y_true, decide(probs, CLASSES, strict), CLASSES) <= 0.05
    assert strict > loose
    assert (decide(probs, CLASSES, strict)[150:] == boxing).all()  # the sure actions survive


def test_cross_fitted_threshold_is_tuned_on_the_other_folds_only():
    from realtime.evaluation import HeldOut, cross_fitted, score
    from realtime.features import PoseSequence

    other, boxing = CLASSES.index("OTHER"), CLASSES.index("BOXING")

    def fold_windows(unsure_other: int) -> tuple[np.ndarray, list[PoseSequence]]:
        """50 OTHER windows (the first `unsure_other` look like boxing at 0.6) and 50 sure BOXING ones."""
        probs = np.full((100, len(CLASSES)), 0.01)
        probs[:50, other], probs[50:, boxing] = 0.9, 0.9
        probs[:unsure_other, other], probs[:unsure_other, boxing] = 0.1, 0.6
        seqs = [
            PoseSequence(np.zeros((2, 17, 2)), np.zeros((2, 17)), [0.0, 0.1], label, "s", f"{label}.avi", "x")
            for label in ("OTHER", "BOXING")
        ]
        return probs / probs.sum(axis=1, keepdims=True), seqs

    held = HeldOut.empty(len(CLASSES))
    for fold, unsure in enumerate((10, 0)):  # fold 0's own models gave false actions, fold 1's did not
        probs, seqs = fold_windows(unsure)
        held.add(probs, [0] * 50 + [1] * 50, 0.0, seqs, fold=fold)
    tuned, thresholds = cross_fitted(held, CLASSES, max_false_action=0.05)
    # Fold 1's windows never needed rejection, so fold 0 gets none; fold 1 inherits fold 0's lesson.
    assert thresholds[0] == 0.0 and thresholds[1] > 0.6
    assert set(tuned.thresholds[held.folds == 1]) == {thresholds[1]}
    assert score(tuned, CLASSES)["false_action_rate"] == score(held, CLASSES)["false_action_rate"] == 0.1
    assert score(tuned.restrict(lambda s: True), CLASSES)["windows"] == 200


def test_subject_folds_hold_out_whole_subjects_and_spread_a_rare_class():
    from realtime.evaluation import subject_folds
    from realtime.features import PoseSequence

    def seq(source, subject, label):
        return PoseSequence(np.zeros((2, 17, 2)), np.zeros((2, 17)), [0.0, 0.1], label, subject, "", source)

    seqs = [seq("kth", f"p{i}", "BOXING") for i in range(3) for _ in range(4)]
    seqs += [
        seq("wild", "gym", "BOXING"),
        seq("wild", "gym", "OTHER"),
        seq("wild", "gym", "OTHER"),
        seq("wild", "webcam", "BOXING"),
        seq("wild", "webcam", "BOXING"),
        seq("wild", "yoga", "OTHER"),
    ]
    folds = subject_folds(seqs, 3)
    keys = [key for fold in folds for key in fold]
    assert sorted(keys) == sorted({f"{s.source}:{s.subject}" for s in seqs}) and len(keys) == len(set(keys))
    fold_of = {k: i for i, fold in enumerate(folds) for k in fold}
    assert fold_of["wild:gym"] != fold_of["wild:webcam"]  # wild boxing is never all held out at once
    assert len({fold_of[f"kth:p{i}"] for i in range(3)}) == 3
    assert subject_folds(seqs, 0) == [[k] for k in sorted(keys)]


def test_thinning_to_a_pose_rate_keeps_what_the_pipeline_would_pose():
    from realtime.evaluation import thin_to_rate
    from realtime.features import PoseSequence

    n = 100  # 4 s at 25 Hz
    seq = PoseSequence(np.random.default_rng(0).random((n, 17, 2)), np.ones((n, 17)), np.arange(n) / 25, "JUMPING")
    thinned = thin_to_rate(seq, 10)
    assert len(thinned) == 40 and len(thinned.keypoints) == len(thinned.scores) == 40
    assert np.array_equal(thinned.keypoints[1], seq.keypoints[np.searchsorted(seq.times, thinned.times[1])])
    assert thinned.label == "JUMPING" and thinned.meta["pose_fps"] == 10


@pytest.mark.training
@pytest.mark.slow
def test_classes_of_your_own_train_evaluate_and_label_live(datasets, tmp_path):
    """A researcher's own classes, from their own labels file, through train, evaluate and a live run."""
    mine = tmp_path / "mine"
    for subject in ("daria", "eli", "ido", "lena"):
        for action in ("jack", "wave1", "walk"):
            (mine / action).mkdir(parents=True, exist_ok=True)
            source = datasets / "weizmann" / action / f"{subject}_{action}.avi"
            (mine / action / f"{subject}_{action}.avi").symlink_to(source)
    labels = tmp_path / "labels.yaml"
    labels.write_text("videos:\n  jack: STAR_JUMP\n  wave1: HELLO\n  walk: OTHER\n")
    weights, runs, cache = tmp_path / "mine.pt", str(tmp_path / "runs"), str(tmp_path / "cache")
    common = ["--data", f"videos:{mine}", "--labels", str(labels), "--cache", cache, "--runs", runs]
    proc = run_cli(
        "train", *common, "--epochs", "6", "--min-epochs", "6", "--hidden", "32", "--epoch-windows", "512",
        "--threshold", "0.5", "--quiet", "--out", str(weights), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "STAR_JUMP=" in proc.stdout and "HELLO=" in proc.stdout and "BOXING" not in proc.stdout
    clf = ActionClassifier.load(weights)
    assert clf.labels == ("STAR_JUMP", "HELLO", "OTHER")

    report = _evaluate("--weights", str(weights), *common)
    assert set(report["per_class"]) == {"STAR_JUMP", "HELLO", "OTHER"} and report["threshold"] == 0.5
    assert report["clip_accuracy"] >= 0.75  # seen people, so nearly every clip; chance is a third
    packaged = run_cli("evaluate", "--weights", str(weights), "--data", f"videos:{mine}", "--cache", cache)
    assert packaged.returncode == 2 and "pass the --labels FILE it was trained with" in packaged.stderr

    events = tmp_path / "events.jsonl"
    clip = datasets / "weizmann" / "jack" / "eli_jack.avi"
    live = run_cli("--source", str(clip), "--headless", "--weights", str(weights), "--events", str(events))
    assert live.returncode == 0, live.stderr[-2000:]
    actions = [e["label"] for e in read_events(events) if e["type"] == "action"]
    assert actions and Counter(actions).most_common(1)[0][0] == "STAR_JUMP"
