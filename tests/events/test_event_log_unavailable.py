"""A locked event log or a full disk delays events; it neither loses them nor stops the video.

Before, ``EventPipeline`` swapped its batch out before ``store.add()``, so a lock held by another
process (5 s busy timeout, then an error) or a full disk lost the batch and the error ended the run.
Now the batch waits in memory (bounded), ``add()`` stays quick and tries again after a backoff, one
warning says what is happening, and ``flush()`` at shutdown retries for a bounded time, then says how
many events could not be stored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from event_testing import make_events

from edgecv.detections import Detections
from edgecv.events.pipeline import RETRY_MAX_S, WRITE_WAIT_S, EventPipeline
from edgecv.events.store import EventStore, EventStoreFull, EventStoreLocked

HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
"""


@contextlib.contextmanager
def locked_by_another_process(path: Path) -> Iterator[None]:
    """Another process holds the log's write lock (BEGIN IMMEDIATE) until the block ends."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "locked"
            yield
        finally:
            holder.stdin.close()  # it reads end-of-file and exits: the lock is released
            holder.wait(timeout=30)


def people(count: int) -> Detections:
    boxes = np.array([[10.0 * i, 0.0, 10.0 * i + 8, 20.0] for i in range(count)], dtype=np.float32)
    return Detections(boxes, np.full(count, 0.9), np.zeros(count, dtype=np.int64), names=("person",))


def stored_frames(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:  # readers are not blocked by the lock
        return [row[0] for row in conn.execute("SELECT frame FROM events ORDER BY seq")]


def add_frames(pipeline: EventPipeline, frames: range, *, per_frame: int = 2) -> float:
    """Add ``per_frame`` events for each frame, a video's pace apart; the longest ``add()`` took."""
    slowest = 0.0
    for frame in frames:
        started = time.monotonic()
        pipeline.add(people(per_frame), frame=frame, time=1_700_000_000.0 + frame)
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.02)
    return slowest


def test_a_lock_held_by_another_process_delays_events_and_loses_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.db"
    caplog.set_level(logging.INFO, logger="edgecv.events.pipeline")
    with EventPipeline(path, model="m", source="cam0", batch=4, flush_s=0.01) as pipeline:
        add_frames(pipeline, range(0, 5))
        with locked_by_another_process(path):
            slowest = add_frames(pipeline, range(5, 45))  # about 1.5 s of video while locked
            assert stored_frames(path) == [f for f in range(5) for _ in range(2)]
            assert pipeline.unstored == 80
        assert slowest < 2 * WRITE_WAIT_S + 0.3, slowest  # the frame loop never waited long
        frame, deadline = 45, time.monotonic() + RETRY_MAX_S + 2
        while pipeline.unstored and time.monotonic() < deadline:  # add() tries again by itself
            add_frames(pipeline, range(frame, frame + 1))
            frame += 1
        assert pipeline.unstored == 0
    assert stored_frames(path) == [f for f in range(frame) for _ in range(2)]  # every event, in order
    assert pipeline.written == 2 * frame and pipeline.dropped == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert re.fullmatch(
        rf"The event log {re.escape(str(path))} is locked by another process \(database is locked\); "
        r"keeping \d+ events in memory and retrying",
        warning,
    )
    assert any("written again" in r.getMessage() for r in caplog.records)


def test_a_full_disk_keeps_events_in_memory_until_there_is_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with EventStore(tmp_path / "events.db", max_rows=None) as store:
        conn = store._conn
        assert conn is not None
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL: as a full disk
        pipeline = EventPipeline(store, model="m", source="cam0", batch=8, flush_s=0.01)
        with caplog.at_level(logging.WARNING, logger="edgecv.events.pipeline"):
            slowest = add_frames(pipeline, range(40), per_frame=5)
            waiting = pipeline.unstored
            assert waiting > 100 and store.stats().pending + waiting == 200  # what fitted, and the rest
            assert pipeline.stats().pending == 200  # what the runtime reports counts them
            conn.execute("PRAGMA max_page_count = 1000000")  # room again
            assert len(pipeline.flush()) == waiting
        pipeline.close()
        assert [e.frame for e in store.pending(1000)] == [f for f in range(40) for _ in range(5)]
    assert slowest < 0.2, slowest
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"The event log {store.path} cannot grow: its disk is full (")
    assert warning.endswith(" events in memory and retrying")


def test_flush_retries_for_a_while_then_says_how_many_events_were_not_stored(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    pipeline = EventPipeline(path, model="m", source="cam0", batch=1000, flush_s=3600)
    add_frames(pipeline, range(3))
    with locked_by_another_process(path):
        started = time.monotonic()
        with pytest.raises(EventStoreLocked) as caught:
            pipeline.flush(retry_s=0.6)
        assert 0.5 < time.monotonic() - started < 1.5
        assert str(caught.value) == (
            f"6 events could not be stored: The event log {path} is locked by another process "
            "(database is locked). Stop the other process that writes to it, or choose another path "
            "with --events."
        )
        started = time.monotonic()
        with pytest.raises(EventStoreLocked):  # close()'s flush after the runtime's: no second wait
            pipeline.flush(retry_s=0.6)
        assert time.monotonic() - started < 0.3
    assert len(pipeline.flush()) == 6  # kept in memory, stored once the lock is gone
    pipeline.close()
    assert stored_frames(path) == [0, 0, 1, 1, 2, 2]


def test_events_beyond_the_memory_bound_are_dropped_oldest_first_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.db"
    pipeline = EventPipeline(path, model="m", source="cam0", batch=2, flush_s=0.01, max_memory_events=10)
    with caplog.at_level(logging.WARNING, logger="edgecv.events.pipeline"):
        with locked_by_another_process(path):
            add_frames(pipeline, range(20))
            assert pipeline.unstored == 10 and pipeline.dropped == 30
        pipeline.close()
    assert stored_frames(path) == [f for f in range(15, 20) for _ in range(2)]  # the newest
    assert f"Event log {path} still cannot be written: dropping the oldest events beyond 10 in memory" in [
        r.getMessage() for r in caplog.records
    ]
    assert "(30 older ones were dropped)" in caplog.records[-1].getMessage()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a disk that really fills up (needs root; skipped elsewhere)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_disk_loses_no_event(tiny_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tiny_disk / "events.db"
    filler = tiny_disk / "filler"
    with EventPipeline(path, model="m", source="cam0", batch=20, flush_s=0.01) as pipeline:
        add_frames(pipeline, range(2), per_frame=10)
        with contextlib.suppress(OSError), filler.open("wb") as file:  # fill the disk to the last block
            while True:
                file.write(b"\0" * 4096)
                file.flush()
        with caplog.at_level(logging.WARNING, logger="edgecv.events.pipeline"):
            add_frames(pipeline, range(2, 60), per_frame=10)
        assert pipeline.unstored > 0
        filler.unlink()
        stored = pipeline.flush()
        assert stored and pipeline.unstored == 0
    assert stored_frames(path) == [f for f in range(60) for _ in range(10)]
    assert any("its disk is full" in r.getMessage() for r in caplog.records)


def test_the_store_names_the_cause_of_a_passing_failure(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with EventStore(path) as store:
        with locked_by_another_process(path):
            started = time.monotonic()
            with pytest.raises(EventStoreLocked) as locked:
                store.add(make_events(1), wait_s=0.1)
            assert time.monotonic() - started < 1  # wait_s bounds the wait, not the 5 s busy timeout
        assert store._conn is not None
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(EventStoreFull) as full:
            store.add(make_events(200))
        assert store.stats().pending == 0
    assert "Choose a writable path" not in str(locked.value)
    assert "Choose a writable path" not in str(full.value) and "--event-max-mb" in str(full.value)
