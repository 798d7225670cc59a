"""EventStore: a crash-safe local log of events waiting to be sent (SQLite in WAL mode).

The runtime loop calls ``add()``; a syncer (a thread holding the same ``EventStore``, or another
process with its own) reads ``pending()`` and deletes what its sink accepted with ``acknowledge()``.
``add()`` returns after COMMIT, so an acknowledged write survives a process crash at any later moment
(and, with ``synchronous="FULL"``, a power loss). When the sink is away for long, retention drops the
oldest unsent events first and counts them in a persisted ``dropped`` counter.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from edgecv.errors import ConfigError, EdgecvError
from edgecv.events.model import Event

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
APPLICATION_ID = 0x65646376  # b"edcv": marks the file as an edgecv event log (PRAGMA application_id)
BUSY_TIMEOUT_MS = 5000  # how long a writer waits for another connection's transaction
WAL_SIZE_LIMIT = 4 * 1024 * 1024  # the -wal file is truncated back to this after a checkpoint
SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")
MIN_MB = 0.1  # below this the empty schema alone would crowd out every event
WARN_EVERY_S = 60.0  # retention warnings are rate-limited: a full log drops on every add()
_CHUNK = 500  # ids per DELETE statement (SQLite builds may cap bound variables at 999)

_COLUMNS = "id, time, kind, model, source, frame, label, class_id, score, x1, y1, x2, y2, track_id"
_CREATE = (
    """CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        time REAL NOT NULL,
        kind TEXT NOT NULL,
        model TEXT NOT NULL,
        source TEXT NOT NULL,
        frame INTEGER NOT NULL,
        label TEXT NOT NULL,
        class_id INTEGER NOT NULL,
        score REAL NOT NULL,
        x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
        track_id INTEGER
    )""",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT INTO meta (key, value) VALUES ('dropped', 0)",
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


class EventStoreError(EdgecvError):
    """The event log cannot be opened, read or written."""


@attrs.frozen
class StoreStats:
    pending: int
    """Events logged and not yet acknowledged by a sink."""
    dropped: int
    """Unsent events deleted by retention over the log's lifetime (persisted)."""
    size_bytes: int
    """The log's size on disk: the database file plus its -wal file."""


def _cannot_write(path: Path, reason: str) -> EventStoreError:
    return EventStoreError(
        f"Cannot write the event log {path}: {reason}", "Choose a writable path with --events."
    )


def _not_event_log(path: Path, reason: str) -> EventStoreError:
    return EventStoreError(
        f"{path} is not an edgecv event log ({reason})", "Move it away or choose another path with --events."
    )


def _is_damage(error: sqlite3.Error) -> bool:
    """True when SQLite says the file is not a database or is corrupt (rather than unwritable)."""
    code = getattr(error, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(error)
    return "not a database" in text or "malformed" in text


def _sqlite_error(path: Path, error: sqlite3.Error) -> EventStoreError:
    return _not_event_log(path, str(error)) if _is_damage(error) else _cannot_write(path, str(error))


def _check_writable(path: Path) -> None:
    """Fail early with the OS's reason: SQLite itself only says 'unable to open database file'."""
    if path.is_dir():
        raise EventStoreError(
            f"The event log path {path} is a directory",
            f"Pass a file path with --events, e.g. {path / 'events.db'}.",
        )
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o644))
    except OSError as error:
        raise _cannot_write(path, error.strerror or str(error)) from error
    if not os.access(path.parent, os.W_OK):
        # WAL mode creates <log>-wal and <log>-shm beside the log.
        raise _cannot_write(
            path, f"its folder {path.parent} is not writable (SQLite creates files beside it)"
        )


def _check_ours(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version; fails on a foreign database. Reads only: a foreign file stays untouched."""
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if application_id == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise _not_event_log(path, "it is a SQLite database of another application")
        return 0
    if application_id != APPLICATION_ID:
        raise _not_event_log(path, f"it is a SQLite database with application id {application_id:#x}")
    if version > SCHEMA_VERSION:
        raise EventStoreError(
            f"The event log {path} has schema version {version}, "
            f"newer than this edgecv reads ({SCHEMA_VERSION})",
            "Upgrade edgecv, or move the log away or choose another path with --events.",
        )
    return int(version)


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    _check_writable(path)
    # isolation_level=None: no implicit transactions; add()/acknowledge() issue BEGIN IMMEDIATE themselves.
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as error:
        raise _sqlite_error(path, error) from error
    try:
        _check_ours(conn, path)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise _cannot_write(path, f"SQLite could not switch it to WAL mode (it stayed in {mode!r} mode)")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Checked again under the write lock: another process may have created the schema meanwhile.
            if _check_ours(conn, path) == 0:
                for statement in _CREATE:
                    conn.execute(statement)
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
    except sqlite3.Error as error:
        conn.close()
        raise _sqlite_error(path, error) from error
    except BaseException:
        conn.close()
        raise
    return conn


def _row(event: Event) -> tuple[Any, ...]:
    x1, y1, x2, y2 = event.box
    return (
        event.id, event.time, event.kind, event.model, event.source, event.frame, event.label,
        event.class_id, event.score, x1, y1, x2, y2, event.track_id,
    )  # fmt: skip


def _event(row: Sequence[Any]) -> Event:
    id_, time_, kind, model, source, frame, label, class_id, score, x1, y1, x2, y2, track_id = row
    return Event(
        id=id_, time=time_, kind=kind, model=model, source=source, frame=frame, label=label,
        class_id=class_id, score=score, box=(x1, y1, x2, y2), track_id=track_id,
    )  # fmt: skip


class EventStore:
    """A durable queue of events in one SQLite file; safe to share between threads and processes.

    ``max_rows`` and ``max_mb`` bound the unsent backlog (``None``: no bound). ``max_mb`` bounds the
    database's used pages; the -wal file beside it adds up to max_mb/8 (at most ~4 MB) between checkpoints.
    ``synchronous="FULL"`` (default) makes each ``add()`` durable across power loss; ``"NORMAL"`` only
    across a crash of this process, for fewer fsyncs (flash wear, latency).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_rows: int | None = 100_000,
        max_mb: float | None = None,
        synchronous: str = "FULL",
    ) -> None:
        if max_rows is not None and max_rows < 1:
            raise ConfigError(
                f"The event log's row limit must be at least 1, got {max_rows}", "Pass e.g. 100000."
            )
        if max_mb is not None and not max_mb >= MIN_MB:
            raise ConfigError(
                f"The event log's size limit must be at least {MIN_MB} MB, got {max_mb}", "Pass e.g. 100."
            )
        if synchronous.upper() not in SYNCHRONOUS:
            raise ConfigError(
                f"Unknown SQLite synchronous mode {synchronous!r}", f"Use one of {', '.join(SYNCHRONOUS)}."
            )
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_mb = max_mb
        self._max_bytes = None if max_mb is None else int(max_mb * 1024 * 1024)
        self._lock = threading.RLock()  # one connection; the lock keeps threads' transactions apart
        self._conn: sqlite3.Connection | None = _connect(self.path, synchronous.upper())
        if self._max_bytes is not None:
            self._limit_wal(self._max_bytes)
        self._unreported_drops = 0
        self._last_warning = -math.inf

    def __repr__(self) -> str:
        return f"EventStore({str(self.path)!r})"

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the last one to close checkpoints the WAL). Calling it again does nothing."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _limit_wal(self, max_bytes: int) -> None:
        """Checkpoint sooner under a small size limit, so the -wal file stays near 1/8 of it."""
        with self._connection("open it") as conn:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            pages = min(max(max_bytes // page_size // 8, 16), 1000)  # 1000: SQLite's default
            conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
            conn.execute(f"PRAGMA journal_size_limit = {min(pages * page_size, WAL_SIZE_LIMIT)}")

    @contextmanager
    def _connection(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise EventStoreError(
                    f"The event log {self.path} is closed", f"Open a new EventStore to {doing}."
                )
            try:
                yield self._conn
            except sqlite3.Error as error:
                raise _sqlite_error(self.path, error) from error

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT: takes the write lock up front (waiting up to the busy timeout), so
        a transaction never fails half-way on a lock upgrade; anything raised rolls it back."""
        with self._connection(doing) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    def add(self, events: Sequence[Event]) -> None:
        """Log ``events`` in one transaction; on return they are committed. Re-adding an id is a no-op.

        Retention runs in the same transaction, so the log never holds more than its limits.
        """
        if not events:
            return
        rows = [_row(event) for event in events]
        with self._transaction("add events") as conn:
            conn.executemany(
                f"INSERT OR IGNORE INTO events ({_COLUMNS}) VALUES ({', '.join('?' * 14)})", rows
            )
            dropped = self._enforce_retention(conn)
        if dropped:
            self._warn_dropped(dropped)

    def _enforce_retention(self, conn: sqlite3.Connection) -> int:
        dropped = 0
        if self.max_rows is not None:
            low, high = conn.execute("SELECT min(seq), max(seq) FROM events").fetchone()
            # The seq range bounds the row count and costs two index lookups; count only when it might exceed.
            if low is not None and high - low + 1 > self.max_rows:
                excess = conn.execute("SELECT count(*) FROM events").fetchone()[0] - self.max_rows
                if excess > 0:
                    dropped += self._drop_oldest(conn, excess)
        if self._max_bytes is not None:
            while (used := _used_bytes(conn)) > self._max_bytes:
                count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
                if count == 0:
                    break
                # Pages free up only when emptied, so estimate from the average row and measure again.
                dropped += self._drop_oldest(conn, math.ceil((used - self._max_bytes) * count / used))
        if dropped:
            conn.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (dropped,))
        return dropped

    @staticmethod
    def _drop_oldest(conn: sqlite3.Connection, count: int) -> int:
        cursor = conn.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)", (max(count, 1),)
        )
        return cursor.rowcount

    def _warn_dropped(self, dropped: int) -> None:
        self._unreported_drops += dropped
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            log.warning(
                "Event log %s is full: dropped the %d oldest unsent events (limits: %s rows, %s MB); "
                "the sink is unreachable or slower than the events",
                self.path,
                self._unreported_drops,
                self.max_rows,
                self.max_mb,
            )
            self._unreported_drops = 0
            self._last_warning = now

    def pending(self, limit: int) -> list[Event]:
        """Up to ``limit`` unacknowledged events, oldest first (in the order they were added)."""
        if limit <= 0:
            return []
        with self._connection("read events") as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq LIMIT ?", (limit,)).fetchall()
        try:
            return [_event(row) for row in rows]
        except (TypeError, ValueError) as error:
            raise _not_event_log(self.path, f"a row is unreadable: {error}") from error

    def acknowledge(self, ids: Sequence[str]) -> int:
        """Delete the events with these ids (call only after the sink accepted them); returns how many."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return 0
        deleted = 0
        with self._transaction("acknowledge events") as conn:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                cursor = conn.execute(
                    f"DELETE FROM events WHERE id IN ({', '.join('?' * len(chunk))})", chunk
                )
                deleted += cursor.rowcount
        return deleted

    def stats(self) -> StoreStats:
        with self._connection("read its statistics") as conn:
            pending, dropped = conn.execute(
                "SELECT (SELECT count(*) FROM events), (SELECT value FROM meta WHERE key = 'dropped')"
            ).fetchone()
        size = sum(_file_size(p) for p in (self.path, Path(f"{self.path}-wal")))
        return StoreStats(pending=int(pending), dropped=int(dropped), size_bytes=size)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # no -wal file, or another connection's close just removed it
        return 0


def _used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes in pages that hold data: the file's pages less the free ones SQLite will reuse."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)
