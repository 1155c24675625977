"""A real MQTT broker (Debian's mosquitto) on a free loopback port, and a paho subscriber that records.

The broker keeps its state on disk (persistence, saved on SIGUSR1 or a clean stop) so that a
test can kill and restart it without its *subscriber* missing what the writer publishes while
the subscriber is still reconnecting: the subscriber's session (clean_session off, QoS 1)
survives the restart and the broker queues for it. What the tests measure is then what the
writer lost, not the test's own subscriber.
"""

from __future__ import annotations

import getpass
import json
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from rtsp_fixtures import free_port, wait_for

INSTALL_HINT = "install it with `make system-deps` (scripts/install_system_deps.sh)"


class Broker:
    """One mosquitto process at a time on 127.0.0.1; `kill` and `start` again keep the port and the saved state."""

    def __init__(self, workdir: Path, port: int = 0) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.db = self.workdir / "mosquitto.db"
        self.log = self.workdir / "mosquitto.log"
        self.conf = self.workdir / "mosquitto.conf"
        # A config file rather than `-p PORT` only to switch on persistence; the listener is still loopback only.
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "persistence_file mosquitto.db\n"
            "autosave_interval 0\n"  # saved only on SIGUSR1 and on a clean stop: the tests say when
            "max_queued_messages 100000\n"  # for a subscriber that is away; mosquitto's default is 1000
            # Started as root, mosquitto would switch to the `mosquitto` user, who cannot write here.
            f"user {getpass.getuser()}\n"
            f"log_dest file {self.log}\n"
        )

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.fail(f"mosquitto not found; {INSTALL_HINT}")
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the broker is already running")
        self.process = subprocess.Popen(
            [binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not wait_for(lambda: self._accepts() or self.process.poll() is not None, timeout) or not self._accepts():
            log = self.log.read_text(errors="replace").strip().splitlines()[-3:] if self.log.exists() else []
            self.kill()
            raise RuntimeError(
                f"mosquitto did not start on port {self.port} ({' | '.join(log) or 'no log'}); {INSTALL_HINT}"
            )

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def save(self, timeout: float = 10.0) -> None:
        """Write the broker's state (sessions, subscriptions, retained and queued messages) to disk now."""
        assert self.process is not None
        before = self._db_stamp()
        self.process.send_signal(signal.SIGUSR1)
        if not wait_for(lambda: self._db_stamp() not in (None, before), timeout):
            raise RuntimeError("mosquitto did not save its state on SIGUSR1")

    def _db_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.db.stat()  # written to a new file, then renamed over the old one
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def kill(self) -> None:
        """Die like a crashed broker: SIGKILL, no goodbye to clients, nothing saved."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: a clean shutdown, which saves the state."""
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture(name="broker")
def broker_fixture(tmp_path):
    """A running mosquitto on a free loopback port; stopped after the test."""
    server = Broker(tmp_path / "broker")
    server.start()
    yield server
    server.kill()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: str
    retain: bool
    raw: bytes = b""  # the payload as sent (a JPEG snapshot is not text)

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A paho client that records every message on `topic` (a filter such as `realtime/#`).

    Its session is persistent (QoS 1, clean_session off): across a broker restart from saved
    state, the broker keeps queueing for it while it reconnects.
    """

    def __init__(
        self, port: int, topic: str = "#", client_id: str | None = None, persistent: bool = True, timeout: float = 10.0
    ) -> None:
        self.topic = topic
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
            clean_session=not persistent,
        )
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.close()
            raise RuntimeError(f"the test subscriber could not subscribe to {topic} on port {port}")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure and not flags.session_present:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            payload = bytes(message.payload)
            self.messages.append(
                Received(message.topic, payload.decode(errors="replace"), bool(message.retain), payload)
            )
            self._cond.notify_all()

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_until(self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0) -> bool:
        """Wait until predicate(all messages so far) holds; False if it did not within `timeout`."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.messages), timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(port: int, topic: str, timeout: float = 10.0) -> Received:
    """The retained message on `topic`, as a client subscribing now receives it."""
    subscriber = Subscriber(port, topic, persistent=False)
    try:
        if not subscriber.wait_until(lambda messages: any(m.retain for m in messages), timeout):
            raise AssertionError(f"no retained message on {topic}")
        return [m for m in subscriber.on(topic) if m.retain][-1]
    finally:
        subscriber.close()
