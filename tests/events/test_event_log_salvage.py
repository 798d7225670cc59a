"""A damaged event log is salvaged at open: its readable events move to a fresh log, the damaged file stays.

Before, one corrupt page made ``pending()`` fail for ever (the syncer stalled) and the only hint, to move
the log away, abandoned every unsynced event. Files that are not an edgecv log at all still fail
cleanly and are left as they were (see test_event_store.py).
"""

from __future__ import annotations

import logging
import random
import re
import sqlite3
from pathlib import Path

import pytest

from edgecv.events.model import Event
from edgecv.events.store import EventStore, EventStoreError

COUNT = 2000


def labelled(count: int) -> list[Event]:
    """Events whose labels (``L00042``) say which one they are, to find their page in the file."""
    return [
        Event(
            id=f"e{i:05d}", time=1.0 + i, kind="detection", model="m", source="cam0", frame=i,
            label=f"L{i:05d}", class_id=0, score=0.5, box=(0, 0, 1, 1),
        )
        for i in range(count)
    ]  # fmt: skip


def write_log(path: Path, *, dropped: int = 0) -> list[Event]:
    events = labelled(COUNT)
    with EventStore(path, max_rows=None) as store:
        store.add(events)
        assert store._conn is not None
        store._conn.execute("UPDATE meta SET value = ? WHERE key = 'dropped'", (dropped,))
    assert not Path(f"{path}-wal").exists()  # closing checkpointed everything into the file
    return events


def damage_page_holding(path: Path, marker: bytes) -> set[int]:
    """Overwrite, with random bytes, the page that holds ``marker``; the event numbers it held."""
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    page = data.index(marker) // page_size
    assert page > 0, "the header page holds it: pick another marker"
    start = page * page_size
    held = {int(number) for number in re.findall(rb"L(\d{5})", data[start : start + page_size])}
    with path.open("r+b") as file:
        file.seek(start)
        file.write(random.Random(page).randbytes(page_size))
    return held


def damaged_copies(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.damaged-*"))


def test_one_damaged_page_loses_only_its_events(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.db"
    events = write_log(path, dropped=7)
    lost = damage_page_holding(path, b"L01000")
    assert 0 < len(lost) < 100 and 1000 in lost
    damaged = path.read_bytes()

    with caplog.at_level(logging.WARNING, logger="edgecv.events.store"), EventStore(path) as store:
        salvaged = store.pending(COUNT)
        assert store.stats().dropped == 7  # the log's history is kept
        assert store.acknowledge([e.id for e in salvaged[:10]]) == 10  # a working log: sync goes on
    assert salvaged == [e for e in events if e.frame not in lost]  # every other event, in order

    (copy,) = damaged_copies(path)
    assert copy.read_bytes() == damaged  # kept as it was, for a closer look
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"The event log {path} was damaged (")
    assert f"salvaged {COUNT - len(lost)} " in message and f"kept as {copy}" in message
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_damaged_index_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    events = write_log(path)
    data = path.read_bytes()
    # The unique index on id holds ids but no labels: damage a page with an id and no label.
    page_size = int.from_bytes(data[16:18], "big")
    pages = [data[i : i + page_size] for i in range(0, len(data), page_size)]
    index_page = next(n for n, page in enumerate(pages) if n and b"e01000" in page and b"L0" not in page)
    with path.open("r+b") as file:
        file.seek(index_page * page_size)
        file.write(bytes(page_size))
    with EventStore(path) as store:
        assert store.pending(COUNT) == events
    assert len(damaged_copies(path)) == 1


def test_the_events_in_the_wal_are_salvaged_too(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    events = write_log(path)
    lost = damage_page_holding(path, b"L00500")
    newer = labelled(COUNT + 20)[COUNT:]
    # Another connection keeps the log open, so the newest transaction stays in the -wal file.
    with sqlite3.connect(path) as holder:
        holder.execute("SELECT count(*) FROM meta").fetchone()
        raw = sqlite3.connect(path, isolation_level=None)
        raw.executemany(
            "INSERT INTO events (id, time, kind, model, source, frame, label, class_id, score,"
            " x1, y1, x2, y2) VALUES (?, 1.0, 'detection', 'm', 'cam0', ?, ?, 0, 0.5, 0, 0, 1, 1)",
            [(e.id, e.frame, e.label) for e in newer],
        )
        raw.close()
        assert Path(f"{path}-wal").stat().st_size > 0
        with EventStore(path) as store:
            ids = [e.id for e in store.pending(2 * COUNT)]
    assert ids == [e.id for e in events + newer if e.frame not in lost]


def test_header_garbage_is_not_salvaged(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    write_log(path)
    with path.open("r+b") as file:
        file.write(b"garbage, not the SQLite header" * 3)
    content = path.read_bytes()
    with pytest.raises(EventStoreError, match="is not an edgecv event log"):
        EventStore(path)
    assert path.read_bytes() == content and damaged_copies(path) == []
