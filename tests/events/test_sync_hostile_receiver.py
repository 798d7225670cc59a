"""A sync receiver cannot exhaust memory or hold shutdown: HttpSink caps the answer and bounds the request.

Hostile receivers on 127.0.0.1 answer 200 with an endless body, or trickle their answer a byte at a
time (each byte well within urllib's per-read timeout). ``send`` must return within its deadline
having read a bounded amount, a ``Syncer`` must stop promptly with such a send in flight, and
``edgecv run --sync`` must exit soon after SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from io import BufferedIOBase
from pathlib import Path

import pytest
from event_testing import make_events, wait_until

from edgecv.events.sinks import MAX_ANSWER_BYTES, HttpSink, SyncError
from edgecv.events.store import EventStore
from edgecv.events.sync import STOP_GRACE_S, Syncer

ENDLESS_LIMIT = 128 * 1024 * 1024  # "endless": the server gives up here, so a client without a cap ends too


class Hostile:
    """A TCP server that reads a request's headers and body, then answers as ``mode`` says.

    ``endless-length`` / ``endless-close``: a 200 whose body never ends (with a huge Content-Length,
    or none: read until close), written as fast as the client takes it. ``trickle-headers`` /
    ``trickle-body``: one byte every ``interval_s`` for up to ``trickle_s``.
    """

    def __init__(self, mode: str, *, interval_s: float = 0.1, trickle_s: float = 30.0) -> None:
        self.mode = mode
        self.interval_s = interval_s
        self.trickle_s = trickle_s
        self.requests = 0
        self.sent = 0  # body bytes the client took (or the kernel buffered for it)
        self.closed = threading.Event()  # the client hung up on us
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/ingest"

    def __enter__(self) -> Hostile:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        hostile = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                length = 0
                while (line := self.rfile.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.rfile.read(length)
                hostile.requests += 1
                try:
                    hostile._answer(self.wfile)
                except OSError:
                    hostile.closed.set()

        return Handler

    def _answer(self, out: BufferedIOBase) -> None:
        if self.mode.startswith("endless"):
            length = b"Content-Length: 1000000000000\r\n" if self.mode == "endless-length" else b""
            out.write(b"HTTP/1.1 200 OK\r\n" + length + b"\r\n")
            chunk = b"x" * 65536
            while self.sent < ENDLESS_LIMIT:
                out.write(chunk)
                self.sent += len(chunk)
            return
        if self.mode == "trickle-headers":
            head, body = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 10_000, b""
        else:
            head, body = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n", b"z" * 10_000
        out.write(head[:12])
        deadline = time.monotonic() + self.trickle_s
        for byte in (head[12:] + body)[: int(self.trickle_s / self.interval_s)]:
            if time.monotonic() > deadline:
                break
            time.sleep(self.interval_s)
            out.write(bytes([byte]))
            self.sent += 1


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "events.db") as opened:
        yield opened


@pytest.mark.parametrize("mode", ["endless-length", "endless-close"])
def test_an_endless_answer_is_read_only_up_to_the_cap(mode: str) -> None:
    with Hostile(mode) as hostile:
        sink = HttpSink(hostile.url, timeout_s=5)
        started = time.monotonic()
        sink.send(make_events(3))  # a 2xx status is the acknowledgement; the rest is not read
        elapsed = time.monotonic() - started
        wait_until(hostile.closed.is_set, 5, "the client to hang up")
    assert elapsed < 2, elapsed
    # What the server could write: the capped read plus what the kernel buffers on loopback.
    assert MAX_ANSWER_BYTES <= hostile.sent < 48 * 1024 * 1024, hostile.sent


@pytest.mark.parametrize("mode", ["trickle-headers", "trickle-body"])
def test_a_trickled_answer_fails_at_the_deadline(mode: str) -> None:
    with Hostile(mode, interval_s=0.05) as hostile:
        sink = HttpSink(hostile.url, timeout_s=1)  # each byte comes well within the per-read timeout
        started = time.monotonic()
        with pytest.raises(SyncError) as caught:
            sink.send(make_events(2))
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 2, elapsed
    assert str(caught.value) == f"POST {hostile.url} (2 events) failed: no answer within 1 s"
    assert hostile.sent > 5  # it did trickle: the per-read timeout alone never fired


def test_close_cuts_a_send_in_flight() -> None:
    with Hostile("trickle-body") as hostile:
        sink = HttpSink(hostile.url, timeout_s=60)
        failures: list[BaseException] = []

        def send() -> None:
            try:
                sink.send(make_events(1))
            except BaseException as error:
                failures.append(error)

        sender = threading.Thread(target=send)
        sender.start()
        wait_until(lambda: hostile.sent > 2, 5, "the answer to start trickling")
        started = time.monotonic()
        sink.close()
        sender.join(5)
        assert not sender.is_alive() and time.monotonic() - started < 1
    assert len(failures) == 1 and isinstance(failures[0], SyncError), failures


def test_stopping_a_syncer_does_not_wait_for_a_hung_receiver(store: EventStore) -> None:
    store.add(make_events(5))
    with Hostile("trickle-body", trickle_s=60) as hostile:
        sink = HttpSink(hostile.url, timeout_s=60)
        syncer = Syncer(store, sink, idle_poll_s=0.05)
        syncer.start()
        wait_until(lambda: hostile.sent > 2, 5, "the send to hang")
        started = time.monotonic()
        syncer.stop(flush_timeout_s=0.5)
        stopped = time.monotonic() - started
        sink.close()  # the owner closes the sink after the syncer: that ends the send left behind
        wait_until(lambda: syncer.stats.failures == 1, 5, "the send left behind to fail")
    assert stopped < 0.5 + STOP_GRACE_S + 0.5, stopped
    assert store.stats().pending == 5  # nothing acknowledged: sent again next time


def test_sigterm_exits_promptly_while_the_receiver_trickles(tmp_path: Path, assets: Path) -> None:
    db = tmp_path / "events.db"
    video = assets / "videos" / "pedestrians_vtest_30s.mp4"
    model = assets / "models" / "yolov8n_fp32_dequant.onnx"
    with Hostile("trickle-body", interval_s=1.0, trickle_s=120) as hostile:
        command = [sys.executable, "-m", "edgecv", "run", str(video), "--model", str(model), "--realtime"]
        process = subprocess.Popen(
            [*command, "--events", str(db), "--sync", hostile.url, "--thermal", "off"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "EDGECV_DEBUG": "0"},
        )
        try:
            wait_until(lambda: hostile.sent > 0 or process.poll() is not None, 120, "a send to hang")
            assert process.poll() is None, process.communicate()[1]
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
            took = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    # The drain (5 s) plus the grace for the send in flight, then the sink is closed under it.
    assert took < 10, (took, stderr)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    with EventStore(db) as store:
        assert store.stats().pending > 0  # the unacknowledged events stay for the next run
