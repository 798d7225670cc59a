"""EventPipeline: events chosen per frame, committed in batches, shipped, closed by whoever opened them."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from edgecv.detections import Detections
from edgecv.errors import ConfigError
from edgecv.events.model import Event
from edgecv.events.pipeline import EventPipeline
from edgecv.events.policy import EventPolicy
from edgecv.events.store import EventStore, EventStoreError


def people(count: int) -> Detections:
    boxes = np.array([[10.0 * i, 0.0, 10.0 * i + 8, 20.0] for i in range(count)], dtype=np.float32)
    return Detections(
        boxes.reshape(-1, 4), np.full(count, 0.9), np.zeros(count, dtype=np.int64), names=("person", "car")
    )


class ListSink:
    name = "memory://test"

    def __init__(self) -> None:
        self.received: list[Event] = []
        self.closed = False
        self.lock = threading.Lock()

    def send(self, events: Sequence[Event]) -> None:
        with self.lock:
            self.received.extend(events)

    def close(self) -> None:
        self.closed = True


def test_events_are_committed_in_batches_and_on_close(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with EventPipeline(path, model="yolov8n", source="cam0", batch=5, flush_s=3600) as pipeline:
        assert pipeline.add(people(3), frame=0, time=1.0) == []  # neither full nor due
        assert pipeline.add(None, frame=1, time=1.1) == []  # a skipped frame adds nothing
        batch = pipeline.add(people(3), frame=2, time=1.2)
        assert [e.frame for e in batch] == [0, 0, 0, 2, 2, 2]  # the batch filled: committed now
        assert pipeline.add(people(2), frame=3, time=1.3) == []
    assert pipeline.written == 8  # close() committed the last two before closing the log
    with pytest.raises(EventStoreError, match="closed"):
        pipeline.store.stats()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT source, frame FROM events ORDER BY seq").fetchall()
    assert rows == [("cam0", 0)] * 3 + [("cam0", 2)] * 3 + [("cam0", 3)] * 2


def test_a_callers_store_and_sink_stay_open(tmp_path: Path) -> None:
    sink = ListSink()
    with EventStore(tmp_path / "events.db") as store:
        pipeline = EventPipeline(store, model="m", source="cam0", sink=sink, flush_s=0.01)
        pipeline.start()
        pipeline.add(people(2), frame=0, time=1.0)
        pipeline.close()
        pipeline.close()  # twice: nothing more happens
        assert store.stats().pending == 0  # still open; the syncer delivered everything
    assert not sink.closed and len(sink.received) == 2
    with pytest.raises(RuntimeError, match="closed"):
        pipeline.start()


def test_the_policy_decides_which_detections_become_events(tmp_path: Path) -> None:
    policy = EventPolicy(classes=frozenset({"car"}))
    with EventPipeline(tmp_path / "events.db", model="m", source="cam0", policy=policy, batch=1) as pipeline:
        assert pipeline.add(people(4), frame=0, time=1.0) == []
    assert pipeline.written == 0


def test_a_log_it_opened_is_closed_when_building_the_pipeline_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Event batching needs flush_s > 0"):
        EventPipeline(tmp_path / "events.db", model="m", source="cam0", flush_s=0)
    assert not (tmp_path / "events.db").exists()  # checked before anything was opened
    pipeline = EventPipeline(tmp_path / "events.db", model="m", source="cam0")
    pipeline.close()
    # The log was created, then closed: the last connection to close removes the -wal file.
    assert (tmp_path / "events.db").is_file() and not (tmp_path / "events.db-wal").exists()
