"""Syncer + HttpSink against a real, flaky HTTP receiver on 127.0.0.1.

The receiver fails about half the requests the ways networks fail (500, a dropped connection, an
answer after the client gave up) and sometimes stores a batch and then fails, so retries deliver
duplicates. Asserted: every written event arrives, the receiver's de-duplicated set is exactly the
written set, and the store deletes only ids the receiver had answered 2xx for.
"""

from __future__ import annotations

import base64
import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from event_testing import free_port, make_events, wait_until

from edgecv.errors import ConfigError
from edgecv.events.model import Event
from edgecv.events.sinks import HttpSink, SyncError, core_sink
from edgecv.events.store import EventStore
from edgecv.events.sync import Syncer
from edgecv.runtime.observers import open_sink

CLIENT_TIMEOUT_S = 0.4
CHILD = Path(__file__).with_name("sync_child.py")

# Outcome of one request and how often the flaky receiver picks it (the rest: "ok").
FLAKY = (
    ("error_500", 0.17),  # refused, nothing stored
    ("drop", 0.12),  # connection closed without an answer, nothing stored
    ("stall", 0.06),  # stored, but answered after the client's timeout
    ("process_then_500", 0.15),  # stored, then answered 500: the retry is a duplicate
    ("slow_ok", 0.10),  # stored, answered 200 after a short delay
)


def as_json(events: Sequence[Event]) -> dict[str, dict[str, Any]]:
    return {e.id: json.loads(json.dumps(e.to_dict())) for e in events}


class Receiver:
    """A ThreadingHTTPServer that stores events by id, failing requests as told or at random."""

    def __init__(self, seed: int = 0, *, flaky: bool = False) -> None:
        self.rng = random.Random(seed)
        self.flaky = flaky
        self.script: list[str] = []  # forced outcomes for the next requests, before the random ones
        self.lock = threading.Lock()
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries = 0  # events stored, duplicates included
        self.acked: set[str] = set()  # ids of batches about to be answered 2xx
        self.requests: list[dict[str, Any]] = []
        self.outcomes: Counter[str] = Counter()
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/ingest"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def acked_ids(self) -> set[str]:
        with self.lock:
            return set(self.acked)

    def _choose(self) -> tuple[str, float]:
        with self.lock:
            if self.script:
                outcome = self.script.pop(0)
            elif not self.flaky:
                outcome = "ok"
            else:
                draw, outcome = self.rng.random(), "ok"
                for name, share in FLAKY:
                    if draw < share:
                        outcome = name
                        break
                    draw -= share
            self.outcomes[outcome] += 1
            delay = {"stall": CLIENT_TIMEOUT_S * 1.5, "slow_ok": self.rng.uniform(0.02, 0.15)}.get(
                outcome, 0.0
            )
            return outcome, delay

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outcome, delay = receiver._choose()
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if outcome == "drop":
                    return  # HTTP/1.0: the connection closes with no answer
                if outcome == "error_500":
                    return self._answer(500, b"receiver overloaded\ntry later")
                if outcome == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                time.sleep(delay)
                events = json.loads(body)["events"]
                with receiver.lock:
                    receiver.deliveries += len(events)
                    for event in events:
                        receiver.events[event["id"]] = event
                    if outcome != "process_then_500":
                        receiver.acked.update(e["id"] for e in events)
                if outcome == "process_then_500":
                    return self._answer(500, b"stored, then crashed")
                self._answer(200, json.dumps({"accepted": len(events)}).encode())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a stalled answer: expected here


class CheckedStore(EventStore):
    """Records any acknowledge() of an id the receiver had not answered 2xx for."""

    def __init__(self, path: Path, receiver: Receiver) -> None:
        super().__init__(path)
        self.receiver = receiver
        self.early: list[set[str]] = []
        self.acknowledged = 0

    def acknowledge(self, ids: Sequence[str]) -> int:
        early = set(ids) - self.receiver.acked_ids()
        if early:
            self.early.append(early)
        self.acknowledged += len(ids)
        return super().acknowledge(ids)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    opened = EventStore(tmp_path / "events.db")
    yield opened
    opened.close()


# --- HttpSink ----------------------------------------------------------------------------------


def test_http_sink_posts_the_batch_as_json_with_an_idempotency_key(receiver: Receiver) -> None:
    sink = HttpSink(receiver.url, timeout_s=2)
    first, second = make_events(3), make_events(2, start=3)
    sink.send(first)
    sink.send(first)
    sink.send(second)
    sink.send([])  # nothing to send: no request
    assert len(receiver.requests) == 3
    request = receiver.requests[0]
    assert request["path"] == "/ingest"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == {"events": [e.to_dict() for e in first]}
    keys = [r["headers"]["Idempotency-Key"] for r in receiver.requests]
    assert keys[0] == keys[1] != keys[2]
    assert len(keys[0]) == 64
    assert receiver.events == as_json(first + second)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("error_500", "HTTP 500 Internal Server Error: receiver overloaded try later"),
        ("process_then_500", "HTTP 500"),
        ("drop", "closed connection"),
        ("stall", f"no answer within {CLIENT_TIMEOUT_S:g} s"),
        ("redirect", "HTTP 302"),  # a redirect is not an acknowledgement (urllib would re-send as GET)
    ],
)
def test_http_sink_raises_a_one_line_sync_error_unless_2xx(
    receiver: Receiver, outcome: str, expected: str
) -> None:
    receiver.script = [outcome]
    sink = HttpSink(receiver.url, timeout_s=CLIENT_TIMEOUT_S)
    with pytest.raises(SyncError) as caught:
        sink.send(make_events(2))
    message = str(caught.value)
    assert message.startswith(f"POST {receiver.url} (2 events) failed: ")
    assert expected in message
    assert "\n" not in message


def test_http_sink_connection_refused() -> None:
    sink = HttpSink(f"http://127.0.0.1:{free_port()}/ingest", timeout_s=2)
    with pytest.raises(SyncError, match=r"failed: connection refused$"):
        sink.send(make_events(1))


def test_http_sink_hides_credentials_and_sends_basic_auth(receiver: Receiver) -> None:
    port = receiver.server.server_address[1]
    sink = HttpSink(f"http://edge:s%40cret@127.0.0.1:{port}/ingest?token=abc", headers={"X-Fleet": "7"})
    assert sink.name == f"http://127.0.0.1:{port}/ingest"
    sink.send(make_events(1))
    headers = receiver.requests[0]["headers"]
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"edge:s@cret").decode()
    assert headers["X-Fleet"] == "7"
    assert receiver.requests[0]["path"] == "/ingest?token=abc"


def test_core_hook_maps_schemes_to_sinks() -> None:
    assert isinstance(core_sink("https://example.com/e", {"timeout_s": 3}), HttpSink)
    assert isinstance(core_sink("http://example.com/e", {}), HttpSink)
    assert core_sink("ftp://example.com/e", {}) is None
    with pytest.raises(ConfigError, match="Unknown http sink option"):
        core_sink("http://example.com/e", {"retries": 3})


def test_open_sink_asks_the_plugins(fresh_plugins: Any) -> None:
    assert isinstance(open_sink("http://127.0.0.1:9/e"), HttpSink)
    with pytest.raises(ConfigError) as caught:
        open_sink("ftp://user:pw@example.com/drop")
    assert str(caught.value) == (
        "No sink for 'ftp://example.com/drop': use http(s):// or mqtt:// or install a plugin that provides it"
    )


# --- Syncer ------------------------------------------------------------------------------------


def test_syncer_delivers_every_event_through_a_flaky_receiver(tmp_path: Path) -> None:
    with Receiver(seed=7, flaky=True) as receiver:
        store = CheckedStore(tmp_path / "events.db", receiver)
        syncer = Syncer(
            store,
            HttpSink(receiver.url, timeout_s=CLIENT_TIMEOUT_S),
            batch_size=25,
            backoff_initial_s=0.01,
            backoff_max_s=0.05,
            idle_poll_s=0.05,
        )
        syncer.start()
        written: list[Event] = []
        for start in range(0, 500, 20):
            batch = make_events(20, start)
            store.add(batch)
            written += batch
            syncer.wake()
            time.sleep(0.01)
        wait_until(lambda: store.stats().pending == 0, 12, "the store to drain")
        syncer.stop(flush_timeout_s=1)
        store.close()

    assert receiver.events == as_json(written)  # de-duplicated: exactly what was written
    assert store.early == []  # nothing deleted before the receiver's 2xx
    assert store.acknowledged == syncer.stats.sent == len(written)
    assert receiver.deliveries > len(written)  # retries re-sent stored batches
    assert syncer.stats.failures > 0
    assert syncer.stats.online
    assert {"error_500", "drop", "stall", "process_then_500", "slow_ok", "ok"} <= set(receiver.outcomes)
    keys: dict[str, bytes] = {}
    for request in receiver.requests:  # a re-sent batch carries the same key
        ids = b",".join(e["id"].encode() for e in json.loads(request["body"])["events"])
        assert keys.setdefault(request["headers"]["Idempotency-Key"], ids) == ids


def test_unreachable_receiver_reports_once_and_keeps_events(store: EventStore) -> None:
    written = make_events(30)
    store.add(written)
    errors: list[str] = []
    url = f"http://127.0.0.1:{free_port()}/ingest"
    syncer = Syncer(
        store,
        HttpSink(url, timeout_s=1),
        batch_size=10,
        backoff_initial_s=0.01,
        backoff_max_s=0.02,
        idle_poll_s=0.05,
        on_error=errors.append,
    )
    syncer.start()
    wait_until(lambda: syncer.stats.failures >= 5, 10, "five failed attempts")
    syncer.stop(flush_timeout_s=0.2)

    assert errors == [
        f"event sync offline: POST {url} (10 events) failed: connection refused "
        "(events stay queued and are retried)"
    ]
    assert not syncer.stats.online
    assert syncer.stats.sent == 0
    assert syncer.stats.last_error is not None and "connection refused" in syncer.stats.last_error
    assert store.stats().pending == len(written)
    assert [e.id for e in store.pending(100)] == [e.id for e in written]


class ScriptedSink:
    """Fails (with any exception) as scripted, else records the batch."""

    name = "scripted://"

    def __init__(self, failures: list[Exception | None]) -> None:
        self.failures = failures
        self.batches: list[list[str]] = []

    def send(self, events: Sequence[Event]) -> None:
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        self.batches.append([e.id for e in events])

    def close(self) -> None:
        pass


def test_backoff_doubles_and_online_state_flips_once_per_outage(store: EventStore) -> None:
    written = make_events(6)
    store.add(written)
    errors: list[str] = []
    sink = ScriptedSink([SyncError("down"), SyncError("down"), SyncError("down"), None, RuntimeError("bug")])
    syncer = Syncer(store, sink, batch_size=2, backoff_initial_s=1, backoff_max_s=3, on_error=errors.append)
    backoffs = []
    for _ in range(3):
        with pytest.raises(SyncError):
            syncer.run_once()
        backoffs.append(syncer.stats.backoff_s)
    assert 0.5 <= backoffs[0] <= 1 and 1 <= backoffs[1] <= 2 and 1.5 <= backoffs[2] <= 3  # jittered
    assert not syncer.stats.online and store.stats().pending == 6
    assert syncer.run_once() == 2
    assert syncer.stats.online and syncer.stats.backoff_s == 0
    with pytest.raises(RuntimeError):  # a sink breaking its contract counts as a failure too
        syncer.run_once()
    assert syncer.stats.last_error == "RuntimeError: bug"
    assert syncer.run_once() == 2 and syncer.run_once() == 2 and syncer.run_once() == 0
    assert errors == ["event sync offline: down (events stay queued and are retried)"]  # once
    assert syncer.stats.failures == 4 and syncer.stats.sent == 6 and syncer.stats.batches == 3
    assert [i for batch in sink.batches for i in batch] == [e.id for e in written]


def test_a_sink_that_raises_anything_does_not_kill_the_thread(store: EventStore) -> None:
    store.add(make_events(5))
    sink = ScriptedSink([RuntimeError("plugin bug"), ValueError("again")])
    syncer = Syncer(store, sink, backoff_initial_s=0.01, backoff_max_s=0.01, idle_poll_s=0.05)
    syncer.start()
    wait_until(lambda: store.stats().pending == 0, 5, "the store to drain")
    syncer.stop()
    assert syncer.stats.failures == 2 and syncer.stats.sent == 5 and syncer.stats.online


# --- SIGKILL -----------------------------------------------------------------------------------


def test_sigkill_mid_sync_loses_nothing(tmp_path: Path) -> None:
    """A syncer process killed at random moments and restarted: every event arrives, the log drains."""
    rng = random.Random(5)
    db = tmp_path / "events.db"
    written: list[Event] = []
    with Receiver(seed=11, flaky=True) as receiver, EventStore(db) as store:

        def write(count: int) -> None:
            batch = make_events(count, len(written))
            store.add(batch)
            written.extend(batch)

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen([sys.executable, str(CHILD), str(db), receiver.url])

        write(150)
        kills = 0
        for _ in range(4):
            child = spawn()
            try:
                seen = len(receiver.requests)
                wait_until(lambda: len(receiver.requests) > seen, 10, "the child to send")  # noqa: B023
                time.sleep(rng.uniform(0.0, 0.4))
                write(30)
            finally:
                child.send_signal(signal.SIGKILL)
                kills += child.wait() == -signal.SIGKILL
        child = spawn()
        try:
            wait_until(lambda: store.stats().pending == 0, 12, "the last child to drain the log")
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert store.stats().pending == 0

    assert kills == 4
    assert receiver.events == as_json(written)
