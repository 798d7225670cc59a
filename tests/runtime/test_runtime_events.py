"""The runtime with an event log and a sink: events chosen from tracked detections, committed,
reported through ``edgecv_on_events``, shipped by the syncer, and deleted once acknowledged."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import edgecv
from edgecv.events.model import Event
from edgecv.events.policy import EventPolicy
from edgecv.events.sinks import SyncError
from edgecv.events.store import EventStore
from edgecv.runtime.loop import RunConfig, Runtime


class CollectingSink:
    """A receiver in memory that refuses its first ``refuse`` batches (as an offline server would)."""

    name = "memory://test"

    def __init__(self, refuse: int) -> None:
        self.refuse = refuse
        self.received: dict[str, Event] = {}
        self.lock = threading.Lock()
        self.closed = False

    def send(self, events: Sequence[Event]) -> None:
        with self.lock:
            if self.refuse > 0:
                self.refuse -= 1
                raise SyncError("receiver offline")
            self.received.update({e.id: e for e in events})

    def close(self) -> None:
        self.closed = True


class EventRecorder:
    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    @edgecv.hookimpl
    def edgecv_on_events(self, events: Sequence[Event]) -> None:
        self.batches.append(list(events))


def test_new_tracks_are_logged_reported_and_synced(models: Path, assets: Path, tmp_path: Path) -> None:
    model = edgecv.load(str(models / "yolov8n_fp32_dequant.onnx"))
    sink = CollectingSink(refuse=2)
    recorder = EventRecorder()
    with EventStore(tmp_path / "events.db") as store:
        runtime = Runtime(
            model,
            str(assets / "videos" / "pedestrians_vtest_30s.mp4"),
            RunConfig(max_frames=30, skip=2, track=True, event_flush_s=0.1),
            events=store,
            event_policy=EventPolicy(classes=frozenset({"person"}), new_tracks_only=True),
            sink=sink,
            thermal=False,
            plugins=[recorder],
        )
        results: list[Any] = list(runtime.results())
        stats = runtime.stats
        remaining = store.stats().pending  # the caller's store stays open after the run
    assert not sink.closed  # and so does the caller's sink
    written = [e for batch in recorder.batches for e in batch]
    track_ids = {d.track_id for r in results if r.inferred for d in r.detections if d.label == "person"}
    assert {e.track_id for e in written} == track_ids  # one event per person track, no more
    assert len(written) == len(track_ids) == stats.events_written >= 4
    assert all(e.kind == "new_track" and e.label == "person" for e in written)
    # Two refused batches were retried; everything reached the receiver and left the log.
    assert set(sink.received) == {e.id for e in written}
    assert remaining == 0 and stats.sync_failures == 2 and stats.synced == len(written)
