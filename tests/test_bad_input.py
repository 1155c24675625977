"""Every covered bad input ends in one clear line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import subprocess

import pytest
import torch

from conftest import count_frames, read_events, run_cli

pytestmark = pytest.mark.slow


def assert_one_line_error(proc, *fragments: str) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("realtime: error:")]
    assert len(errors) == 1, proc.stderr
    assert lines == errors, f"unexpected extra output on stderr: {proc.stderr}"
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_missing_camera(random_weights):
    # No camera devices exist on these machines: index 0 is as missing as it gets.
    proc = run_cli("--source", "0", "--headless", "--weights", str(random_weights))
    assert_one_line_error(proc, "no camera at index 0", "use --source FILE or URL")


def test_missing_file(tmp_path, random_weights):
    proc = run_cli("--source", str(tmp_path / "nope.mp4"), "--headless", "--weights", str(random_weights))
    assert_one_line_error(proc, "not found", "nope.mp4")


def test_directory_instead_of_file(tmp_path, random_weights):
    proc = run_cli("--source", str(tmp_path), "--headless", "--weights", str(random_weights))
    assert_one_line_error(proc, "cannot be read")


def test_empty_source():
    proc = run_cli("--source", "", "--headless")
    assert_one_line_error(proc, "no source given", "--source")


def test_zero_byte_file(tmp_path, random_weights):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    proc = run_cli("--source", str(empty), "--headless", "--weights", str(random_weights))
    assert_one_line_error(proc, "empty.mp4", "is empty (0 bytes)")


def test_output_is_a_folder(tmp_path, weizmann_clip, random_weights):
    proc = run_cli(
        "--source", str(weizmann_clip), "--headless", "--weights", str(random_weights), "--output", str(tmp_path)
    )
    assert_one_line_error(proc, "is a folder", "out.mp4")


def test_bad_camera_name_on_the_command_line(weizmann_clip):
    proc = run_cli("--source", f"door={weizmann_clip}", "--source", f"door={weizmann_clip}", "--headless")
    assert_one_line_error(proc, "'door' is used twice")


def test_corrupt_file(tmp_path, random_weights):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(bytes(range(256)) * 64)
    proc = run_cli("--source", str(junk), "--headless", "--weights", str(random_weights))
    assert_one_line_error(proc, "junk.avi", "corrupt or not a video")


def test_truncated_file_keeps_frames_before_the_damage(tmp_path, weizmann_clip, random_weights):
    clip = tmp_path / "truncated.avi"
    data = weizmann_clip.read_bytes()
    clip.write_bytes(data[: len(data) // 2])
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
    # The "frames in/out" summary line still goes to stdout; stderr carries the one error.
    assert_one_line_error(proc, "truncated or corrupt")
    summary = read_events(events)[-1]
    assert summary["type"] == "summary"
    written = count_frames(out)
    assert 0 < written == summary["frames_out"] < count_frames(weizmann_clip)


def test_unreachable_url(random_weights):
    # Port 9 on loopback: nothing listens there.
    proc = run_cli("--source", "rtsp://127.0.0.1:9/none", "--headless", "--weights", str(random_weights), timeout=60)
    line = assert_one_line_error(proc, "cannot open stream", "127.0.0.1:9", "refused or not found")
    assert "within" not in line  # refused at once: no timeout was waited out


def test_unsupported_url_scheme():
    proc = run_cli("--source", "gopher://example/x", "--headless")
    assert_one_line_error(proc, "unsupported scheme")


@pytest.mark.parametrize(
    "yaml_text, fragments",
    [
        ("pose:\n  skp: 1\n", ("unknown key 'pose.skp'", "skip")),
        ("pose:\n  skip: -1\n", ("pose.skip", "at least 0")),
        ("pose:\n  backend: openpose\n", ("pose.backend", "movenet, blazepose, detectron2")),
        ("capture:\n  queue_size: many\n", ("capture.queue_size", "int")),
        ("output: [1, 2]\n", ("output", "mapping")),
        ("pose: {skip: 1\n", ("not valid YAML",)),
    ],
)
def test_bad_config(tmp_path, weizmann_clip, yaml_text, fragments):
    config = tmp_path / "config.yaml"
    config.write_text(yaml_text)
    proc = run_cli("--config", str(config), "--source", str(weizmann_clip), "--headless")
    assert_one_line_error(proc, *fragments)


def test_missing_config_file(tmp_path):
    proc = run_cli("--config", str(tmp_path / "absent.yaml"), "--headless")
    assert_one_line_error(proc, "absent.yaml", "not found")


def test_missing_weights(tmp_path, weizmann_clip):
    proc = run_cli("--source", str(weizmann_clip), "--headless", "--weights", str(tmp_path / "absent.pt"))
    assert_one_line_error(proc, "absent.pt", "not found", "python -m realtime train")


def test_garbage_weights(tmp_path, weizmann_clip):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint at all")
    proc = run_cli("--source", str(weizmann_clip), "--headless", "--weights", str(bad))
    assert_one_line_error(proc, "garbage.pt", "is not a PyTorch checkpoint or is damaged")


def test_wrong_shaped_weights(tmp_path, weizmann_clip, random_weights):
    raw = torch.load(random_weights, weights_only=True)
    raw["state_dict"]["head.weight"] = torch.zeros(7, 99)
    bad = tmp_path / "wrong_shape.pt"
    torch.save(raw, bad)
    proc = run_cli("--source", str(weizmann_clip), "--headless", "--weights", str(bad))
    assert_one_line_error(proc, "head.weight", "(7, 99)")


def test_weights_without_other_among_their_labels(tmp_path, weizmann_clip, random_weights):
    raw = torch.load(random_weights, weights_only=True)
    raw["labels"][-1] = "DANCING"  # a class of one's own is fine; OTHER, what rejection calls, must stay
    bad = tmp_path / "labels.pt"
    torch.save(raw, bad)
    proc = run_cli("--source", str(weizmann_clip), "--headless", "--weights", str(bad))
    assert_one_line_error(proc, "DANCING", "including OTHER")


def test_no_display_without_headless(weizmann_clip, random_weights):
    proc = run_cli("--source", str(weizmann_clip), "--weights", str(random_weights), env={"DISPLAY": ""})
    assert_one_line_error(proc, "no display", "--headless")


def test_a_display_nobody_answers_is_an_error_not_an_abort(tmp_path, weizmann_clip, random_weights):
    """A DISPLAY left from another session made Qt abort the process (exit 134) with no word."""
    events = tmp_path / "events.jsonl"
    args = ["--source", str(weizmann_clip), "--weights", str(random_weights), "--events", str(events)]
    proc = run_cli(*args, env={"DISPLAY": ":97"})  # no X server on :97 here
    assert_one_line_error(proc, "no X server answers at DISPLAY=:97", "--headless")


@pytest.mark.parametrize("flag, name", [("--output", "x.mp4"), ("--events", "e.jsonl"), ("--timeline", "t.png")])
def test_an_output_whose_folder_cannot_be_made_fails_at_the_start(tmp_path, weizmann_clip, random_weights, flag, name):
    blocker = tmp_path / "c.yaml"
    blocker.write_text("a file where a folder would have to be\n")
    args = ["--source", str(weizmann_clip), "--headless", "--weights", str(random_weights)]
    proc = run_cli(*args, flag, str(blocker / name))
    assert_one_line_error(proc, f"{blocker} is a file, not a folder", str(blocker / name), "choose another path")


def test_unwritable_output(tmp_path, weizmann_clip, random_weights):
    out = tmp_path / "out.xyz"
    proc = run_cli("--source", str(weizmann_clip), "--headless", "--weights", str(random_weights), "--output", str(out))
    assert_one_line_error(proc, "unsupported extension", ".mp4")


@pytest.mark.parametrize("pace", [False, True], ids=["unpaced", "paced"])
def test_absurd_frame_rate_in_the_header_is_a_warning_and_read_at_25_fps(tmp_path, weizmann_clip, pace):
    """A header claiming 0.0102 fps (ffmpeg -r on the input rewrites only the timestamps): unpaced it cut
    one person into a new track every frame, paced it waited 98 s between frames."""
    damaged = tmp_path / "slow.avi"
    made = subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-r", "0.0102", "-i", str(weizmann_clip), "-c:v", "copy", str(damaged)],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    events = tmp_path / "events.jsonl"
    args = ["--source", str(damaged), "--headless", "--events", str(events)]
    try:
        proc = run_cli(*args, *(["--pace"] if pace else []), timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("89 frames were not read in 120 s: the source was paced at its absurd rate")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "0.0102 fps" in line]
    assert len(warnings) == 1 and "slow.avi" in warnings[0] and "at 25 fps" in warnings[0], proc.stderr
    log = read_events(events)
    opened = next(e for e in log if e.get("status") == "opened")
    assert opened["fps"] == 25.0 and opened["reported_fps"] == pytest.approx(0.0102)
    assert log[-1]["type"] == "summary" and 1 <= log[-1]["tracks"] <= 2, f"one person got {log[-1]['tracks']} track ids"


@pytest.mark.parametrize(
    ("args", "unknown"),
    [
        (("--source", "clip.mp4", "--ouput", "out.mp4"), "--ouput out.mp4"),  # a typo
        (("--source", "clip.mp4", "--headles"), "--headles"),  # not taken for --headless
        (("train", "--data", "kth:x.csv", "--epochz", "3"), "--epochz 3"),
        (("benchmark", "cameras", "--countz", "1"), "--countz 1"),
    ],
    ids=["typo", "abbreviation", "train", "benchmark"],
)
def test_an_unknown_flag_is_one_line_naming_it_and_the_help(args, unknown):
    proc = run_cli(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert f"error: unrecognized arguments: {unknown} — see python -m realtime" in line, line
    assert line.endswith(" --help"), line
