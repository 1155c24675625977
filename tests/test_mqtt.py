"""MqttWriter against a real broker (Debian's mosquitto) and a real paho subscriber.

Covers the topics and payloads, the retained per-camera state, availability with its last
will (the writer's process SIGKILLed), and the broker being down at start or killed and
restarted mid-run: whatever the writer counts as published arrives, the rest is counted
as dropped, and published + dropped == sent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from conftest import REPO, read_events
from mqtt_fixtures import Broker, Received, Subscriber, broker_fixture, retained  # noqa: F401 (broker_fixture is `broker`)
from realtime.__main__ import main as cli_main
from realtime.config import MqttConfig, load_config
from realtime.errors import ConfigError
from realtime.mqtt import MqttWriter, overrides_from_url
from rtsp_fixtures import free_port, wait_for

pytestmark = pytest.mark.mqtt


def writer_for(port: int, **options) -> MqttWriter:
    return MqttWriter(MqttConfig(host="127.0.0.1", port=port, **options))


def action(camera: str, track: int, label: str, score: float, t: float = 0.0) -> dict:
    return {
        "type": "action",
        "camera": camera,
        "t": t,
        "frame": int(t * 25),
        "track": track,
        "label": label,
        "score": score,
    }


def numbered(i: int) -> dict:
    """An event that says which one it is, to tell lost, duplicated and reordered ones apart."""
    return {"type": "stream", "camera": "cam0", "status": "tick", "seq": i}


def seqs(subscriber: Subscriber, topic: str = "realtime/cam0/stream") -> list[int]:
    return [m.json()["seq"] for m in subscriber.on(topic)]


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_every_event_goes_to_its_camera_and_type_topic_as_its_json(broker, qos):
    subscriber = Subscriber(broker.port, "site/#")
    writer = writer_for(broker.port, topic_prefix="site", qos=qos)
    events = [
        {"type": "stream", "camera": "door", "status": "opened", "time": 1700000000.0, "source": "a.mp4"},
        {"type": "stream", "camera": "hall", "status": "opened", "time": 1700000000.1, "source": "rtsp://x"},
        action("door", 1, "walk", 0.91, 1.2),
        action("hall", 4, "wave", 0.77, 2.0),
        {"type": "person", "camera": "door", "status": "left", "t": 3.0, "frame": 75, "track": 1, "label": "walk"},
        {"type": "summary", "camera": "door", "frames_in": 80, "frames_out": 80, "labels": {"walk": 70}},
        {"type": "summary", "cameras": 2, "frames_in": 160},  # run-wide, no camera: site/summary
    ]
    for event in events:
        writer.send(event)
    writer.close()

    def event_messages(messages: list) -> list:
        return [m for m in messages if not m.topic.endswith(("/state", "/availability"))]

    assert subscriber.wait_until(lambda messages: len(event_messages(messages)) >= len(events))
    for camera in ("door", "hall"):  # each event once, in the order sent, on <prefix>/<camera>/<type>
        sent = [(f"site/{camera}/{e['type']}", e) for e in events if e.get("camera") == camera]
        got = [
            (m.topic, m.json()) for m in event_messages(subscriber.messages) if m.topic.startswith(f"site/{camera}/")
        ]
        assert got == sent
    assert [(m.topic, m.json()) for m in subscriber.on("site/summary")] == [("site/summary", events[-1])]
    stats = writer.stats
    assert (stats.sent, stats.published, stats.dropped, stats.queued) == (len(events), len(events), 0, 0)
    subscriber.close()


def test_retained_state_follows_label_changes_and_people_leaving(broker):
    subscriber = Subscriber(broker.port, "realtime/door/state")
    writer = writer_for(broker.port)

    def state_becomes(people: list[dict]) -> bool:
        return subscriber.wait_until(lambda messages: bool(messages) and messages[-1].json()["people"] == people)

    writer.send(action("door", 1, "walk", 0.9, 1.0))
    writer.send(action("door", 2, "run", 0.8, 1.5))
    assert state_becomes([{"track": 1, "label": "walk", "score": 0.9}, {"track": 2, "label": "run", "score": 0.8}])
    writer.send(action("door", 1, "wave", 0.7, 2.0))
    assert state_becomes([{"track": 1, "label": "wave", "score": 0.7}, {"track": 2, "label": "run", "score": 0.8}])
    writer.send(
        {"type": "person", "camera": "door", "status": "left", "t": 3.0, "frame": 75, "track": 2, "label": "run"}
    )
    assert state_becomes([{"track": 1, "label": "wave", "score": 0.7}])
    late = retained(broker.port, "realtime/door/state")  # a client subscribing now gets the latest
    assert late.json() == {"camera": "door", "t": 3.0, "people": [{"track": 1, "label": "wave", "score": 0.7}]}
    writer.send({"type": "stream", "camera": "hall", "status": "opened"})  # another camera: not this state
    writer.send({"type": "stream", "camera": "door", "status": "ended", "time": 1767312000.5})
    writer.close()

    # The stream's end empties the state, dated by the door's last camera time.
    late = retained(broker.port, "realtime/door/state")
    assert late.json() == {"camera": "door", "t": 3.0, "people": []}
    assert retained(broker.port, "realtime/hall/state").json() == {"camera": "hall", "t": 0.0, "people": []}
    subscriber.close()


def test_retained_state_carries_each_persons_repetitions(broker):
    subscriber = Subscriber(broker.port, "realtime/gym/state")
    writer = writer_for(broker.port)

    def state_becomes(people: list[dict]) -> bool:
        return subscriber.wait_until(lambda messages: bool(messages) and messages[-1].json()["people"] == people)

    writer.send({**action("gym", 1, "JUMPING_JACKS", 0.9, 1.0), "reps": 2, "reps_total": 2})
    assert state_becomes([{"track": 1, "label": "JUMPING_JACKS", "score": 0.9, "reps": 2}])
    for count in (3, 4):
        writer.send(
            {"type": "reps", "camera": "gym", "t": 1.0 + count, "frame": 25 * count, "track": 1,
             "label": "JUMPING_JACKS", "reps": count, "reps_total": count}
        )  # fmt: skip
    assert state_becomes([{"track": 1, "label": "JUMPING_JACKS", "score": 0.9, "reps": 4}])
    writer.send({"type": "reps", "camera": "gym", "t": 9.0, "track": 7, "reps": 1, "reps_total": 1})  # not labelled
    writer.close()
    late = retained(broker.port, "realtime/gym/state")
    assert late.json()["people"] == [{"track": 1, "label": "JUMPING_JACKS", "score": 0.9, "reps": 4}]
    subscriber.close()


def test_availability_online_then_offline_on_close(broker):
    writer = writer_for(broker.port)
    assert wait_for(lambda: writer.connected, 10)
    assert retained(broker.port, "realtime/availability").payload == "online"
    writer.close()
    assert retained(broker.port, "realtime/availability").payload == "offline"


def test_without_availability_a_writer_sends_events_but_never_says_online_or_offline(broker):
    """A cluster's camera actors publish this way; the job's driver owns availability."""
    subscriber = Subscriber(broker.port, "realtime/#")
    writer = writer_for(broker.port, availability=False)
    writer.send(action("door", 1, "WAVING_1HAND", 0.9))
    writer.close()
    assert subscriber.wait_until(lambda messages: any(m.topic == "realtime/door/action" for m in messages))
    assert writer.stats.published >= 1
    subscriber.close()
    assert not subscriber.on("realtime/availability")


WRITER_PROCESS = """
import sys
from realtime.config import MqttConfig
from realtime.mqtt import MqttWriter
writer = MqttWriter(MqttConfig(host="127.0.0.1", port=int(sys.argv[1])))
writer.send({"type": "action", "camera": "door", "track": 1, "label": "walk", "score": 0.9})
sys.stdin.read()  # lives until killed
"""


def test_last_will_says_offline_when_the_process_is_killed(broker):
    subscriber = Subscriber(broker.port, "realtime/#")
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER_PROCESS, str(broker.port)],
        stdin=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert subscriber.wait_until(lambda messages: any(m.topic == "realtime/door/action" for m in messages))
        assert [m.payload for m in subscriber.on("realtime/availability")] == ["online"]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert subscriber.wait_until(
            lambda messages: "offline" in [m.payload for m in messages if m.topic == "realtime/availability"]
        )
        assert retained(broker.port, "realtime/availability").payload == "offline"
    finally:
        process.kill()
        process.wait()
        subscriber.close()


def test_broker_down_at_start_queued_events_arrive_when_it_comes(tmp_path):
    broker = Broker(tmp_path / "broker")
    broker.start()
    subscriber = Subscriber(broker.port, "realtime/#")  # its session is saved when the broker stops
    broker.stop()
    writer = writer_for(broker.port, queue_size=30)
    try:
        for i in range(50):  # returns at once with nothing listening; the 20 oldest are dropped
            writer.send(numbered(i))
        assert not writer.connected
        assert (writer.stats.published, writer.stats.dropped, writer.stats.queued) == (0, 20, 30)
        broker.start()
        assert subscriber.wait_until(lambda messages: 49 in seqs(subscriber), timeout=30)
        writer.close()
        assert seqs(subscriber) == list(range(20, 50))
        assert (writer.stats.sent, writer.stats.published, writer.stats.dropped) == (50, 30, 20)
    finally:
        writer.close()
        subscriber.close()
        broker.kill()


def test_close_with_no_broker_returns_and_counts_everything_dropped():
    port, notices = free_port(), []
    writer = MqttWriter(MqttConfig(host="127.0.0.1", port=port, queue_size=3), notice=notices.append)
    for i in range(5):
        writer.send(numbered(i))
    writer.close()  # waits its flush bound (2 s) for a broker that never comes
    assert (writer.stats.sent, writer.stats.published, writer.stats.dropped, writer.stats.queued) == (5, 0, 5, 0)
    assert len(notices) == 1 and f"cannot reach the MQTT broker 127.0.0.1:{port}" in notices[0]


def test_broker_killed_and_restarted_mid_run_loses_only_counted_drops(tmp_path):
    broker = Broker(tmp_path / "broker")
    broker.start()
    subscriber = Subscriber(broker.port, "realtime/#")
    writer = writer_for(broker.port, queue_size=40)
    sent = 0
    stop = threading.Event()
    producing = threading.Thread(target=lambda: None)

    def produce(until: int) -> None:
        nonlocal sent
        while sent < until and not stop.is_set():
            writer.send(numbered(sent))
            sent += 1
            stop.wait(0.002)  # a steady stream, ~500 events/s, while the broker dies and comes back

    try:
        assert wait_for(lambda: writer.connected, 10)
        produce(200)
        assert subscriber.wait_until(lambda messages: 199 in seqs(subscriber))
        producing = threading.Thread(target=produce, args=(1000,))
        producing.start()
        assert wait_for(lambda: sent >= 300, 30)
        broker.save()  # the subscriber's session, for after the restart (see mqtt_fixtures)
        broker.kill()  # mid-stream
        assert wait_for(lambda: not writer.connected, 10)
        assert wait_for(lambda: sent >= 600, 30)  # more than the queue holds arrives while it is down
        broker.start()
        producing.join()
        assert wait_for(lambda: writer.connected, 30)
        assert subscriber.wait_until(lambda messages: 999 in seqs(subscriber), timeout=30)
        writer.close()
        stats = writer.stats
        received = seqs(subscriber)
        assert stats.sent == sent == 1000
        assert stats.published + stats.dropped == stats.sent
        assert stats.dropped > 0  # the outage outlasted the queue
        assert len(set(received)) == stats.published  # every published event arrived (QoS 1: maybe twice)
        first_seen = sorted(set(received), key=received.index)
        assert first_seen == sorted(first_seen)  # in the order sent
    finally:
        stop.set()
        if producing.is_alive():
            producing.join()
        writer.close()
        subscriber.close()
        broker.kill()


@pytest.mark.parametrize(
    "url, expected",
    [
        ("mqtt://127.0.0.1:1884", {"host": "127.0.0.1", "port": 1884, "tls": False}),
        ("mqtt://broker.local", {"host": "broker.local", "port": 1883, "tls": False}),
        (
            "mqtts://ha:s%40cret@broker.local",
            {"host": "broker.local", "port": 8883, "tls": True, "username": "ha", "password": "s@cret"},
        ),
    ],
)
def test_mqtt_url_becomes_config_overrides(url, expected):
    overrides = overrides_from_url(url)
    assert overrides == {"mqtt": expected}
    assert load_config(overrides=overrides).mqtt.host == expected["host"]


@pytest.mark.parametrize(
    "url, names",
    [
        ("http://broker:1883", "not an MQTT URL"),
        ("mqtt://:1883", "names no broker host"),
        ("mqtt://broker:port", "bad port"),
        ("mqtt://broker:99999", "bad port"),
        ("mqtt://broker:1883/topic", "path or query"),
    ],
)
def test_bad_mqtt_url_is_a_one_line_config_error(url, names):
    with pytest.raises(ConfigError) as error:
        overrides_from_url(url)
    assert names in str(error.value) and "\n" not in str(error.value)


def test_bad_mqtt_config_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"mqtt\.qos must be at most 2"):
        load_config(overrides={"mqtt": {"qos": 3}})
    with pytest.raises(ConfigError, match="topic_prefix"):
        MqttWriter(MqttConfig(host="127.0.0.1", port=free_port(), topic_prefix="a/#"))


def test_mqtt_host_given_as_a_url_in_the_config_is_a_one_line_config_error(tmp_path):
    config = tmp_path / "broker.yaml"
    config.write_text("mqtt:\n  host: mqtt://127.0.0.1:18830\n")
    with pytest.raises(ConfigError) as error:
        load_config(config)
    message = str(error.value)
    assert "mqtt.host 'mqtt://127.0.0.1:18830'" in message and "mqtt.port" in message and "\n" not in message
    assert load_config(overrides={"mqtt": {"host": "::1"}}).mqtt.host == "::1"  # an IPv6 address is a host


def test_a_run_that_never_reached_its_broker_ends_with_one_error_line(tmp_path, weizmann_clip, random_weights, capsys):
    """The cameras run and the events file is written, but a run whose broker was never reached does not
    look like a success."""
    port, events = free_port(), tmp_path / "events.jsonl"
    args = ["--source", str(weizmann_clip), "--headless", "--max-frames", "5", "--weights", str(random_weights)]
    code = cli_main([*args, "--events", str(events), "--mqtt", f"mqtt://127.0.0.1:{port}"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("realtime: error:")]
    assert errors == [err.strip().splitlines()[-1]] and f"MQTT broker 127.0.0.1:{port} was never reached" in errors[0]
    assert "MQTT: 0 messages published" in out
    log = read_events(events)
    assert log[-1]["type"] == "summary" and log[-1]["frames_out"] == 5


def retained_once_there(port: int, topic: str, timeout: float = 30.0) -> Received:
    """The retained message on `topic` once the broker holds one. A subscriber that comes before the
    publish gets it live, without the retained flag, so each try is a new subscriber."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return retained(port, topic, timeout=1.0)
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def test_a_restarted_broker_that_lost_its_retained_messages_gets_states_and_snapshots_again(tmp_path):
    broker = Broker(tmp_path / "broker")
    broker.start()
    writer = writer_for(broker.port)
    jpeg = cv2.imencode(".jpg", np.full((24, 32, 3), 200, np.uint8))[1].tobytes()
    try:
        assert wait_for(lambda: writer.connected, 10)
        writer.send(action("door", 1, "BOXING", 0.9, 1.0))
        writer.send_snapshot("door", "BOXING", jpeg)
        assert retained_once_there(broker.port, "realtime/door/BOXING/snapshot").raw == jpeg
        broker.kill()  # nothing saved: the broker comes back with no retained message
        assert wait_for(lambda: not writer.connected, 10)
        broker.start()
        assert wait_for(lambda: writer.connected, 30)
        assert retained_once_there(broker.port, "realtime/door/BOXING/snapshot").raw == jpeg
        assert retained_once_there(broker.port, "realtime/door/state").json()["people"][0]["label"] == "BOXING"
    finally:
        writer.close()
        broker.kill()
