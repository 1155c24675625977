"""Events over MQTT, for the home-automation, VMS or alerting system that acts on them.

Topics (docs/mqtt.md has the payloads):
- `<prefix>/<camera>/<type>`: every event as its JSON-lines object (`action`, `person`, `stream`, `summary`);
  an event without a camera (a run-wide summary) goes to `<prefix>/<type>`;
- `<prefix>/<camera>/state` (retained): each person now in view with their label, score and
  repetitions of the current run (`reps`, with counting on);
- `<prefix>/events`: each action episode's start, update and end in Frigate's shape
  (`{"type": "new|update|end", "before": {...}, "after": {...}}`), when media is kept;
- `<prefix>/<camera>/<label>/snapshot` (retained): the JPEG of the latest episode of that action;
- `<prefix>/availability` (retained): `online`, and `offline` on close or, as the broker's last will,
  when the process dies.

The broker may be down at start or go away mid-run; the pipeline never waits for it. `send`
only queues (bounded: when full the oldest event is dropped and counted). One publisher thread
hands events to paho while it is connected, with at most `INFLIGHT` unacknowledged; paho's own
network thread connects, reconnects, and resends those unacknowledged ones after a reconnect.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .config import MqttConfig
from .errors import ConfigError

# Messages handed to paho and not yet acknowledged. Beyond paho's own in-flight limit (20 by
# default) it would only queue them internally, unbounded; the rest wait in our bounded queue.
INFLIGHT = 20
# paho's reconnect backoff: the first retry after 1 s, doubling up to 10 s (as capture's own).
RECONNECT_MIN_DELAY_S = 1
RECONNECT_MAX_DELAY_S = 10
# A TCP connect to an address that never answers would otherwise hold paho's thread, and close(), 5 s.
CONNECT_TIMEOUT_S = 3.0
# People kept in a camera's state: a bound in case `left` events were missed in a crowd.
MAX_PEOPLE_PER_CAMERA = 256
# Episodes whose last message is remembered for the next one's `before`; open ones are few.
MAX_OPEN_EPISODES = 1024
FRIGATE_TYPES = {"start": "new", "update": "update", "end": "end"}


@dataclass
class MqttStats:
    """Events given to `send` and what became of them; after close, published + dropped == sent."""

    sent: int = 0
    published: int = 0  # acknowledged by the broker (QoS 0: handed to a connected client)
    dropped: int = 0  # evicted from the full queue, or still unacknowledged when close gave up
    queued: int = 0  # waiting now: in our queue, being handed over, or unacknowledged in paho
    reached: bool = False  # connected to the broker at least once


@dataclass
class _Pending:
    topic: str
    payload: str | bytes
    retain: bool = False
    is_event: bool = True


def overrides_from_url(url: str) -> dict[str, Any]:
    """`--mqtt mqtt://[user:pass@]host[:port]` (mqtts:// for TLS) as config overrides."""
    fix = "use mqtt://[user:password@]host[:port] or mqtts://… for TLS"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"--mqtt {url!r} has a bad port — {fix}") from None
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"--mqtt {url!r} is not an MQTT URL — {fix}")
    if not parts.hostname:
        raise ConfigError(f"--mqtt {url!r} names no broker host — {fix}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"--mqtt {url!r} has a path or query — {fix}; set mqtt.topic_prefix in the config file")
    tls = parts.scheme == "mqtts"
    mqtt_overrides: dict[str, Any] = {"host": parts.hostname, "port": port or (8883 if tls else 1883), "tls": tls}
    if parts.username is not None:
        mqtt_overrides["username"] = unquote(parts.username)
    if parts.password is not None:
        mqtt_overrides["password"] = unquote(parts.password)
    return {"mqtt": mqtt_overrides}


class MqttWriter:
    """An `EventWriter` that publishes to an MQTT broker (paho-mqtt). Starts connecting at once."""

    def __init__(
        self, config: MqttConfig, flush_timeout_s: float = 2.0, notice: Callable[[str], None] | None = None
    ) -> None:
        if not config.host:
            raise ConfigError("mqtt.host is empty — set it, or pass --mqtt mqtt://host:port")
        prefix = config.topic_prefix.strip("/")
        if not prefix or "+" in prefix or "#" in prefix:
            raise ConfigError(
                f"mqtt.topic_prefix {config.topic_prefix!r} is not a topic — use a name such as realtime (no + or #)"
            )
        self.config = config
        self.prefix = prefix
        self.availability_topic = f"{prefix}/availability"
        self.flush_timeout_s = flush_timeout_s
        self.notice = notice or (lambda message: None)
        self._stats = MqttStats()

        # Everything below is guarded by _cond; paho's callbacks and send() notify it.
        self._cond = threading.Condition()
        self._outbox: deque[_Pending] = deque()
        self._handing = 0  # events taken from the outbox, not yet given to paho
        self._inflight: dict[int, bool] = {}  # mid -> is an event (states and availability are not)
        self._acked: set[int] = set()  # acknowledgements that came before publish() returned the mid
        self._people: dict[str, dict[int, dict[str, Any]]] = {}
        self._episodes: dict[str, dict[str, Any]] = {}  # episode id -> its last `after`
        self._state_t: dict[str, float] = {}
        self._camera_t: dict[str, float] = {}  # each camera's latest event time
        self._dirty: set[str] = set()  # cameras whose state the broker has not seen yet
        self._snapshots: dict[str, bytes] = {}  # topic -> the latest retained snapshot (one per camera and label)
        self._ever_connected = False
        self._connected = False
        self._outage_reported = False
        self._closing = False
        self._closed = False
        self._deadline = float("inf")

        client_id = config.client_id or f"realtime-{socket.gethostname()}-{os.getpid()}"
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if config.username:
            self._client.username_pw_set(config.username, config.password)
        if config.tls:
            self._client.tls_set()
        if config.availability:
            self._client.will_set(self.availability_topic, "offline", qos=config.qos, retain=True)
        self._client.reconnect_delay_set(RECONNECT_MIN_DELAY_S, RECONNECT_MAX_DELAY_S)
        self._client.max_inflight_messages_set(INFLIGHT)
        self._client.connect_timeout = CONNECT_TIMEOUT_S
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.connect_async(config.host, config.port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._publish_loop, name="mqtt-publisher", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        with self._cond:
            return self._connected

    @property
    def stats(self) -> MqttStats:
        with self._cond:
            queued = len(self._outbox) + self._handing + sum(self._inflight.values())
            return MqttStats(self._stats.sent, self._stats.published, self._stats.dropped, queued, self._stats.reached)

    # --- the caller's side ---------------------------------------------------------------

    def send(self, event: dict[str, Any]) -> None:
        """Queue one event; never waits for the broker."""
        camera = event.get("camera")
        kind = str(event.get("type") or "event")
        topic = f"{self.prefix}/{camera}/{kind}" if camera else f"{self.prefix}/{kind}"  # e.g. a run-wide summary
        pending = _Pending(topic, json.dumps(event, separators=(",", ":")))
        with self._cond:
            self._stats.sent += 1
            if self._closing:
                self._stats.dropped += 1
                return
            if camera:
                self._update_state(str(camera), event)
            self._queue(pending)
            if kind == "event":
                self._stats.sent += 1
                self._queue(_Pending(f"{self.prefix}/events", self._frigate_payload(event)))
            self._cond.notify()

    def send_snapshot(self, camera: str, label: str, jpeg: bytes) -> None:
        """The retained image of the latest person seen doing `label` (Home Assistant's MQTT camera)."""
        with self._cond:
            if self._closing:
                return
            topic = f"{self.prefix}/{camera}/{label}/snapshot"
            self._snapshots[topic] = jpeg
            self._queue(_Pending(topic, jpeg, retain=True, is_event=False))
            self._cond.notify()

    def _queue(self, pending: _Pending) -> None:
        if len(self._outbox) >= self.config.queue_size:
            self._stats.dropped += self._outbox.popleft().is_event
        self._outbox.append(pending)

    def _frigate_payload(self, event: dict[str, Any]) -> str:
        """An `event` record as Frigate publishes its events: what changed, before and after."""
        after = {
            "id": event.get("id"),
            "camera": event.get("camera"),
            "label": event.get("label"),
            "track": event.get("track"),
            "start_time": event.get("start_time"),
            "end_time": event.get("end_time"),
            "top_score": event.get("score"),
            "score": event.get("score"),
            "has_snapshot": event.get("snapshot") is not None,
            "has_clip": event.get("clip") is not None,
            "snapshot": event.get("snapshot"),
            "clip": event.get("clip"),
        }
        event_id = str(event.get("id"))
        before = self._episodes.pop(event_id, after)
        if event.get("phase") != "end":
            self._episodes[event_id] = after
            if len(self._episodes) > MAX_OPEN_EPISODES:
                del self._episodes[next(iter(self._episodes))]
        kind = FRIGATE_TYPES.get(str(event.get("phase")), "update")
        return json.dumps({"type": kind, "before": before, "after": after}, separators=(",", ":"))

    def close(self) -> None:
        """Publish what can be published within `flush_timeout_s`, then `offline`, and disconnect."""
        with self._cond:
            if self._closed:
                return
            self._closed = self._closing = True
            self._deadline = time.monotonic() + self.flush_timeout_s
            self._cond.notify()
        self._thread.join()
        if self.connected and self.config.availability:
            info = self._client.publish(self.availability_topic, "offline", qos=self.config.qos, retain=True)
            # If the connection went just now, the last will says offline.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=max(0.2, self._deadline - time.monotonic()))
        self._client.disconnect()
        self._client.loop_stop()

    # --- each camera's people, for the retained state topic --------------------------------

    def _update_state(self, camera: str, event: dict[str, Any]) -> None:
        # Stream events carry wall time only: a change they make is dated by the camera's last `t`.
        if event.get("t") is not None:
            self._camera_t[camera] = float(event["t"])
        people = self._people.get(camera)
        if people is None:  # a new camera: publish its (empty) state, replacing an old run's
            people = self._people[camera] = {}
            self._state_t[camera] = self._camera_t.get(camera, 0.0)
            self._dirty.add(camera)
        kind, status = event.get("type"), event.get("status")
        before = dict(people)
        if kind == "action" and "track" in event:
            people[int(event["track"])] = {
                "track": int(event["track"]),
                "label": event.get("label"),
                "score": event.get("score"),
                **({"reps": event["reps"]} if "reps" in event else {}),
            }
            if len(people) > MAX_PEOPLE_PER_CAMERA:
                del people[next(iter(people))]
        elif kind == "reps" and int(event.get("track", -1)) in people:
            people[int(event["track"])] = {**people[int(event["track"])], "reps": event["reps"]}
        elif kind == "person" and status == "left" and "track" in event:
            people.pop(int(event["track"]), None)
        elif kind == "stream" and status in ("lost", "ended"):  # nobody is in view of a stream that is down or over
            people.clear()
        if people != before:
            self._state_t[camera] = self._camera_t.get(camera, 0.0)
            self._dirty.add(camera)

    def _state_payload(self, camera: str) -> str:
        people = [self._people[camera][track] for track in sorted(self._people[camera])]
        return json.dumps({"camera": camera, "t": self._state_t.get(camera), "people": people}, separators=(",", ":"))

    # --- the publisher thread ------------------------------------------------------------

    def _publish_loop(self) -> None:
        while True:
            with self._cond:
                while not self._has_work():
                    self._cond.wait(self._time_left())  # closing: until the flush deadline at most
                if self._closing and (self._flushed() or self._time_left() == 0):
                    self._give_up()
                    return
                batch = self._take_batch()
            for pending in batch:
                self._hand_to_paho(pending)

    def _time_left(self) -> float | None:
        if not self._closing:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def _flushed(self) -> bool:
        return not self._outbox and not self._inflight and not self._dirty

    def _has_work(self) -> bool:
        if self._closing and (self._flushed() or self._time_left() == 0):
            return True
        return self._connected and len(self._inflight) < INFLIGHT and bool(self._outbox or self._dirty)

    def _take_batch(self) -> list[_Pending]:
        if not self._connected:
            return []
        room = INFLIGHT - len(self._inflight)
        batch: list[_Pending] = []
        while self._dirty and len(batch) < room:
            camera = self._dirty.pop()
            batch.append(
                _Pending(f"{self.prefix}/{camera}/state", self._state_payload(camera), retain=True, is_event=False)
            )
        while self._outbox and len(batch) < room:
            batch.append(self._outbox.popleft())
        self._handing = sum(pending.is_event for pending in batch)
        return batch

    def _hand_to_paho(self, pending: _Pending) -> None:
        info = self._client.publish(pending.topic, pending.payload, qos=self.config.qos, retain=pending.retain)
        with self._cond:
            self._handing -= pending.is_event
            if self.config.qos == 0:  # fire and forget: published if a connected client took it
                if pending.is_event:
                    if info.rc == mqtt.MQTT_ERR_SUCCESS:
                        self._stats.published += 1
                    else:
                        self._stats.dropped += 1
                return
            # QoS 1/2: paho keeps it (connected or not) until acknowledged, resending after a reconnect.
            if info.mid in self._acked:
                self._acked.discard(info.mid)
                self._stats.published += pending.is_event
            else:
                self._inflight[info.mid] = pending.is_event

    def _give_up(self) -> None:
        """Closing: what is still queued or unacknowledged will not be published."""
        self._stats.dropped += len(self._outbox) + sum(self._inflight.values())
        self._outbox.clear()
        self._inflight.clear()

    # --- paho's callbacks (its network thread) ---------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._report_outage(f"the MQTT broker {self._where()} refused the connection ({reason})")
            return
        if self.config.availability:
            info = self._client.publish(self.availability_topic, "online", qos=self.config.qos, retain=True)
        with self._cond:
            if self.config.availability and self.config.qos > 0:  # acknowledged later, on this same thread
                self._inflight[info.mid] = False
            self._connected = self._stats.reached = True
            # A restarted broker may have lost its retained messages: send every state and snapshot again.
            self._dirty.update(self._people)
            if self._ever_connected:
                for topic, jpeg in self._snapshots.items():
                    self._queue(_Pending(topic, jpeg, retain=True, is_event=False))
            self._ever_connected = True
            if self._outage_reported:
                self._outage_reported = False
                self.notice(f"realtime: MQTT broker {self._where()} reached; sending the queued events")
            self._cond.notify()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._report_outage(f"cannot reach the MQTT broker {self._where()}")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._cond:
            self._connected = False
            self._cond.notify()
        if not self._closing:
            self._report_outage(f"lost the MQTT broker {self._where()} ({reason})")

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        if self.config.qos == 0:  # counted when handed over
            return
        with self._cond:
            if mid in self._inflight:
                self._stats.published += self._inflight.pop(mid)
            else:
                self._acked.add(mid)
            self._cond.notify()

    def _report_outage(self, what: str) -> None:
        with self._cond:
            if self._outage_reported:
                return
            self._outage_reported = True
        self.notice(
            f"realtime: {what}; retrying every {RECONNECT_MIN_DELAY_S}-{RECONNECT_MAX_DELAY_S} s, "
            f"events wait in a queue of {self.config.queue_size}"
        )

    def never_reached(self) -> str | None:
        """After close: why the run published nothing, if the broker was never reached at all."""
        stats = self.stats
        if stats.reached:
            return None
        return (
            f"the MQTT broker {self._where()} was never reached: none of {stats.sent} events was published — "
            f"check mqtt.host and mqtt.port (or --mqtt) and that the broker is running"
        )

    def _where(self) -> str:
        return f"{self.config.host}:{self.config.port}"
