"""Whoever opens closes: what a ``Runtime`` opens (a source from a path, an event log from a path,
a sink from a URL) it closes at the end of the run or in ``close()``; what the caller hands it
stays open for the caller."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import edgecv
from edgecv.errors import ConfigError
from edgecv.events.model import Event
from edgecv.events.store import EventStoreError
from edgecv.model import Model
from edgecv.runtime.loop import RunConfig, Runtime
from edgecv.runtime.sources import open_source


@pytest.fixture(scope="module")
def model(models: Path) -> Model:
    return edgecv.load(str(models / "yolov8n_fp32_dequant.onnx"))


@pytest.fixture(scope="module")
def video(assets: Path) -> Path:
    return assets / "videos" / "pedestrians_vtest_30s.mp4"


def test_a_source_opened_by_the_runtime_is_closed_by_it(model: Model, video: Path) -> None:
    runtime = Runtime(model, str(video), RunConfig(max_frames=3), thermal=False)
    stats = runtime.run()  # the end of the run closes it, even without ``with``
    assert stats.processed == 3 and runtime.source.closed
    runtime.close()  # again: nothing happens
    with pytest.raises(RuntimeError, match="runs once"):
        runtime.run()


def test_a_callers_source_stays_open_until_the_caller_closes_it(model: Model, video: Path) -> None:
    with open_source(str(video)) as source:
        with Runtime(model, source, RunConfig(max_frames=3), thermal=False) as runtime:
            assert runtime.run().processed == 3
        assert not source.closed
        frame = source.read(timeout=10)  # the caller may go on reading
        assert frame is not None and frame.index == 3
    assert source.closed


def test_a_runtime_that_never_ran_closes_what_it_opened(model: Model, video: Path, tmp_path: Path) -> None:
    with Runtime(model, video, events=tmp_path / "events.db", thermal=False) as runtime:
        pass
    assert runtime.source.closed
    assert runtime.events is not None
    with pytest.raises(EventStoreError, match="closed"):
        runtime.events.store.stats()


def test_abandoned_results_end_the_run_on_close(model: Model, video: Path, tmp_path: Path) -> None:
    with Runtime(model, video, RunConfig(skip=2), events=tmp_path / "events.db", thermal=False) as runtime:
        for result in runtime.results():
            if result.frame == 4:
                break
    # close() ended the suspended loop: its frames' events were committed before the log closed.
    assert runtime.stats.processed == 5 and runtime.stats.ended is not None
    assert runtime.source.closed
    with sqlite3.connect(tmp_path / "events.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == runtime.stats.events_written > 0


def test_an_event_log_path_is_opened_with_the_retention_and_closed(
    model: Model, video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = RunConfig(max_frames=10, event_max_rows=3, event_flush_s=0.1)
    with Runtime(model, str(video), config, events="events.db", thermal=False) as runtime:
        stats = runtime.run()
    # Every detection of 10 frames of pedestrians is an event; 3 are kept, the rest counted as dropped.
    assert stats.events_written > 10
    assert stats.events_pending == 3 and stats.events_dropped == stats.events_written - 3
    assert runtime.events is not None
    with pytest.raises(EventStoreError, match="closed"):
        runtime.events.store.stats()
    with sqlite3.connect(tmp_path / "events.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 3


class MemorySink:
    name = "memory://fleet"

    def __init__(self) -> None:
        self.received: list[Event] = []
        self.closed = False

    def send(self, events: Sequence[Event]) -> None:
        self.received.extend(events)

    def close(self) -> None:
        self.closed = True


class MemoryTransport:
    """A plugin that provides ``memory://`` sinks through ``edgecv_event_sink``."""

    def __init__(self) -> None:
        self.opened: list[MemorySink] = []

    @edgecv.hookimpl
    def edgecv_event_sink(self, url: str, options: Mapping[str, Any]) -> MemorySink | None:
        if not url.startswith("memory://"):
            return None
        self.opened.append(MemorySink())
        return self.opened[-1]


def test_a_sink_url_is_opened_through_the_plugins_and_closed(
    fresh_plugins: ModuleType, model: Model, video: Path, tmp_path: Path
) -> None:
    transport = MemoryTransport()
    fresh_plugins.register(transport)
    config = RunConfig(max_frames=10, event_flush_s=0.1)
    with Runtime(
        model, video, config, events=tmp_path / "events.db", sink="memory://fleet", thermal=False
    ) as runtime:
        assert [runtime.events.sink if runtime.events else None] == transport.opened
        stats = runtime.run()
    (sink,) = transport.opened
    assert sink.closed
    assert stats.events_written > 0 and stats.synced == stats.events_written == len(sink.received)
    assert {e.source for e in sink.received} == {str(video)}


def test_a_sink_needs_an_event_log(model: Model, video: Path) -> None:
    with pytest.raises(ConfigError, match="needs an event log"):
        Runtime(model, video, sink="memory://fleet", thermal=False)


def test_a_sink_url_nobody_provides_leaves_nothing_open(model: Model, video: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"No sink for 'ftp://example\.com/drop'"):  # no credentials shown
        Runtime(
            model, video, events=tmp_path / "events.db", sink="ftp://user:pw@example.com/drop", thermal=False
        )
    # The sink is asked for before the log is opened: no log, no -wal file left behind.
    assert not (tmp_path / "events.db").exists() and not (tmp_path / "events.db-wal").exists()
