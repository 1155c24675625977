"""Media for action episodes: the real pipeline on a real Weizmann clip writes a snapshot and an H.264
clip per episode, indexed; a tiny filesystem, retention and restarts; episodes from frame records.

The clip is lena's jumping jacks (the shipped weights label it JUMPING_JACKS from 1.24 s on) followed
by 3 s of black frames: she leaves, so her episode ends with source left for the clip's post_s.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import read_events, run_cli
from realtime.config import MediaConfig
from realtime.media.episodes import Episodes
from realtime.media.index import MediaIndex
from realtime.media.writer import MediaSink
from realtime.overlay import track_colour
from realtime.types import FrameRecord, Prediction, Track
from test_web_browser import browser  # noqa: F401 (the fixture)

FPS = 25.0
PRE_S, POST_S = 1.0, 1.0
JACK = "jack/lena_jack.avi"
LABEL = "JUMPING_JACKS"


def write_avi(path: Path, frames: list[np.ndarray]) -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()


def read_all(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    return frames


@pytest.fixture(scope="module")
def jack_then_nobody(datasets, tmp_path_factory) -> Path:
    frames = read_all(datasets / "weizmann" / JACK)
    path = tmp_path_factory.mktemp("clip") / "jack_then_nobody.avi"
    write_avi(path, frames + [np.zeros_like(frames[0])] * int(3 * FPS))
    return path


def media_config(tmp_path: Path, **media) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"media": {"pre_s": PRE_S, "post_s": POST_S, **media}}))
    return config


@pytest.fixture(scope="module")
def media_run(jack_then_nobody, tmp_path_factory):
    """One real run with --media: the folder, its events and the CLI's result."""
    work = tmp_path_factory.mktemp("media_run")
    events = work / "events.jsonl"
    done = run_cli(
        "--source", str(jack_then_nobody), "--headless", "--events", str(events),
        "--media", str(work / "media"), "--config", str(media_config(work)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return work / "media", read_events(events), done


def ffprobe(path: Path) -> dict:
    entries = "format=duration:stream=codec_name,pix_fmt"
    command = ["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", str(path)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def rows(folder: Path) -> list:
    index = MediaIndex(folder)
    try:
        return index.events(limit=1000)
    finally:
        index.close()


@pytest.mark.slow
def test_a_jumping_jacks_episode_has_its_event_records_snapshot_and_clip(media_run):
    folder, events, done = media_run
    jacks = [r for r in rows(folder) if r.label == LABEL]
    assert jacks, f"no {LABEL} episode: {[(r.label, r.t_start) for r in rows(folder)]}"
    row = jacks[0]
    phases = [e["phase"] for e in events if e["type"] == "event" and e["id"] == row.id]
    assert phases[0] == "start" and phases[-1] == "end" and phases.count("end") == 1
    end = next(e for e in events if e["type"] == "event" and e["id"] == row.id and e["phase"] == "end")
    assert end["snapshot"] == str(folder / row.snapshot) and end["clip"] == str(folder / row.clip)
    action = next(e for e in events if e["type"] == "action" and e["label"] == LABEL)
    assert action["event_id"] == row.id and action["clip"] == end["clip"]
    assert "media: 1 events" in done.stdout or "media:" in done.stdout

    # The snapshot: the frame with the person's box in the track's colour, and the crop beside it.
    snapshot = cv2.imread(str(folder / row.snapshot))
    assert snapshot is not None and snapshot.shape[0] == 144 and snapshot.shape[1] > 180
    x1, y1, _, y2 = (round(v) for v in json.loads(row.box))
    left_edge = snapshot[y1 + 5 : y2 - 5, max(0, x1 - 1) : x1 + 2].reshape(-1, 3).astype(int)
    colour = np.array(track_colour(row.track))
    near = np.abs(left_edge - colour).max(axis=1) < 70
    assert near.mean() > 0.5, f"the box's left edge is not in the track's colour {colour}: {left_edge[:5]}"

    # The clip: H.264 that spans pre_s before the start to post_s after the end, by the source's clock.
    assert row.clip_t_start == pytest.approx(row.t_start - PRE_S, abs=0.2)
    assert row.clip_t_end == pytest.approx(row.t_end + POST_S, abs=0.2)
    probe = ffprobe(folder / row.clip)
    assert probe["streams"][0]["codec_name"] == "h264" and probe["streams"][0]["pix_fmt"] == "yuv420p"
    assert float(probe["format"]["duration"]) == pytest.approx(row.clip_t_end - row.clip_t_start, abs=0.1)


@pytest.mark.slow
def test_a_restart_keeps_the_events_and_retention_deletes_the_old_ones_with_their_files(media_run, tmp_path):
    folder = tmp_path / "media"
    shutil.copytree(media_run[0], folder)
    kept = rows(folder)
    assert kept and all(r.snapshot and r.clip for r in kept)
    old = kept[0]
    # A second, older event: the clock is set through the index, ten days back.
    with sqlite3.connect(folder / "index.sqlite") as db:
        back = "start_time = start_time - 11 * 86400, end_time = end_time - 11 * 86400"
        db.execute(f"UPDATE events SET {back} WHERE id = ?", (old.id,))
    orphan = folder / "cam0" / "nobody-owns-this.jpg"
    orphan.write_bytes(b"\xff\xd8junk")
    sink = MediaSink(MediaConfig(dir=str(folder), retain_days=10, max_gb=0))  # a restart
    sink.close()
    after = rows(folder)
    assert [r.id for r in after] == [r.id for r in kept if r.id != old.id]
    assert not (folder / old.snapshot).exists() and not (folder / old.clip).exists()
    assert not orphan.exists()
    for row in after:
        assert (folder / row.snapshot).is_file() and (folder / row.clip).is_file()


def test_max_gb_deletes_the_oldest_first(tmp_path):
    index = MediaIndex(tmp_path)
    now = time.time()
    for i in range(4):
        name = f"cam0/e{i}.jpg"
        (tmp_path / "cam0").mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * 1000)
        row = {"id": f"e{i}", "camera": "cam0", "track": i, "label": "WAVING_2HANDS", "t_start": 0.0}
        index.add(
            {
                **row,
                "start_time": now - 100 + i,
                "end_time": now - 99 + i,
                "best_score": 0.9,
                "snapshot": name,
                "bytes": 1000,
            }
        )
    # An episode still going on, older than all.
    index.add(
        {
            "id": "open",
            "camera": "cam0",
            "track": 9,
            "label": "BOXING",
            "start_time": now - 200,
            "t_start": 0.0,
            "best_score": 0.9,
        }
    )
    deleted = index.enforce_retention(retain_days=0, max_bytes=2500, now=now)
    assert deleted == ["e0", "e1"]  # oldest first; the open episode is not touched
    assert sorted(r.id for r in index.events()) == ["e2", "e3", "open"]
    assert not (tmp_path / "cam0/e0.jpg").exists() and (tmp_path / "cam0/e2.jpg").exists()
    index.close()


def _record(index: int, t: float, tracks: list[tuple[int, str, float]], expired: list[int] = ()) -> FrameRecord:
    return FrameRecord(
        "cam0", index, t, np.zeros((4, 4, 3), np.uint8), t_source=t, expired=list(expired),
        tracks=[Track(tid, np.zeros((17, 2)), np.zeros(17), np.array([0, 0, 2, 2]), Prediction(label, score))
                for tid, label, score in tracks],
    )  # fmt: skip


def test_episodes_start_on_an_action_end_on_a_change_or_leaving_and_skip_other():
    episodes = Episodes(clock=lambda: 1000.0)
    seen = []
    script = [
        [(1, "OTHER", 0.9)],
        [(1, "BOXING", 0.7)],  # starts
        [(1, "BOXING", 0.9)],  # better, but less than a second later: no update yet
        [(1, "BOXING", 0.95)],
        [(1, "WAVING_2HANDS", 0.8)],  # BOXING ends, WAVING_2HANDS starts
        [(1, "OTHER", 0.8)],  # ends
    ]
    for i, tracks in enumerate(script):
        seen += [(c.phase, c.episode.label, c.episode.t_end) for c in episodes.update(_record(i, i * 0.6, tracks))]
    seen += [
        (c.phase, c.episode.label, c.episode.t_end) for c in episodes.update(_record(6, 3.6, [(2, "BOXING", 0.8)]))
    ]
    seen += [(c.phase, c.episode.label, c.episode.t_end) for c in episodes.update(_record(7, 4.2, [], expired=[2]))]
    assert seen == [
        ("start", "BOXING", None),
        ("update", "BOXING", None),  # 0.95 at 1.8 s: a second after the start and better by 0.25
        ("end", "BOXING", 2.4),
        ("start", "WAVING_2HANDS", None),
        ("end", "WAVING_2HANDS", 3.0),
        ("start", "BOXING", None),
        ("end", "BOXING", 4.2),  # the person left
    ]
    episodes.update(_record(8, 4.8, [(3, "BOXING", 0.8)]))
    assert [(c.phase, c.episode.t_end) for c in episodes.end_camera("cam0")] == [("end", 4.8)]  # the stream ended


@pytest.fixture
def tiny_folder(tmp_path):
    """A 256 kB filesystem (tmpfs, mounted as root): room for the index and a little media."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,huge=never", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the test runs as root, as CI does): {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow
def test_a_full_media_disk_loses_media_counted_but_no_frame_and_keeps_the_index_consistent(
    datasets, tmp_path, tiny_folder
):
    from clips import tile_clips

    clip = tile_clips(datasets / "weizmann", tmp_path / "four.avi")  # four people, 640x480: big snapshots and clips
    events = tmp_path / "events.jsonl"
    done = run_cli(
        "--source", str(clip.path), "--headless", "--events", str(events), "--media", str(tiny_folder),
        "--config", str(media_config(tmp_path)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = next(e for e in read_events(events) if e["type"] == "summary")
    assert summary["frames_in"] == summary["frames_out"] == clip.frames  # every frame processed
    line = next(line for line in done.stdout.splitlines() if "media:" in line)
    lost = int(line.split(" writes lost")[0].rsplit(" ", 1)[1])
    assert lost > 0, line
    assert "media writes lost so far" in done.stderr and "Traceback" not in done.stderr
    listed = rows(tiny_folder)
    assert len(listed) >= 1
    for row in listed:  # what the index lists is there, whole
        for name in (row.snapshot, row.clip):
            if name:
                assert (tiny_folder / name).stat().st_size > 0
        if row.snapshot:
            assert cv2.imread(str(tiny_folder / row.snapshot)) is not None
    assert not list(tiny_folder.rglob("*.part"))


@pytest.mark.mqtt
@pytest.mark.slow
def test_mqtt_gets_the_episode_start_and_end_and_a_retained_snapshot(broker, jack_then_nobody, tmp_path):
    from mqtt_fixtures import Subscriber, retained

    subscriber = Subscriber(broker.port, "realtime/events")
    try:
        done = run_cli(
            "--source", str(jack_then_nobody), "--headless", "--media", str(tmp_path / "media"),
            "--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--config", str(media_config(tmp_path)),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert subscriber.wait_until(lambda messages: any(m.json()["type"] == "end" for m in messages))
        messages = [m.json() for m in subscriber.on("realtime/events")]
    finally:
        subscriber.close()
    jacks = [m for m in messages if m["after"]["label"] == LABEL]
    assert jacks[0]["type"] == "new" and jacks[-1]["type"] == "end"
    assert {m["after"]["id"] for m in jacks} == {jacks[0]["after"]["id"]}
    assert jacks[-1]["after"]["end_time"] is not None and jacks[-1]["after"]["has_clip"]
    snapshot = retained(broker.port, f"realtime/cam0/{LABEL}/snapshot")
    image = cv2.imdecode(np.frombuffer(snapshot.raw, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[0] == 144


@pytest.fixture(name="broker")
def _broker(tmp_path):
    from mqtt_fixtures import Broker

    server = Broker(tmp_path / "broker")
    server.start()
    yield server
    server.kill()


def _with_a_second_camera(media_run, tmp_path) -> tuple[Path, str]:
    """The run's media folder plus a WAVING_2HANDS event on camera `door` (its files copied from the
    real one's), so that filters have something to leave out."""
    folder = tmp_path / "media"
    shutil.copytree(media_run[0], folder)
    row = rows(folder)[0]
    (folder / "door").mkdir()
    shutil.copy(folder / row.snapshot, folder / "door/other.jpg")
    shutil.copy(folder / row.clip, folder / "door/other.mp4")
    with sqlite3.connect(folder / "index.sqlite") as db:
        db.execute(
            "INSERT INTO events (id, camera, track, label, start_time, end_time, t_start, t_end, best_score, "
            "snapshot, clip, bytes) VALUES ('other', 'door', 7, 'WAVING_2HANDS', ?, ?, 0, 2, 0.9, "
            "'door/other.jpg', 'door/other.mp4', 1)",
            (row.start_time + 60, row.start_time + 62),
        )
    return folder, row.id


@pytest.mark.slow
def test_the_events_api_lists_filters_and_serves_the_files(media_run, tmp_path):
    import urllib.error
    import urllib.request

    from realtime.web.live import LiveViewServer

    folder, jack_id = _with_a_second_camera(media_run, tmp_path)
    server = LiveViewServer(port=0, media=str(folder))
    try:

        def get(path: str) -> tuple[int, bytes, str]:
            try:
                with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=10) as response:
                    return response.status, response.read(), response.headers["Content-Type"]
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read(), exc.headers["Content-Type"]

        status, body, _ = get("/api/events")
        listed = json.loads(body)
        assert status == 200 and [e["id"] for e in listed["events"]] == ["other", jack_id]  # newest first
        assert listed["cameras"] == ["cam0", "door"] and "WAVING_2HANDS" in listed["labels"]
        assert [e["id"] for e in json.loads(get(f"/api/events?label={LABEL}")[1])["events"]] == [jack_id]
        assert [e["id"] for e in json.loads(get("/api/events?camera=door")[1])["events"]] == ["other"]
        start = listed["events"][1]["start_time"]
        assert [e["id"] for e in json.loads(get(f"/api/events?before={start + 1}")[1])["events"]] == [jack_id]
        assert [e["id"] for e in json.loads(get(f"/api/events?after={start + 1}&limit=5")[1])["events"]] == ["other"]
        assert json.loads(get(f"/api/events/{jack_id}")[1])["label"] == LABEL
        status, jpeg, kind = get(f"/api/events/{jack_id}/snapshot.jpg")
        assert status == 200 and kind == "image/jpeg" and cv2.imdecode(np.frombuffer(jpeg, np.uint8), 1) is not None
        status, mp4, kind = get(f"/api/events/{jack_id}/clip.mp4")
        assert status == 200 and kind == "video/mp4" and mp4[4:8] == b"ftyp"
        assert get("/api/events/nope")[0] == 404 and get("/api/events?after=yesterday")[0] == 400
        assert get("/api/events?limit=0")[0] == get("/api/events?limit=-1")[0] == 400
        assert len(json.loads(get("/api/events?limit=1")[1])["events"]) == 1
    finally:
        server.close()


@pytest.mark.browser
@pytest.mark.slow
def test_the_live_views_events_panel_filters_by_label_and_plays_a_clip(media_run, tmp_path, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from realtime.web.live import LiveViewServer
    from test_web_browser import csp_violations, save_screenshot

    folder, jack_id = _with_a_second_camera(media_run, tmp_path)
    server = LiveViewServer(port=0, media=str(folder))  # no camera: no stream holds the page load open
    try:
        browser.get(server.url)
        wait = WebDriverWait(browser, 20)

        def shown_ids(driver) -> list[str]:
            return [li.get_attribute("data-id") for li in driver.find_elements(By.CSS_SELECTOR, "#event-list li.event")]

        wait.until(lambda d: shown_ids(d) == ["other", jack_id])
        Select(browser.find_element(By.CSS_SELECTOR, "#event-filter select[name=label]")).select_by_value(LABEL)
        wait.until(lambda d: shown_ids(d) == [jack_id])
        browser.find_element(By.CSS_SELECTOR, f'#event-list li[data-id="{jack_id}"]').click()
        played = wait.until(
            lambda d: d.execute_script(
                "const v = document.getElementById('event-player');"
                "return v.readyState >= 2 && v.currentTime > 0.3 && !v.error ? [v.duration, v.videoWidth] : null;"
            )
        )
        row = next(r for r in rows(folder) if r.id == jack_id)
        assert played[0] == pytest.approx(row.clip_t_end - row.clip_t_start, abs=0.15) and played[1] > 0
        save_screenshot(browser, "live-events-panel.png")
        assert not csp_violations(browser)
    finally:
        server.close()


@pytest.mark.slow
def test_an_uploaded_videos_result_lists_its_episodes_with_snapshot_and_clip(jack_then_nobody, tmp_path):
    from realtime.web.app import WebSettings, close_app, create_app
    from realtime.web.jobs import JobSettings

    app = create_app(WebSettings(jobs=JobSettings(work_dir=str(tmp_path / "work"))))
    try:
        client = app.test_client()
        with open(jack_then_nobody, "rb") as f:
            job = client.post("/api/jobs", data={"video": (f, "jack.avi")}, content_type="multipart/form-data")
        assert job.status_code == 201, job.get_json()
        links = job.get_json()["links"]
        deadline = time.monotonic() + 180
        while (state := client.get(links["self"]).get_json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert state["status"] == "done", state
        episodes = client.get(links["episodes"]).get_json()["events"]
        jacks = [e for e in episodes if e["label"] == LABEL]
        assert jacks and jacks[0]["t_end"] is not None, episodes
        snapshot = client.get(f"{links['episodes']}/{jacks[0]['id']}/snapshot.jpg")
        assert snapshot.status_code == 200 and cv2.imdecode(np.frombuffer(snapshot.data, np.uint8), 1) is not None
        clip = client.get(f"{links['episodes']}/{jacks[0]['id']}/clip.mp4")
        assert clip.status_code == 200 and clip.mimetype == "video/mp4" and clip.data[4:8] == b"ftyp"
        clip.close()
        snapshot.close()
        assert client.get("/api/jobs/nope/episodes").get_json()["events"] == []
    finally:
        close_app(app)


@pytest.mark.slow
def test_a_killed_run_leaves_an_index_that_a_restart_makes_consistent(jack_then_nobody, tmp_path):
    import signal

    from conftest import start_cli
    from rtsp_fixtures import wait_for

    folder = tmp_path / "media"
    process = start_cli(
        "--source", str(jack_then_nobody), "--headless", "--pace", "--media", str(folder),
        "--config", str(media_config(tmp_path)),
    )  # fmt: skip
    try:

        def open_episode() -> bool:
            if not (folder / "index.sqlite").is_file():
                return False
            try:
                with sqlite3.connect(folder / "index.sqlite") as db:
                    query = "SELECT 1 FROM events WHERE end_time IS NULL AND snapshot IS NOT NULL"
                    found = db.execute(query).fetchone()
            except sqlite3.OperationalError:  # the run has made the file but not yet its table
                return False
            return found is not None and any(folder.rglob("*.mp4.part"))

        assert wait_for(open_episode, 120), "no episode under way with its clip being written"
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    sink = MediaSink(MediaConfig(dir=str(folder)))  # the restart
    sink.close()
    listed = rows(folder)
    assert listed and all(r.end_time is not None for r in listed)  # the killed run's episode is ended
    assert not list(folder.rglob("*.part"))  # its unfinished clip is gone, not listed
    for row in listed:
        assert row.clip is None and (folder / row.snapshot).is_file()


def test_a_lost_stream_ends_its_clips_at_the_loss_not_when_the_camera_is_back(datasets, tmp_path):
    """A live camera goes down during an action: the clip is written at once and ends at the last
    frame, with no post-roll of a frozen picture (the writer's own thread, real H.264)."""
    frames = read_all(datasets / "weizmann" / JACK)[:60]
    config = MediaConfig(dir=str(tmp_path / "media"), pre_s=PRE_S, post_s=3.0)
    sink = MediaSink(config)
    t0 = 500.0  # a live stream: grab times only
    try:
        for i, image in enumerate(frames):
            label = LABEL if i >= 10 else "OTHER"
            track = Track(1, np.zeros((17, 2)), np.ones(17), np.array([40, 20, 120, 140]), Prediction(label, 0.9))
            sink.write(FrameRecord("cam0", i, t0 + i / FPS, image, tracks=[track]))
        t_lost = t0 + (len(frames) - 1) / FPS
        sink.camera_lost("cam0", t_lost)
        deadline = time.monotonic() + 30
        while not (clips := list((tmp_path / "media").rglob("*.mp4"))) and time.monotonic() < deadline:
            time.sleep(0.2)  # no frame comes while the camera is down
        assert len(clips) == 1, "the clip is still waiting for frames from a camera that is down"
        duration = float(ffprobe(clips[0])["format"]["duration"])
        # Lead-in from frame 0 (less than pre_s was there) to the last frame: 60 frames, no frozen tail.
        assert duration == pytest.approx(len(frames) / FPS, abs=0.15)
    finally:
        sink.close()
    # Its times are the events' (seconds since the camera's first frame), not the grab clock.
    (row,) = rows(tmp_path / "media")
    assert row.t_start == pytest.approx(10 / FPS) and row.t_end == pytest.approx(t_lost - t0)
    assert row.clip_t_start == pytest.approx(0.0) and row.clip_t_end == pytest.approx(len(frames) / FPS, abs=0.05)
