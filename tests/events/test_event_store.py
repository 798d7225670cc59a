"""EventStore: the local SQLite event log — order, idempotency, retention, concurrency, errors."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from edgecv.errors import ConfigError
from edgecv.events.model import Event
from edgecv.events.store import APPLICATION_ID, SCHEMA_VERSION, EventStore, EventStoreError, StoreStats


def make_event(name: str, track_id: int | None = 3) -> Event:
    return Event(
        id=name,
        time=1700000000.25,
        kind="detection",
        model="yolov8n",
        source="cam0",
        frame=42,
        label="person",
        class_id=0,
        score=0.875,
        box=(1.5, 2.0, 30.25, 40.0),
        track_id=track_id,
    )


def batch(prefix: str, count: int) -> list[Event]:
    return [make_event(f"{prefix}-{i:04d}") for i in range(count)]


def ids(events: list[Event]) -> list[str]:
    return [event.id for event in events]


def used_bytes(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        pages, free, size = (
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_count", "freelist_count", "page_size")
        )
    return int((pages - free) * size)


# ---------------------------------------------------------------- the Event model


def test_event_round_trips_through_json() -> None:
    for event in (make_event("a"), make_event("b", track_id=None)):
        data = json.loads(json.dumps(event.to_dict()))
        assert data["box"] == [1.5, 2.0, 30.25, 40.0]
        assert Event.from_dict(data) == event
    assert list(make_event("a").to_dict()) == [
        "id", "time", "kind", "model", "source", "frame", "label", "class_id", "score", "box", "track_id",
    ]  # fmt: skip


def test_event_new_fills_a_unique_id() -> None:
    fields = make_event("x").to_dict()
    del fields["id"]
    first, second = Event.new(**fields), Event.new(**fields)
    assert first.id != second.id and re.fullmatch(r"[0-9a-f]{32}", first.id)
    assert first.to_dict() | {"id": "x"} == make_event("x").to_dict()


def test_event_from_dict_rejects_bad_data() -> None:
    data = make_event("a").to_dict()
    with pytest.raises(ValueError, match="event is missing 'label', 'score'"):
        Event.from_dict({k: v for k, v in data.items() if k not in ("label", "score")})
    with pytest.raises(ValueError, match="event 'a' has an unusable field"):
        Event.from_dict(data | {"kind": "sneeze"})
    with pytest.raises(ValueError, match="event 'a' has an unusable field"):
        Event.from_dict(data | {"box": [1, 2, 3]})
    assert Event.from_dict({k: v for k, v in data.items() if k != "track_id"}).track_id is None


# ---------------------------------------------------------------- queue semantics


def test_pending_is_oldest_first_and_acknowledge_deletes(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.db") as store:
        store.add(batch("b", 3))
        store.add(batch("a", 2))  # added later: later in the queue whatever the id says
        store.add([])
        assert ids(store.pending(4)) == ["b-0000", "b-0001", "b-0002", "a-0000"]
        assert store.pending(10) == batch("b", 3) + batch("a", 2)  # every field survives the round trip
        assert store.pending(0) == []
        assert store.acknowledge(["b-0001", "a-0000", "b-0001", "unknown"]) == 2
        assert ids(store.pending(10)) == ["b-0000", "b-0002", "a-0001"]
        assert store.acknowledge([]) == 0
        assert store.stats() == StoreStats(pending=3, dropped=0, size_bytes=store.stats().size_bytes)
        assert store.stats().size_bytes > 0


def test_adding_an_event_again_is_a_no_op(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.db") as store:
        store.add(batch("e", 3))
        store.add([make_event("new"), *batch("e", 3)])
        assert ids(store.pending(10)) == ["e-0000", "e-0001", "e-0002", "new"]
        store.acknowledge(["e-0000"])
        store.add(batch("e", 1))  # once acknowledged, the id is a new event to the log (a sink de-duplicates)
        assert ids(store.pending(10)) == ["e-0001", "e-0002", "new", "e-0000"]


def test_acknowledge_handles_more_ids_than_one_statement_binds(tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.db") as store:
        store.add(batch("e", 1200))
        assert store.acknowledge(ids(store.pending(1100))) == 1100
        assert ids(store.pending(1000)) == [f"e-{i:04d}" for i in range(1100, 1200)]


def test_log_is_in_wal_mode_and_marked_as_ours(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "events.db"  # missing folders are created
    with EventStore(path) as store, sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store._conn is not None
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    with EventStore(path, synchronous="normal") as store:
        assert store._conn is not None
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_closed_store_says_so(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    store.close()
    store.close()
    with pytest.raises(
        EventStoreError, match=r"The event log .*events.db is closed\. Open a new EventStore to add"
    ):
        store.add(batch("e", 1))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_rows": 0}, "The event log's row limit must be at least 1, got 0. Pass e.g. 100000."),
        ({"max_mb": 0.01}, "The event log's size limit must be at least 0.1 MB, got 0.01. Pass e.g. 100."),
        ({"synchronous": "OFF"}, "Unknown SQLite synchronous mode 'OFF'. Use one of FULL, NORMAL, EXTRA."),
    ],
)
def test_bad_options(tmp_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        EventStore(tmp_path / "events.db", **options)  # type: ignore[arg-type]
    assert str(error.value) == message
    assert not (tmp_path / "events.db").exists()


# ---------------------------------------------------------------- retention


def test_retention_by_rows_drops_the_oldest_and_persists_the_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.db"
    with (
        caplog.at_level(logging.WARNING, logger="edgecv.events.store"),
        EventStore(path, max_rows=10) as store,
    ):
        for index in range(5):
            store.add(batch(f"b{index}", 5))
        assert ids(store.pending(100)) == ids(batch("b3", 5) + batch("b4", 5))
        assert store.stats().pending == 10 and store.stats().dropped == 15
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # rate-limited: the first drop is reported, not every add
    assert warnings[0].startswith(
        f"Event log {path} is full: dropped the 5 oldest unsent events (limits: 10 rows"
    )

    with EventStore(path, max_rows=10) as store:
        assert store.stats().dropped == 15
        store.add(batch("b5", 12))  # a batch larger than the limit keeps its newest 10
        assert ids(store.pending(100)) == ids(batch("b5", 12))[2:]
        assert store.stats().dropped == 27
    with EventStore(path, max_rows=None) as store:
        store.add(batch("b6", 30))
        assert store.stats() == StoreStats(pending=40, dropped=27, size_bytes=store.stats().size_bytes)


def test_retention_by_size_keeps_the_database_under_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    limit = int(0.1 * 1024 * 1024)
    written: list[str] = []
    with EventStore(path, max_rows=None, max_mb=0.1) as store:
        for index in range(60):
            events = batch(f"b{index:02d}", 50)
            store.add(events)
            written += ids(events)
            assert used_bytes(path) <= limit
        stats = store.stats()
        kept = ids(store.pending(len(written)))
    assert stats.dropped > 0 and stats.pending > 100
    assert stats.pending + stats.dropped == len(written)
    assert kept == written[stats.dropped :]  # exactly the oldest were dropped
    assert stats.size_bytes < 3 * limit  # the file, and the -wal beside it, stay near the limit too
    with EventStore(path, max_rows=None, max_mb=0.1) as store:
        assert store.stats().dropped == stats.dropped


# ---------------------------------------------------------------- concurrency


@pytest.mark.parametrize("layout", ["one store, two threads", "two stores on one file"])
def test_writer_and_acknowledger_threads_lose_and_repeat_nothing(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "events.db"
    writer_store = EventStore(path, max_rows=None)
    reader_store = writer_store if layout.startswith("one") else EventStore(path)
    written: list[str] = []
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def write() -> None:
        rng = random.Random(7)
        deadline = time.monotonic() + 1.0
        try:
            number = 0
            while time.monotonic() < deadline:
                events = batch(f"w{number:05d}", rng.randint(1, 20))
                writer_store.add(events)
                written.extend(ids(events))
                number += 1
        except BaseException as error:
            failures.append(error)
        finally:
            writing.clear()

    def acknowledge() -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                still_writing = writing.is_set()  # read before pending(): a drained log then means done
                events = reader_store.pending(37)
                if not events:
                    if not still_writing:
                        return
                    time.sleep(0.001)
                    continue
                assert reader_store.acknowledge(ids(events)) == len(events)
                acknowledged.extend(ids(events))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=write), threading.Thread(target=acknowledge)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    writer_store.close()
    reader_store.close()
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)
    assert len(written) > 20
    assert acknowledged == written  # every event, once, in the order written
    with EventStore(path) as store:
        assert store.stats().pending == 0


def test_a_second_store_on_the_same_file_sees_the_same_log(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with EventStore(path) as runtime, EventStore(path) as syncer:
        runtime.add(batch("e", 4))
        assert ids(syncer.pending(2)) == ["e-0000", "e-0001"]
        assert syncer.acknowledge(["e-0000", "e-0001"]) == 2
        assert ids(runtime.pending(10)) == ["e-0002", "e-0003"]
        syncer.add(batch("s", 1))
        assert runtime.stats().pending == 3


# ---------------------------------------------------------------- errors

WRITE_HINT = "Choose a writable path with --events."
NOT_OURS_HINT = "Move it away or choose another path with --events."


def test_a_directory_is_not_a_log(tmp_path: Path) -> None:
    with pytest.raises(EventStoreError) as error:
        EventStore(tmp_path)
    hint = f"Pass a file path with --events, e.g. {tmp_path}/events.db."
    assert str(error.value) == f"The event log path {tmp_path} is a directory. {hint}"


def test_a_path_below_a_file_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    path = tmp_path / "notes.txt" / "events.db"
    with pytest.raises(EventStoreError) as error:
        EventStore(path)
    assert str(error.value) == f"Cannot write the event log {path}: Not a directory. {WRITE_HINT}"


def test_a_read_only_location_cannot_be_written() -> None:
    # sysfs refuses new files even to root (tests may run as root, which ignores permission bits).
    path = Path("/sys/edgecv-events-test.db")
    with pytest.raises(EventStoreError) as error:
        EventStore(path)
    reason = "(Permission denied|Read-only file system)"
    pattern = rf"Cannot write the event log {path}: {reason}\. {re.escape(WRITE_HINT)}"
    assert re.fullmatch(pattern, str(error.value))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_file_and_folder_cannot_be_written(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    EventStore(path).close()
    path.chmod(0o444)
    with pytest.raises(EventStoreError) as error:
        EventStore(path)
    assert str(error.value) == f"Cannot write the event log {path}: Permission denied. {WRITE_HINT}"
    path.chmod(0o644)
    tmp_path.chmod(0o555)  # the log is writable, its folder (where the -wal file goes) is not
    try:
        with pytest.raises(EventStoreError) as error:
            EventStore(path)
        assert str(error.value) == (
            f"Cannot write the event log {path}: its folder {tmp_path} is not writable "
            f"(SQLite creates files beside it). {WRITE_HINT}"
        )
        with pytest.raises(EventStoreError, match="Permission denied"):
            EventStore(tmp_path / "new.db")
    finally:
        tmp_path.chmod(0o755)


def test_a_file_that_is_not_sqlite_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    content = b"this is a text file, not a database\n" * 20
    path.write_bytes(content)
    with pytest.raises(EventStoreError) as error:
        EventStore(path)
    assert str(error.value) == f"{path} is not an edgecv event log (file is not a database). {NOT_OURS_HINT}"
    assert path.read_bytes() == content


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("CREATE TABLE invoices (id INTEGER)", "it is a SQLite database of another application"),
        ("PRAGMA application_id = 1", "it is a SQLite database with application id 0x1"),
    ],
)
def test_another_applications_database_is_left_alone(tmp_path: Path, setup: str, reason: str) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute(setup)
    conn.close()
    content = path.read_bytes()
    with pytest.raises(EventStoreError) as error:
        EventStore(path)
    assert str(error.value) == f"{path} is not an edgecv event log ({reason}). {NOT_OURS_HINT}"
    assert path.read_bytes() == content  # not even switched to WAL mode


def test_a_log_from_a_newer_edgecv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    EventStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(EventStoreError) as error:
        EventStore(path)
    assert str(error.value) == (
        f"The event log {path} has schema version {SCHEMA_VERSION + 1}, newer than this edgecv reads "
        f"({SCHEMA_VERSION}). Upgrade edgecv, or move the log away or choose another path with --events."
    )


def test_a_log_damaged_past_its_header_is_set_aside_for_a_fresh_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Still an edgecv log (its header says so), but nothing is readable: none salvaged, none lost."""
    path = tmp_path / "events.db"
    with EventStore(path, max_rows=None) as store:
        store.add(batch("e", 2000))
    assert not Path(f"{path}-wal").exists()  # closing checkpointed everything into the file
    with path.open("r+b") as file:  # keep the header page, scramble the rest
        file.seek(4096)
        file.write(random.Random(0).randbytes(path.stat().st_size - 4096))
    damaged = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="edgecv.events.store"), EventStore(path) as store:
        assert store.stats().pending == 0
        store.add(batch("new", 2))  # a working log
    (copy,) = tmp_path.glob("events.db.damaged-*")
    assert copy.read_bytes() == damaged
    (message,) = [r.getMessage() for r in caplog.records]
    assert re.fullmatch(
        rf"The event log {re.escape(str(path))} was damaged \(.+\): salvaged 0 events into a fresh log; "
        rf"the damaged file is kept as {re.escape(str(copy))}",
        message,
    )
