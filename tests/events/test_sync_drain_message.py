"""The sync drain at the end of a run says what it waits for, stays bounded, and Ctrl-C ends it."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from event_testing import free_port, make_events, wait_until

from edgecv.events.sinks import HttpSink
from edgecv.events.store import EventStore
from edgecv.events.sync import STOP_GRACE_S, Syncer


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "events.db") as opened:
        yield opened


def _waiting(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Waiting up to")]


def test_an_offline_receiver_is_named_once_and_the_wait_stays_bounded(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.add(make_events(30))
    url = f"http://user:secret@127.0.0.1:{free_port()}/ingest?token=abc"
    syncer = Syncer(store, HttpSink(url, timeout_s=1), backoff_initial_s=0.05, backoff_max_s=0.1)
    syncer.start()
    wait_until(lambda: syncer.stats.failures >= 1, 10, "a failed attempt")
    caplog.set_level(logging.WARNING, logger="edgecv.events.sync")
    started = time.monotonic()
    syncer.stop(flush_timeout_s=1.0)
    assert time.monotonic() - started < 1.0 + STOP_GRACE_S + 0.5
    (line,) = _waiting(caplog)
    host = url.split("@")[1].split("?")[0]
    assert f"the sync receiver http://{host} to take 30 pending events" in line
    assert "secret" not in line and "token" not in line
    assert "Ctrl-C stops now" in line
    assert store.stats().pending == 30


class _Acknowledging(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_receiver_that_takes_everything_is_not_mentioned(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Acknowledging)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        syncer = Syncer(store, HttpSink(f"http://127.0.0.1:{server.server_address[1]}/ingest"))
        syncer.start()
        store.add(make_events(250))  # three batches, all sent by the drain
        caplog.set_level(logging.WARNING, logger="edgecv.events.sync")
        syncer.stop(flush_timeout_s=5.0)
    finally:
        server.shutdown()
        server.server_close()
    assert store.stats().pending == 0
    assert _waiting(caplog) == []


def test_run_with_an_offline_receiver_says_what_it_waits_for_and_ctrl_c_ends_it(
    assets: Path, models: Path, tmp_path: Path
) -> None:
    events = tmp_path / "events.db"
    url = f"http://user:secret@127.0.0.1:{free_port()}/ingest?token=abc"
    command = [
        sys.executable, "-m", "edgecv", "run", str(assets / "videos" / "pedestrians_vtest_30s.mp4"),
        "--model", str(models / "yolo11n_320_fp32_dequant.onnx"), "--max-frames", "5", "--thermal", "off",
        "--json", "--events", str(events), "--sync", url,
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("warning: Waiting up to"):
                interrupted = time.monotonic()
                proc.send_signal(signal.SIGINT)
                break
        else:
            pytest.fail(f"no line about the wait: {''.join(lines)}")
        rest = proc.stderr.read()
        assert proc.wait(timeout=10) == 130, rest
        assert time.monotonic() - interrupted < 2.0  # not the rest of the 5 s drain
    waiting = lines[-1]
    assert f"for the sync receiver http://127.0.0.1:{url.split(':')[-1].split('/')[0]}/ingest" in waiting
    assert "secret" not in waiting and "token" not in waiting
    pending = int(waiting.split(" to take ")[1].split()[0])
    assert pending > 0
    assert rest.strip() == "interrupted"
    with sqlite3.connect(events) as db:  # nothing lost: the unsent events wait for the next run
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == pending
