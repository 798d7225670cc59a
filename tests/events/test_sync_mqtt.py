"""Syncer + MqttSink against a real mosquitto broker on 127.0.0.1, stopped and restarted mid-run.

The broker keeps sessions across its restart (persistence on, stopped with SIGTERM) and the
subscriber has a persistent session (clean_session=False, QoS 1), so every message the broker
PUBACKed reaches the subscriber, even one published while the subscriber was disconnected. The
subscriber must therefore end up with exactly the written ids: an event deleted locally without a
PUBACK would be missing there.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from event_testing import free_port, make_events, wait_until

from edgecv.errors import ConfigError
from edgecv.events.model import Event
from edgecv.events.sinks import MQTT_MISSING, MqttSink, SyncError, core_sink
from edgecv.events.store import EventStore
from edgecv.events.sync import Syncer

TOPIC = "fleet/cam0/events"
MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def require(available: bool, what: str) -> None:
    """Skip locally without ``what``; in CI (which installs it) a missing tool is a failure."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, but CI installs it")
    pytest.skip(f"{what} is not installed")


def paho_installed() -> bool:
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        return False
    return True


class Broker:
    """A mosquitto process on 127.0.0.1:port that can be stopped and started again."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            "autosave_interval 0\n"  # saved on exit (SIGTERM) only
            "log_dest stderr\n"
            f"user {getpass.getuser()}\n"  # as root, mosquitto would switch to a user that cannot write here
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}/{TOPIC}"

    def start(self) -> None:
        assert MOSQUITTO is not None
        log = (self.folder / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    text = (self.folder / "mosquitto.log").read_text(errors="replace")
                    pytest.fail(f"mosquitto did not start on port {self.port}:\n{text}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class Subscriber:
    """A persistent-session QoS 1 subscriber that collects event ids."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.ids: set[str] = set()
        self.messages = 0
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="edgecv-test-subscriber",
            clean_session=False,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_until(self.subscribed.is_set, 10, "the subscription")

    def seen(self) -> set[str]:
        with self.lock:
            return set(self.ids)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(TOPIC, qos=1)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        event = Event.from_dict(json.loads(message.payload))
        with self.lock:
            self.ids.add(event.id)
            self.messages += 1


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    require(MOSQUITTO is not None, "the mosquitto broker")
    require(paho_installed(), "paho-mqtt")
    running = Broker(tmp_path)
    running.start()
    yield running
    running.stop()


class FakeBroker:
    """Answers CONNECT with a CONNACK carrying ``code``, then reads and never acknowledges."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.published = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.recv(1024)  # CONNECT
            conn.sendall(bytes([0x20, 0x02, 0x00, self.code]))
            while data := conn.recv(4096):
                if data[0] >> 4 == 3:  # PUBLISH
                    self.published.set()

    def close(self) -> None:
        self.server.close()


# --- MqttSink ----------------------------------------------------------------------------------


def test_mqtt_url_checks_and_credentials_stay_out_of_the_name() -> None:
    require(paho_installed(), "paho-mqtt")
    sink = MqttSink("mqtts://edge:secret@broker.example:8884/fleet/a")
    assert (sink.name, sink.topic) == ("mqtts://broker.example:8884/fleet/a", "fleet/a")
    assert isinstance(core_sink("mqtt://broker.example/fleet/a", {"client_id": "cam0"}), MqttSink)
    with pytest.raises(ConfigError, match="needs a topic without wildcards"):
        MqttSink("mqtt://broker.example/fleet/#")
    with pytest.raises(ConfigError, match="needs a topic"):
        MqttSink("mqtt://broker.example")


def test_mqtt_without_paho_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    with pytest.raises(ConfigError) as caught:
        core_sink("mqtt://broker.example/fleet/a", {})
    assert str(caught.value) == MQTT_MISSING


def test_send_returns_only_after_every_puback() -> None:
    require(paho_installed(), "paho-mqtt")
    fake = FakeBroker(code=0)  # accepts the connection, swallows the PUBLISHes
    sink = MqttSink(f"mqtt://127.0.0.1:{fake.port}/{TOPIC}", timeout_s=0.5)
    try:
        with pytest.raises(SyncError, match=r"no PUBACK within 0\.5 s$"):
            sink.send(make_events(3))
        assert fake.published.is_set()
    finally:
        sink.close()
        fake.close()


def test_close_ends_a_send_waiting_for_pubacks() -> None:
    """A broker that never answers cannot hold shutdown: the owner's close() ends the send in flight."""
    require(paho_installed(), "paho-mqtt")
    fake = FakeBroker(code=0)  # accepts the connection, swallows the PUBLISHes
    sink = MqttSink(f"mqtt://127.0.0.1:{fake.port}/{TOPIC}", timeout_s=60)
    outcome: list[BaseException | None] = []

    def send() -> None:
        try:
            sink.send(make_events(2))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=send)
    try:
        worker.start()
        assert fake.published.wait(10)
        started = time.monotonic()
        sink.close()
        worker.join(10)
        assert time.monotonic() - started < 1 and not worker.is_alive()
    finally:
        sink.close()
        fake.close()
    assert len(outcome) == 1 and isinstance(outcome[0], SyncError)
    assert str(outcome[0]).endswith("failed: the sink was closed")


def test_refused_connections_are_one_line_sync_errors() -> None:
    require(paho_installed(), "paho-mqtt")
    fake = FakeBroker(code=5)  # CONNACK: not authorised
    sink = MqttSink(f"mqtt://127.0.0.1:{fake.port}/{TOPIC}", timeout_s=2)
    try:
        with pytest.raises(SyncError, match="the broker refused the connection: Not authorized"):
            sink.send(make_events(1))
    finally:
        sink.close()
        fake.close()
    closed = MqttSink(f"mqtt://127.0.0.1:{free_port()}/{TOPIC}", timeout_s=2)
    with pytest.raises(SyncError, match=r"cannot connect to the broker: connection refused$"):
        closed.send(make_events(1))
    closed.close()


def test_a_broker_that_goes_away_fails_the_send_instead_of_hanging(broker: Broker) -> None:
    sink = MqttSink(broker.url, timeout_s=1)
    try:
        sink.send(make_events(2))
        broker.stop()
        outcome: list[BaseException | None] = []

        def send() -> None:
            try:
                sink.send(make_events(2))
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=send)
        worker.start()
        worker.join(30)  # a hang detector, not a speed limit: the sink's own timeout is 1 s
        assert not worker.is_alive(), "send() hung with the broker gone"
        assert len(outcome) == 1 and isinstance(outcome[0], SyncError)
        broker.start()
        sink.send(make_events(2))  # reconnects by itself
    finally:
        sink.close()


# --- Syncer ------------------------------------------------------------------------------------


def test_syncer_rides_out_a_broker_restart(broker: Broker, tmp_path: Path) -> None:
    subscriber = Subscriber(broker.port)
    store = EventStore(tmp_path / "events.db")
    sink = MqttSink(broker.url, timeout_s=1)
    errors: list[str] = []
    syncer = Syncer(
        store,
        sink,
        batch_size=20,
        backoff_initial_s=0.02,
        backoff_max_s=0.2,
        idle_poll_s=0.05,
        on_error=errors.append,
    )
    written: list[Event] = []

    def write(count: int) -> None:
        for _ in range(count // 10):
            batch = make_events(10, len(written))
            store.add(batch)
            written.extend(batch)
            syncer.wake()

    try:
        syncer.start()
        write(100)
        wait_until(lambda: store.stats().pending == 0, 10, "the first events to be sent")
        wait_until(lambda: subscriber.seen() == {e.id for e in written}, 10, "the subscriber")
        sent_before = syncer.stats.sent

        broker.stop()
        write(60)
        wait_until(lambda: syncer.stats.failures >= 2, 10, "failed sends")
        assert not syncer.stats.online
        assert store.stats().pending == 60  # queued, nothing deleted without a PUBACK
        assert syncer.stats.sent == sent_before
        write(40)
        assert store.stats().pending == 100
        assert len(errors) == 1 and "\n" not in errors[0] and broker.url in errors[0]

        broker.start()
        wait_until(lambda: store.stats().pending == 0, 10, "the queue to drain after the restart")
        wait_until(lambda: subscriber.seen() == {e.id for e in written}, 10, "every event at the subscriber")
        assert syncer.stats.online and syncer.stats.sent == len(written) == 200
    finally:
        syncer.stop(flush_timeout_s=1)
        sink.close()
        store.close()
        subscriber.close()
    assert subscriber.seen() == {e.id for e in written}
    assert subscriber.messages >= len(written)


def test_edgecv_run_ships_its_events_to_the_broker(broker: Broker, tmp_path: Path, assets: Path) -> None:
    """The whole path from the command line: video → tracked people → event log → MQTT → subscriber."""
    from edgecv.testing.cli import run_edgecv

    subscriber = Subscriber(broker.port)
    db = tmp_path / "events.db"
    try:
        result = run_edgecv(
            "run", assets / "videos" / "pedestrians_vtest_30s.mp4",
            "--model", assets / "models" / "yolov8n_fp32_dequant.onnx",
            "--max-frames", "20", "--track", "--events", db, "--event-new-tracks",
            "--event-classes", "person", "--sync", broker.url, "--thermal", "off",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0  # all acknowledged
        written = json.loads(result.stderr.split("events: ")[1].split(" written")[0])
        assert written >= 4
        wait_until(lambda: len(subscriber.seen()) == written, 10, "every event at the subscriber")
    finally:
        subscriber.close()
