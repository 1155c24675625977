"""`realtime benchmark` in quick mode, every mode for real: real clips, real models, real threads,
a real RTSP server and the real web app. Checks what the results say and that they add up,
never how fast anything was; and that a run leaves the checkout as it was."""

from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest

from conftest import REPO, run_cli
from realtime.classifier import load_checkpoint
from realtime.config import DEFAULT_WEIGHTS

STAGES = {"decode", "pose", "classify", "overlay", "write"}
BACKENDS = ("movenet", "blazepose")  # the default side by side
CLASSES = {"JUMPING", "JUMPING_JACKS", "BOXING", "WAVING_2HANDS", "WAVING_1HAND", "CLAPPING_HANDS", "OTHER"}


def repo_state() -> str:
    """Everything git sees changed or new in the checkout (ignored files aside)."""
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout


def bench(*args: str, timeout: float = 800) -> subprocess.CompletedProcess:
    before = repo_state()
    proc = run_cli("benchmark", *args, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert repo_state() == before, "the benchmark changed the checkout"
    return proc


@pytest.fixture(scope="module")
def throughput(tmp_path_factory, datasets):
    out = tmp_path_factory.mktemp("throughput")
    proc = bench(
        "--quick",
        "--clips",
        "one,tiled",
        "--backends",
        ",".join(BACKENDS),
        "--json",
        str(out / "result.json"),
        "--report",
        str(out / "report"),
    )
    return out, json.loads((out / "result.json").read_text()), proc.stderr


@pytest.fixture(scope="module")
def cameras(tmp_path_factory, datasets):
    out = tmp_path_factory.mktemp("cameras")
    proc = bench("cameras", "--quick", "--json", str(out / "result.json"))
    return json.loads((out / "result.json").read_text()), proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_throughput_runs_every_clip_and_backend_on_every_frame(throughput):
    _, result, log = throughput
    assert "load average" in log  # a shared machine: every run says what load it met
    rows = {(r["clip"], r["backend"]): r for r in result["rows"]}
    assert set(rows) == {(clip, backend) for clip in ("one", "tiled") for backend in BACKENDS}
    for key, row in rows.items():
        assert row["frames"] == row["serial_frames"] == 60, key  # 2 s at 30 fps: nothing lost by either design
        assert row["speedup"] == pytest.approx(row["threaded_fps"] / row["serial_fps"], rel=0.01)
        assert row["threaded_ms_per_frame"] == pytest.approx(1000 / row["threaded_fps"], rel=0.01)
        assert set(row["stage_ms"]) == set(row["serial_stage_ms"]) == STAGES
        assert row["stage_ms"]["pose"] > 0 and min(row["stage_ms"].values()) >= 0
        live = row["live"]
        assert live["frames_in"] == 60 and live["frames_out"] + live["dropped"] == live["frames_in"]
        assert 0 < live["latency_ms_p50"] <= live["latency_ms_p95"] <= live["latency_ms_max"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_movenet_finds_the_tiled_people_alike_in_both_designs(throughput):
    """MoveNet keeps no state but its zoom, so dealing frames over two models poses each frame as one
    model does, except the second model's first frame: it comes before that model has zoomed."""
    _, result, _ = throughput
    rows = {(r["clip"], r["backend"]): r for r in result["rows"]}
    tiled, one = rows[("tiled", "movenet")], rows[("one", "movenet")]
    assert tiled["people_mean"] == pytest.approx(tiled["serial_people_mean"], abs=1.001 / tiled["frames"])
    assert tiled["people_mean"] > 2 * one["people_mean"] > 0  # several people where there are four
    assert rows[("one", "blazepose")]["people_mean"] <= 1.0  # BlazePose finds one person at most


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_stage_times_fit_inside_each_run(throughput):
    _, result, _ = throughput
    for run in result["runs"]:
        stages = run["stage_ms"]
        # One thread does every stage (serial) or each stage (threaded; pose shared by its workers):
        # none can have been busy longer than the run lasted.
        if run["mode"] == "serial":
            assert run["pose_workers"] == 1
            busy_ms = sum(stages.values())
        else:
            busy_ms = max(ms / (run["pose_workers"] if stage == "pose" else 1) for stage, ms in stages.items())
        assert busy_ms * run["frames_out"] <= run["seconds"] * 1000 * 1.01, run
        assert 0 < run["limit_ratio"] <= 1.01 and run["cpu_ms_per_frame"] > 0, run


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_targets_are_read_from_the_rows(throughput):
    _, result, _ = throughput
    rows = {(r["clip"], r["backend"]): r for r in result["rows"]}
    targets = {t["measure"]: t for t in result["targets"]}
    tiled = rows[("tiled", "movenet")]
    assert targets["threaded FPS, 4 people"]["measured"] == tiled["threaded_fps"]
    assert targets["live latency p95 ms, 4 people"]["measured"] == tiled["live"]["latency_ms_p95"]
    assert targets["people found per frame / true count, tiled"]["measured"] == pytest.approx(
        tiled["people_mean"] / 4, abs=1e-3
    )
    for t in result["targets"]:
        assert t["met"] == (t["measured"] >= t["target"] if t["op"] == ">=" else t["measured"] <= t["target"])
    assert set(result["classifier_ms_per_batch"]) == {"1", "4", "8"} and result["cli"]["peak_rss_mb"] > 50
    assert targets["classifier ms per batch of 8 windows"]["measured"] == result["classifier_ms_per_batch"]["8"]
    # The shipped classifier is what is timed, and the report names its architecture.
    assert result["classifier_arch"] == load_checkpoint(DEFAULT_WEIGHTS).arch


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_report_is_written_only_where_asked_and_rebuilds_from_json(throughput, tmp_path):
    out, result, _ = throughput
    report = out / "report"
    assert sorted(p.name for p in report.iterdir()) == ["benchmark.json", "benchmark.md", "benchmark.png"]
    text = (report / "benchmark.md").read_text()
    assert "| clip | backend | skip | people / frame | serial FPS | threaded FPS |" in text
    assert result["meta"]["command"] in text and f"| tiled | {BACKENDS[0]} | 0 |" in text
    assert f"Classifier ({result['classifier_arch']}) per batch of windows: 1 " in text
    assert (report / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((report / "benchmark.json").read_text()) == result
    bench("--from-json", str(out / "result.json"), "--report", str(tmp_path), timeout=120)
    assert (tmp_path / "benchmark.md").read_text() == text


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cameras_account_for_every_frame_and_keep_their_labels(cameras):
    result, log = cameras
    assert "load average" in log
    assert [run["cameras"] for run in result["runs"]] == [1, 2]
    for run in result["runs"]:
        rows = run["rows"]
        assert [r["name"] for r in rows] == [f"cam{i}" for i in range(run["cameras"])]
        assert len({r["clip"] for r in rows}) == len(rows)  # each camera its own clip
        assert all(r["frames_in"] == 100 for r in rows)  # 4 s at 25 fps, paced
        # Every frame read was shown or dropped, before pose (per camera) or after (shared).
        shown = sum(r["frames_out"] for r in rows)
        assert shown + sum(r["dropped_before_pose"] for r in rows) + run["dropped_after_pose"] == 100 * len(rows)
        for r in rows:
            assert r["poses_per_s"] > 0 and 0 < r["latency_ms_p50"] <= r["latency_ms_p95"]
            assert r["reference_label"] in CLASSES and 0 <= r["label_agreement"] <= 1
        assert run["holds"] == (
            run["dropped_after_pose"] == 0 and all(r["poses_per_s"] >= 9 and r["latency_ms_p95"] <= 200 for r in rows)
        )
        assert run["cpu_per_camera"] > 0
    most = 0
    for run in result["runs"]:  # the most cameras before the first count that did not keep up
        if not run["holds"]:
            break
        most = run["cameras"]
    assert result["most_cameras"] == most
    assert result["labels_equal"] == all(
        r["label"] == r["reference_label"] for run in result["runs"] for r in run["rows"]
    )


@pytest.mark.slow
@pytest.mark.rtsp
def test_soak_drops_oldest_against_slow_inference(tmp_path, datasets):
    # 100 ms more per pose: two models pose at most 20 frames a second of the 30 sent, so frames must drop.
    bench(
        "soak",
        "--quick",
        "--minutes",
        "0.2",
        "--every-s",
        "4",
        "--extra-ms",
        "100",
        "--json",
        str(tmp_path / "soak.json"),
    )
    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["error"] is None and result["reconnects"] == 0 and result["ok"] is True
    assert len(result["intervals"]) >= 2
    assert result["frames_out"] > 0 and result["dropped"] > 0
    assert result["frames_out"] + result["dropped"] <= result["frames_in"]
    assert sum(i["read"] for i in result["intervals"]) <= result["frames_in"]
    assert result["rss_drift_mb"] == pytest.approx(result["rss_end_mb"] - result["rss_warm_mb"], abs=0.11)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_web_job_times_each_result_format(tmp_path, datasets):
    bench("web-job", "--quick", "--json", str(tmp_path / "web.json"))
    result = json.loads((tmp_path / "web.json").read_text())
    hows = [t["how"] for t in result["timings"]]
    assert hows == [
        "web job, h264 result + events",
        "web job, vp8 result + events",
        "pipeline, VP8 WebM",
        "pipeline, H.264 fragmented MP4",
    ]
    for t in result["timings"]:
        assert t["frames"] == 30 and t["seconds"] > 0  # --quick: 30 frames of the upload
        assert t["fps"] == pytest.approx(t["frames"] / t["seconds"], rel=0.01)


@pytest.mark.slow
def test_reps_reports_each_clip_against_its_true_count(tmp_path, datasets):
    proc = bench("reps", "--quick", "--json", str(tmp_path / "reps.json"))
    result = json.loads((tmp_path / "reps.json").read_text())
    assert len(result["clips"]) == 3 and len(result["still"]) == 3  # --quick: three of each kind
    for row in result["clips"]:
        assert row["true"] > 0 and row["error"] == row["count"] - row["true"]
        assert proc.stdout.count(f"| {row['clip']} | {row['true']} | {row['count']} |") == 1
    assert result["within_one"] == sum(abs(r["error"]) <= 1 for r in result["clips"]) / 3
    assert [t["measure"] for t in result["targets"]] == [
        "reps within one",
        "reps MAE / mean count",
        "reps on still clips",
        "reps ms per person per frame",
    ]
    assert result["cost_ms_per_person_frame"] > 0
    assert "target reps within one:" in proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("detectron2") is not None, reason="detectron2 is installed here")
def test_detectron2_mode_without_detectron2_is_one_line(datasets):
    proc = run_cli("benchmark", "detectron2", "--quick", timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("realtime: error: --pose detectron2 needs detectron2")


@pytest.mark.detectron2
@pytest.mark.skipif(importlib.util.find_spec("detectron2") is None, reason="needs .venv-d2")
def test_detectron2_mode_times_each_size(tmp_path, datasets):
    bench("detectron2", "--quick", "--sizes", "320,480", "--json", str(tmp_path / "d2.json"), timeout=600)
    rows = json.loads((tmp_path / "d2.json").read_text())["rows"]
    assert [(r["source"], r["min_size_test"]) for r in rows] == [
        (source, size) for source in ("daria_jack.avi", "exercise.avi") for size in (320, 480)
    ]
    assert all(r["frames"] == 1 and 0 < r["wall_s_per_frame_median"] <= r["wall_s_per_frame_max"] for r in rows)


@pytest.mark.parametrize(
    "args, message",
    [
        (("--from-json", "x.json"), "--from-json needs --report DIR"),
        (("soak", "--size", "big"), "--size 'big' must be WIDTHxHEIGHT"),
        (("--clips", "one,two"), "--clips 'one,two' must name some of one, exercise, tiled"),
        (("--from-json", "missing.json", "--report", "out"), "--from-json missing.json: cannot read a saved result"),
    ],
)
def test_bad_arguments_are_one_line(args, message):
    proc = run_cli("benchmark", *args, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("realtime: error: ") and message in last


@pytest.mark.parametrize(
    "mode, flags, problem",
    [
        ("throughput", ["--rounds", "0"], "--rounds must be >= 1"),  # 0 was taken as "not given": 3 rounds
        ("throughput", ["--seconds", "0"], "--seconds > 0"),
        ("cameras", ["--counts", "0"], "camera counts of 1 or more"),  # fell back to webcam 0
        ("cameras", ["--pose-fps", "-5"], "--pose-fps must be more than 0"),  # ran uncapped
        ("soak", ["--minutes", "0"], "--minutes and --every-s must be more than 0"),  # ran 10 minutes
    ],
)
def test_a_benchmark_flag_of_zero_is_refused_not_replaced_by_the_default(mode, flags, problem):
    proc = run_cli("benchmark", mode, "--quick", *flags, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert problem in proc.stderr.strip().splitlines()[-1]
