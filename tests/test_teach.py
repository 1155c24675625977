"""Teaching a new action through the `serve` API, on real squat clips, and switching models live.

The data has two people squatting (wild_dev OTHER: indstudy_squats_side.mp4, a woman seen
from the side; aerobeat_guard_squat.mp4, a man from the front). SQUAT is taught from the
first 6.5 s of each, and the held-out clips are the rest of each clip, cut with ffmpeg:
moments the model never saw, of the same two people (no third squatter exists here).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import poll_until_finished, read_events, start_cli
from realtime.classifier import ActionClassifier
from realtime.inference_worker import ActionClassification
from realtime.model_registry import ModelRegistry
from realtime.teach.runner import INTERRUPTED
from realtime.teach.trainer import TeachSettings
from realtime.types import FrameRecord, Poses, Track
from realtime.web.app import WebSettings, close_app, create_app
from realtime.web.jobs import JobSettings
from test_web_api import api, start_server

SQUATS = {"indstudy_squats_side.mp4": "woman_side", "aerobeat_guard_squat.mp4": "man_front"}
TAUGHT_SPAN = (0.0, 6.5)
# Training shares 2 cores with the other tests; on a quiet machine it takes about a third of this.
TRAIN_TIMEOUT_S = 900


def cut(src: Path, dst: Path, start_s: float) -> Path:
    """The clip from `start_s` on, re-encoded (a real file a user could upload)."""
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-ss",
            str(start_s),
            "-i",
            str(src),
            "-an",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(dst),
        ],
        check=True,
    )
    return dst


def post_clip(client, path: Path, **fields):
    with open(path, "rb") as f:
        return client.post(
            "/api/teach/clips", data={"video": (f, path.name), **fields}, content_type="multipart/form-data"
        )


def wait_training(client, training_id: str) -> dict:
    return poll_until_finished(client, f"/api/teach/train/{training_id}", TRAIN_TIMEOUT_S, 0.5)


def run_job(client, clip: Path) -> list[dict]:
    """The held-out clip analysed by the server's own job pipeline; its action events."""
    with open(clip, "rb") as f:
        reply = client.post("/api/jobs", data={"video": (f, clip.name)}, content_type="multipart/form-data")
    assert reply.status_code == 201, reply.get_json()
    job_id = reply.get_json()["id"]
    deadline = time.monotonic() + 120
    while client.get(f"/api/jobs/{job_id}").get_json()["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, "job did not finish"
        time.sleep(0.2)
    lines = client.get(f"/api/jobs/{job_id}/events.jsonl").get_data(as_text=True).splitlines()
    return [e for e in map(json.loads, lines) if e["type"] == "action"]


@pytest.fixture(scope="module")
def held_out(datasets, tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("held_out")
    return [cut(datasets / "wild_dev" / "OTHER" / name, folder / name, TAUGHT_SPAN[1]) for name in SQUATS]


@pytest.fixture(scope="module")
def weizmann_data(datasets) -> tuple[str, ...]:
    # The shipped data without wild_dev, whose OTHER folder holds these very squats as OTHER.
    return (f"videos:{datasets / 'weizmann'}",)


@pytest.mark.slow
@pytest.mark.training
@pytest.mark.timeout(1500)
def test_teach_squat_activate_it_and_roll_back(tmp_path, datasets, held_out, weizmann_data):
    app = create_app(WebSettings(jobs=JobSettings(work_dir=str(tmp_path)), teach=TeachSettings(data=weizmann_data)))
    client = app.test_client()
    try:
        refused = post_clip(client, datasets / "wild_dev" / "OTHER" / "indstudy_squats_side.mp4", action="squat")
        assert refused.status_code == 422 and "subject" in refused.get_json()["error"]
        for name, subject in SQUATS.items():
            reply = post_clip(
                client,
                datasets / "wild_dev" / "OTHER" / name,
                action="squat",
                subject=subject,
                start_s=str(TAUGHT_SPAN[0]),
                end_s=str(TAUGHT_SPAN[1]),
            )
            assert reply.status_code == 201, reply.get_json()
            assert reply.get_json()["action"] == "SQUAT" and reply.get_json()["span"] == list(TAUGHT_SPAN)

        reply = client.post("/api/teach/train", json={"epochs": 8, "subset": 30})
        assert reply.status_code == 202, reply.get_json()
        training_id = reply.get_json()["id"]
        assert client.post("/api/teach/train", json={}).status_code == 409  # one at a time
        done = wait_training(client, training_id)
        assert done["status"] == "done", done
        metrics = done["metrics"]
        # Two squatters: none can be held out, and the page must say so rather than show a figure that lies.
        assert any(w.startswith("SQUAT: no held-out person has it (2 recorded it") for w in metrics["warnings"])
        assert metrics["per_class"] and metrics["false_action"] is not None

        models = client.get("/api/models").get_json()["models"]
        assert [m["name"] for m in models] == ["shipped", "SQUAT-v2"]
        assert models[0]["active"] and not models[1]["active"]
        assert "SQUAT" in models[1]["classes"] and "BOXING" in models[1]["classes"]  # shipped classes kept
        figure = client.get("/api/models/2/figure.png")
        assert figure.status_code == 200 and figure.data[:8] == b"\x89PNG\r\n\x1a\n"

        before = [e for clip in held_out for e in run_job(client, clip)]
        assert before and all(e["model"] == "shipped" for e in before)
        assert "SQUAT" not in {e["label"] for e in before}

        assert client.post("/api/models/2/activate").get_json()["active"]
        taught = [run_job(client, clip) for clip in held_out]
        for events in taught:
            labels = Counter(e["label"] for e in events)
            assert all(e["model"] == "SQUAT-v2" for e in events)
            assert labels.most_common(1)[0][0] == "SQUAT", labels

        rolled = client.post("/api/models/rollback").get_json()
        assert rolled["name"] == "shipped" and rolled["active"]
        after = [e for clip in held_out for e in run_job(client, clip)]
        assert after and all(e["model"] == "shipped" for e in after)
        assert "SQUAT" not in {e["label"] for e in after}
        assert "OTHER" in {e["label"] for e in after}
    finally:
        close_app(app)


def multipart(path: Path, **fields: str) -> tuple[bytes, dict]:
    boundary = "realtime-teach-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="{path.name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + path.read_bytes()
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.slow
def test_a_server_killed_during_training_keeps_the_active_model_and_fails_the_training(tmp_path, datasets):
    work = tmp_path / "work"
    teach_data = ("--teach-data", f"videos:{datasets / 'weizmann'}")
    proc, base = start_server(work, *teach_data)
    try:
        body, headers = multipart(
            datasets / "wild_dev" / "OTHER" / "aerobeat_guard_squat.mp4", action="SQUAT", subject="man"
        )
        status, reply = api(base, "/api/teach/clips", body, headers)
        assert status == 201, reply
        status, reply = api(base, "/api/teach/train", b'{"epochs": 3}', {"Content-Type": "application/json"})
        assert status == 202, reply
        training_id = json.loads(reply)["id"]
        deadline = time.monotonic() + 60
        while json.loads(api(base, f"/api/teach/train/{training_id}")[1])["status"] != "running":
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.1)
        time.sleep(1.0)  # into the posing
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc, base = start_server(work, *teach_data)
    try:
        state = json.loads(api(base, f"/api/teach/train/{training_id}")[1])
        assert state["status"] == "failed" and state["error"] == INTERRUPTED
        models = json.loads(api(base, "/api/models")[1])["models"]
        assert [(m["name"], m["active"]) for m in models] == [("shipped", True)]
        assert not list((work / "models").glob(".training-*"))  # its scratch folder is gone
        # The clip survived: a new training may start at once.
        status, reply = api(base, "/api/teach/clips")
        assert status == 200 and len(json.loads(reply)["clips"]) == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


@pytest.mark.slow
def test_a_live_pipeline_switches_models_mid_stream_without_dropping_a_frame(tmp_path, exercise_clip, random_weights):
    from realtime.classifier import load_checkpoint
    from realtime.config import DEFAULT_WEIGHTS

    work = tmp_path / "work"
    registry = ModelRegistry(work)
    registry.ensure_base(DEFAULT_WEIGHTS, load_checkpoint(DEFAULT_WEIGHTS).labels)
    other = registry.add("random-test-only", load_checkpoint(random_weights).labels, random_weights, {})
    events = tmp_path / "events.jsonl"
    frames = 300
    proc = start_cli(
        "--source", str(exercise_clip), "--models", str(work), "--serve", "127.0.0.1:0", "--headless",
        "--events", str(events), "--flush-events", "--max-frames", str(frames),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (events.is_file() and '"type":"action"' in events.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
            time.sleep(0.05)
        registry.activate(other.id)  # as the Teach page of another process would
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "switched to model random-test-only" in err
    log = read_events(events)
    actions = [e for e in log if e["type"] == "action"]
    models = [e["model"] for e in actions]
    switch = models.index("random-test-only")
    assert switch > 0 and set(models[:switch]) == {"shipped"} and set(models[switch:]) == {"random-test-only"}
    summary = next(e for e in log if e["type"] == "summary")
    assert summary["frames_in"] == frames == summary["frames_out"] + summary["dropped"]
    assert summary["dropped"] == 0  # a file is read losslessly: the switch cost no frame
    assert actions[-1]["frame"] > actions[switch - 1]["frame"]


def test_the_classify_stage_takes_a_new_model_between_frames_and_rebuilds_windows_for_its_spec(
    datasets, random_weights
):
    from realtime.config import DEFAULT_WEIGHTS
    from realtime.datasets import DEFAULT_POSE_CACHE, load

    root = datasets / "weizmann"
    person = load("videos", root, cache_dir=DEFAULT_POSE_CACHE, clips=[root / "jack" / "daria_jack.avi"])[0]
    shipped = ActionClassifier.load(DEFAULT_WEIGHTS, name="shipped")
    other = ActionClassifier.load(random_weights, name="random")
    assert shipped.spec != other.spec  # bones and reaches against neither: the windows differ in shape
    stage = ActionClassification(shipped)

    def frame(i: int) -> FrameRecord:
        keypoints, scores = person.keypoints[i], person.scores[i]
        box = np.array([*keypoints.min(axis=0), *keypoints.max(axis=0)], np.float32)
        poses = Poses(keypoints[None], scores[None], box[None])
        t = float(person.times[i])
        image = np.zeros((1, 1, 3), np.uint8)
        return FrameRecord("cam0", i, t, image, t_source=t, poses=poses, tracks=[Track(1, keypoints, scores, box)])

    middle = len(person) // 2
    before = [stage.classify(frame(i)).tracks[0].prediction for i in range(middle)]
    assert before[-1] is not None and before[-1].model == "shipped"
    stage.switch(other)
    after = stage.classify(frame(middle)).tracks[0].prediction
    # The person's pose history is kept: the new model labels them on the very next posed frame.
    assert after is not None and after.model == "random" and set(after.probabilities) == set(other.labels)
    assert stage.switches == 1


def test_the_live_page_links_to_the_teach_page():
    from realtime.web.live import LiveViewServer

    live = LiveViewServer(port=0, teach_url="http://127.0.0.1:8000/teach")
    try:
        status, page = api(live.url.rstrip("/"), "/")
        assert status == 200 and b'id="teach-link" href="http://127.0.0.1:8000/teach"' in page
    finally:
        live.close()


def test_a_teach_url_that_is_no_url_is_one_line(tmp_path):
    from conftest import run_cli

    result = run_cli("--source", "0", "--serve", "127.0.0.1:0", "--teach-url", "javascript:alert(1)")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "--teach-url 'javascript:alert(1)' is not an http(s) URL" in result.stderr


def test_the_registry_activates_any_version_rolls_back_and_outlives_the_process(tmp_path, random_weights):
    from realtime.config import DEFAULT_WEIGHTS

    registry = ModelRegistry(tmp_path / "work")
    base = registry.ensure_base(DEFAULT_WEIGHTS, ("BOXING", "OTHER"))
    assert registry.ensure_base(DEFAULT_WEIGHTS, ("BOXING", "OTHER")) == base  # once only
    inside = tmp_path / "work" / "models" / "2" / "model.pt"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(random_weights.read_bytes())
    second = registry.add("SQUAT-v2", ("SQUAT", "OTHER"), inside, {"false_action": 0.01}, ("clip-a",))
    third = registry.add("SQUAT-v3", ("SQUAT", "OTHER"), inside, {})
    assert second.checkpoint == "models/2/model.pt"  # relative: the folder may move
    assert [m.id for m in registry.models() if m.active] == [base.id]
    registry.activate(third.id)
    registry.activate(second.id)
    assert registry.rollback().id == third.id  # the one active before
    assert registry.rollback().id == second.id
    registry.close()
    moved = tmp_path / "moved"
    (tmp_path / "work").rename(moved)
    again = ModelRegistry(moved)
    assert again.active().id == second.id and again.get(second.id).clips == ("clip-a",)
    assert again.checkpoint_path(again.active()) == moved / "models" / "2" / "model.pt"
    assert again.checkpoint_path(again.get(base.id)) == DEFAULT_WEIGHTS.resolve()


def test_clip_uploads_are_checked_like_the_upload_apps(tmp_path, weizmann_clip):
    app = create_app(WebSettings(jobs=JobSettings(work_dir=str(tmp_path))))
    client = app.test_client()
    try:
        good = {"action": "raise_hand", "subject": "ann"}
        cases = [
            (weizmann_clip, {**good, "action": "raise hand!"}, 422, "action 'RAISE HAND!'"),
            (weizmann_clip, {**good, "start_s": "1.0", "end_s": "1.5"}, 422, "at least 1.3 s"),
            (weizmann_clip, {**good, "start_s": "abc"}, 422, "give start_s and end_s in seconds"),
        ]
        not_video = tmp_path / "notes.mp4"
        not_video.write_text("not a video")
        cases.append((not_video, good, 422, "not a video this server can decode"))
        for path, fields, status, message in cases:
            reply = post_clip(client, path, **fields)
            assert reply.status_code == status and message in reply.get_json()["error"], reply.get_json()
        assert client.get("/api/teach/clips").get_json()["clips"] == []
        assert sorted(p.name for p in (tmp_path / "taught").iterdir()) == []  # refused uploads leave nothing
        reply = post_clip(client, weizmann_clip, **good)
        assert reply.status_code == 201 and reply.get_json()["action"] == "RAISE_HAND"
        foreign = client.post("/api/teach/train", json={}, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert client.post("/api/teach/train", json={"epochs": 0}).status_code == 400
        assert client.post("/api/models/99/activate").status_code == 404
        assert client.post("/api/models/rollback").status_code == 409  # only the shipped model so far
        assert client.delete(f"/api/teach/clips/{reply.get_json()['id']}").status_code == 204
        assert sorted(p.name for p in (tmp_path / "taught").iterdir()) == []
    finally:
        close_app(app)


def test_models_folder_without_a_registry_is_one_line(tmp_path, weizmann_clip):
    from conftest import run_cli

    result = run_cli("--source", str(weizmann_clip), "--headless", "--models", str(tmp_path))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert f"--models {tmp_path}: no models.sqlite3 there" in result.stderr


def test_shipped_recordings_of_a_taught_action_are_not_taught_as_other(datasets):
    from realtime.datasets import load
    from realtime.teach.trainer import without_taught_actions

    run = load("openpose", datasets / "openpose_chenge" / "skeleton_raw.csv")
    kept, left_out = without_taught_actions(run, {"SQUAT"})
    assert left_out and all(":squat:" in name for name in left_out)
    assert len(kept) + len(left_out) == len(run) and not any(s.meta["action"] == "squat" for s in kept)
    assert without_taught_actions(run, {"RAISE_HAND"}) == (run, [])


def test_the_page_warns_when_too_few_people_recorded_an_action_to_judge_it():
    from realtime.features import PoseSequence
    from realtime.teach.store import ClipRecord
    from realtime.teach.trainer import people_warnings

    def clip(action: str, subject: str) -> ClipRecord:
        return ClipRecord(id=f"{action}-{subject}", action=action, subject=subject, path="x.mp4", created_at=0.0)

    def held(action: str, subject: str) -> PoseSequence:
        return PoseSequence(np.zeros((1, 17, 2)), np.zeros((1, 17)), np.zeros(1), label=action, subject=subject)

    clips = [clip("SQUAT", "ann"), clip("SQUAT", "bob"), clip("LUNGE", "cy"), clip("LUNGE", "dee"),
             clip("LUNGE", "eve"), clip("WAVE", "fay"), clip("WAVE", "gus"), clip("WAVE", "hal")]  # fmt: skip
    notes = people_warnings(clips, [held("SQUAT", "ann"), held("WAVE", "fay")], 3)
    assert notes[0].startswith("LUNGE: no held-out person has it (3 recorded it: cy, dee, eve)")
    assert notes[1].startswith("SQUAT: 2 people recorded it and ann is held out, so it was learnt from 1 and judged")
    assert len(notes) == 2  # WAVE: three people, one held out: its figure stands
