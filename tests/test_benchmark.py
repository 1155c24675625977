"""scripts/benchmark.py in quick mode: real clip, real MediaPipe, real threads. Checks the report, never speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "benchmark.py"
STAGES = {"decode", "pose", "classify", "overlay", "write"}
TOP_KEYS = {"threaded_fps", "serial_fps", "speedup", "limit_ratio", "latency_ms_p50", "latency_ms_p95", "dropped",
            "peak_rss_mb", "lstm_ms_per_batch", "stage_ms", "by_skip", "live", "load_average", "command", "runs"}


def run_benchmark(*args: str, timeout: float = 280) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


@pytest.fixture(scope="module")
def quick(tmp_path_factory, datasets):
    out = tmp_path_factory.mktemp("bench")
    proc = run_benchmark("--quick", "--seconds", "2", "--json", str(out / "b.json"), "--markdown",
                         str(out / "b.md"), "--plot", str(out / "b.png"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, json.loads((out / "b.json").read_text()), proc.stdout


@pytest.mark.slow
def test_quick_run_reports_every_measure(quick):
    _, result, stdout = quick
    assert TOP_KEYS <= set(result)
    assert set(result["by_skip"]) == {"0", "1", "4"}
    assert set(result["lstm_ms_per_batch"]) == {"1", "4", "8"}
    assert all(ms > 0 for ms in result["lstm_ms_per_batch"].values())
    assert result["peak_rss_mb"] > 50
    assert "load average" in stdout  # noisy machines: every report says what load it met
    assert 0 < result["available_cores"]["start"] <= (os.cpu_count() or 1) * 1.05
    assert "random-init" in result["weights"]


@pytest.mark.slow
def test_both_designs_process_every_frame_of_the_same_input(quick):
    _, result, _ = quick
    for skip, row in result["by_skip"].items():
        assert row["frames"] == row["serial_frames"] == 60, skip  # 2 s at 30 fps, nothing lost
        assert row["threaded_fps"] > 0 and row["serial_fps"] > 0
        assert row["speedup"] == pytest.approx(row["threaded_fps"] / row["serial_fps"], rel=0.01)
        assert set(row["stage_ms"]) == STAGES and set(row["serial_stage_ms"]) == STAGES
        assert row["stage_ms"]["pose"] > 0 and min(row["stage_ms"].values()) >= 0


@pytest.mark.slow
def test_stage_times_fit_inside_the_measured_time(quick):
    _, result, _ = quick
    for run in result["runs"]:
        stages = run["stage_ms"]
        # One thread does all stages (serial) or each stage (threaded; pose shared by its
        # workers, one frame after another each): none can have been busy longer than the run lasted.
        if run["mode"] == "serial":
            assert run["pose_workers"] == 1
            busy_ms = sum(stages.values())
        else:
            busy_ms = max(ms / (run["pose_workers"] if stage == "pose" else 1) for stage, ms in stages.items())
        assert busy_ms * run["frames_out"] <= run["seconds"] * 1000 * 1.01, run
        assert 0 < run["limit_ratio"] <= 1.01, run
        assert 0 < run["cores_used"] <= (os.cpu_count() or 1) * 1.05, run
        assert run["cpu_ms_per_frame"] > 0, run


@pytest.mark.slow
def test_skipping_poses_fewer_frames(quick):
    _, result, _ = quick
    pose = {skip: row["stage_ms"]["pose"] for skip, row in result["by_skip"].items()}
    # Pose time per output frame is spread over (skip+1) frames; 4 of 5 frames skip it entirely.
    assert pose["4"] < pose["0"]


@pytest.mark.slow
def test_live_mode_accounts_for_every_frame(quick):
    _, result, _ = quick
    live = result["live"]
    assert live["frames_in"] == 60
    assert live["frames_out"] + live["dropped"] == live["frames_in"]
    assert result["dropped"] == live["dropped"]
    assert 0 < result["latency_ms_p50"] <= result["latency_ms_p95"]


@pytest.mark.slow
def test_writes_markdown_table_and_png(quick):
    out, result, _ = quick
    text = (out / "b.md").read_text()
    assert "| skip | serial FPS | threaded FPS |" in text
    assert result["command"] in text
    for skip in ("0", "1", "4"):
        assert f"\n| {skip} | " in text
    assert (out / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # the script loads torch and MediaPipe before it looks at the source
def test_bad_source_is_one_line_error(tmp_path):
    proc = run_benchmark("--quick", "--source", str(tmp_path / "missing.mp4"), "--markdown", "", "--plot", "",
                         timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("benchmark: error: video file")
    assert "Traceback" not in proc.stderr
