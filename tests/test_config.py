"""Config loading: defaults from config.yaml, overrides from flags, one clear line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import REPO
from realtime.__main__ import build_parser, overrides_from
from realtime.config import DEFAULT_WEIGHTS, Config, cameras_of, load_config, weights_path
from realtime.errors import ConfigError


def test_shipped_config_states_every_default():
    """config.yaml holds every default, so what users read there is what runs."""
    from_file = load_config(REPO / "config.yaml")
    defaults = Config()
    assert from_file == defaults

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
        return out

    import dataclasses

    assert keys(yaml.safe_load((REPO / "config.yaml").read_text())) == keys(dataclasses.asdict(defaults))


def test_flags_override_the_file(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("source: clip.avi\npose:\n  skip: 3\nclassifier:\n  weights: w/model.pt\n")
    args = build_parser().parse_args(["--config", str(cfg_file), "--skip", "1", "--headless"])
    config = load_config(args.config, overrides_from(args))
    assert config.pose.skip == 1
    assert config.output.headless is True
    # Relative paths in a file are the file's; the file's folder, not the working directory.
    assert Path(config.source) == tmp_path / "clip.avi"
    assert Path(config.classifier.weights) == tmp_path / "w" / "model.pt"


def test_camera_index_may_be_a_number(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("source: 2\n")
    assert load_config(cfg_file).source == "2"


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour: red\n", "unknown key 'colour'"),
        ("output:\n  headless: maybe\n", "output.headless must be bool"),
        ("pose:\n  min_score: 1.5\n", "pose.min_score must be at most 1"),
        ("max_frames: 0\n", "max_frames must be at least 1"),
        ("capture:\n  policy: newest\n", "capture.policy must be one of auto, lossless, drop_oldest"),
        ("pose:\n  detectron2:\n    device: tpu\n", "pose.detectron2.device must be one of auto, cpu, cuda"),
    ],
)
def test_mistakes_name_the_key_and_what_is_allowed(tmp_path, text, message):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_default_weights_are_the_shipped_file_from_any_folder(tmp_path, monkeypatch):
    """A config file elsewhere that says nothing of weights still gets the shipped classifier."""
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("pose:\n  skip: 1\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(cfg_file)
    assert weights_path(config) == DEFAULT_WEIGHTS == REPO / "weights" / "action_classifier.pt"
    assert DEFAULT_WEIGHTS.is_file()


def test_cameras_from_the_file_and_from_flags(tmp_path):
    cfg_file = tmp_path / "cams.yaml"
    cfg_file.write_text(
        "pose_fps: 10\ncameras:\n  - name: door\n    source: clips/door.mp4\n    pose_fps: 5\n"
        "  - name: hall\n    source: rtsp://127.0.0.1:8554/hall\n"
    )
    cameras = cameras_of(load_config(cfg_file))
    assert [(c.name, c.pose_fps) for c in cameras] == [("door", 5.0), ("hall", 10.0)]
    assert cameras[0].source == str(tmp_path / "clips" / "door.mp4")  # relative to the file
    assert cameras[1].source == "rtsp://127.0.0.1:8554/hall"
    args = build_parser().parse_args(["--source", "a=x.mp4", "--source", "rtsp://h/s"])
    assert [(c.name, c.source) for c in cameras_of(load_config(cfg_file, overrides_from(args)))] == [
        ("a", "x.mp4"),
        ("cam1", "rtsp://h/s"),
    ]
    bare = build_parser().parse_args(["--source", "0"])
    assert [(c.name, c.source) for c in cameras_of(load_config(None, overrides_from(bare)))] == [("cam0", "0")]


def test_several_cameras_are_posed_10_times_a_second_unless_told_otherwise(tmp_path):
    one = tmp_path / "one.yaml"
    one.write_text("source: clip.mp4\n")
    assert [c.pose_fps for c in cameras_of(load_config(one))] == [None]  # one camera: every frame it can
    several = tmp_path / "several.yaml"
    several.write_text(
        "cameras:\n  - name: a\n    source: 0\n  - name: b\n    source: 1\n    pose_fps: 0\n"
        "  - name: c\n    source: 2\n    pose_fps: 5\n"
    )
    assert [c.pose_fps for c in cameras_of(load_config(several))] == [10.0, None, 5.0]  # 0 = no cap
    several.write_text("pose_fps: 0\ncameras:\n  - name: a\n    source: 0\n  - name: b\n    source: 1\n")
    assert [c.pose_fps for c in cameras_of(load_config(several))] == [None, None]


@pytest.mark.parametrize(
    "text, message",
    [
        ("cameras:\n  - name: Door\n    source: 0\n", "must be lowercase letters"),
        ("cameras:\n  - name: a\n    source: 0\n  - name: a\n    source: 1\n", "used twice"),
        ("cameras:\n  - name: a\n", "must have a source"),
        ("cameras:\n  - name: a\n    source: 0\n    pose_fps: -1\n", "pose_fps must be at least 0"),
    ],
)
def test_camera_mistakes_are_one_line(tmp_path, text, message):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_source_names_its_camera_or_is_a_path(tmp_path, monkeypatch):
    from realtime.config import parse_camera_arg

    assert (parse_camera_arg("door=rtsp://cam/s", 0).name, parse_camera_arg("door=rtsp://cam/s", 0).source) == (
        "door",
        "rtsp://cam/s",
    )
    assert parse_camera_arg("rtsp://cam/s?a=b", 1).name == "cam1"
    with pytest.raises(ConfigError, match=r"camera name 'Door' must be lowercase .* \(e\.g\. door=rtsp://cam/s\)"):
        parse_camera_arg("Door=rtsp://cam/s", 0)
    monkeypatch.chdir(tmp_path)
    Path("Take=2.mp4").write_bytes(b"")  # a file whose name only looks like NAME=SOURCE stays a file
    assert parse_camera_arg("Take=2.mp4", 0).source == "Take=2.mp4"


def test_relative_paths_in_a_file_are_the_files_own_and_flags_beat_its_cameras(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "cams.yaml").write_text(
        "source: clip.avi\n"
        "pose:\n  detectron2:\n    weights: model.pkl\n"
        "cameras:\n  - {name: door, source: rtsp://cam/s, pose_fps: 5}\n  - {name: hall, source: hall.avi, skip: 1}\n"
    )
    monkeypatch.chdir(tmp_path)  # not the file's folder
    config = load_config(folder / "cams.yaml")
    assert config.source == str(folder / "clip.avi")
    assert config.pose.detectron2.weights == str(folder / "model.pkl")
    assert [c.source for c in config.cameras] == ["rtsp://cam/s", str(folder / "hall.avi")]
    assert [(c.pose_fps, c.skip) for c in cameras_of(config)] == [(5, 0), (10, 1)]
    flagged = load_config(folder / "cams.yaml", {"pose_fps": 0, "pose": {"skip": 2}, "source": "here.avi"})
    assert [(c.pose_fps, c.skip) for c in cameras_of(flagged)] == [(None, 2), (None, 2)]  # 0 = no cap
    assert flagged.source == "here.avi"  # a flag's path stays the working folder's
