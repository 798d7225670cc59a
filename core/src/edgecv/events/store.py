"""EventStore: a crash-safe local log of events waiting to be sent (SQLite in WAL mode).

The runtime loop calls ``add()``; a syncer (a thread holding the same ``EventStore``, or another
process with its own) reads ``pending()`` and deletes what its sink accepted with ``acknowledge()``.
``add()`` returns after COMMIT, so an acknowledged write survives a process crash at any later moment
(and, with ``synchronous="FULL"``, a power loss). When the sink is away for long, retention drops the
oldest unsent events first and counts them in a persisted ``dropped`` counter.

A write that fails because another connection holds the lock or the disk is full raises
``EventStoreUnavailable`` (nothing was written; the same write may succeed later). Opening a log checks
its pages (``PRAGMA quick_check``); a damaged log's readable events are salvaged into a fresh log and
the damaged file is kept beside it, renamed ``NAME.damaged-<time>``.
"""

from __future__ import annotations

import contextlib
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

from edgecv.errors import ConfigError, EdgecvError, one_line
from edgecv.events.model import Event
from edgecv.files import atomic_target

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
APPLICATION_ID = 0x65646376  # b"edcv": marks the file as an edgecv event log (PRAGMA application_id)
BUSY_TIMEOUT_MS = 5000  # how long a writer waits for another connection's transaction
WAL_SIZE_LIMIT = 4 * 1024 * 1024  # the -wal file is truncated back to this after a checkpoint
SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")
MIN_MB = 0.1  # below this the empty schema alone would crowd out every event
WARN_EVERY_S = 60.0  # retention warnings are rate-limited: a full log drops on every add()
_CHUNK = 500  # ids per DELETE statement (SQLite builds may cap bound variables at 999)
_SALVAGE_CHUNK = 256  # rows per read while salvaging a damaged log

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
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 5, 6, 11, 13, 26
_SQLITE_TEXTS = {  # SQLite's messages for the codes, for Python < 3.11 whose errors carry no code
    _SQLITE_BUSY: "database is locked",
    _SQLITE_LOCKED: "database table is locked",
    _SQLITE_CORRUPT: "malformed",
    _SQLITE_FULL: "database or disk is full",
    _SQLITE_NOTADB: "not a database",
}


class EventStoreError(EdgecvError):
    """The event log cannot be opened, read or written."""


class EventStoreUnavailable(EventStoreError):
    """A write failed for a passing reason: another connection holds the log's lock, or its disk is
    full. Nothing was written; the same write may succeed later."""


class EventStoreLocked(EventStoreUnavailable):
    """Another connection (process or thread) holds the log's write lock."""


class EventStoreFull(EventStoreUnavailable):
    """The log cannot grow: its disk is full (or SQLite's page limit was reached)."""


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


def _locked(path: Path, reason: str) -> EventStoreLocked:
    return EventStoreLocked(
        f"The event log {path} is locked by another process ({reason})",
        "Stop the other process that writes to it, or choose another path with --events.",
    )


def _full(path: Path, reason: str) -> EventStoreFull:
    return EventStoreFull(
        f"The event log {path} cannot grow: its disk is full ({reason})",
        "Free space on that disk, bound the log with --event-max-mb, or choose another path with --events.",
    )


def _damaged(path: Path, reason: str) -> EventStoreError:
    return EventStoreError(
        f"The event log {path} is damaged ({reason})",
        "Run edgecv again: opening a damaged log salvages its readable events into a fresh log.",
    )


def _code(error: sqlite3.Error) -> int | None:
    """SQLite's primary result code for ``error``."""
    code = getattr(error, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return int(code) & 0xFF
    text = str(error)
    return next((code for code, known in _SQLITE_TEXTS.items() if known in text), None)


def _is_damage(error: sqlite3.Error) -> bool:
    """True when SQLite says the file is not a database or is corrupt (rather than unwritable)."""
    return _code(error) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _sqlite_error(path: Path, error: sqlite3.Error, *, opened: bool = False) -> EventStoreError:
    """``error`` as the user's problem; ``opened``: after the log was opened and checked (so damage is
    damage, not a foreign file)."""
    code, reason = _code(error), str(error)
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return _locked(path, reason)
    if code == _SQLITE_FULL:
        return _full(path, reason)
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return _damaged(path, reason) if opened else _not_event_log(path, reason)
    return _cannot_write(path, reason)


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


def _connect(path: Path, synchronous: str, *, salvaged: bool = False) -> sqlite3.Connection:
    _check_writable(path)
    # isolation_level=None: no implicit transactions; add()/acknowledge() issue BEGIN IMMEDIATE themselves.
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as error:
        raise _sqlite_error(path, error) from error
    try:
        if _check_ours(conn, path) and (damage := _damage(conn)) is not None:
            if salvaged:  # a log just written is damaged already: the disk is failing
                raise _damaged(path, damage)
            _salvage(conn, path, damage)
            return _connect(path, synchronous, salvaged=True)
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


def _damage(conn: sqlite3.Connection) -> str | None:
    """What ``PRAGMA quick_check`` finds wrong with the file's pages, or ``None`` when they are sound.

    It reads every page once (about 20 ms for 100,000 events when cached, 0.2 s from disk): the cost
    of finding damage at start-up rather than when the syncer reaches it, and stalls for good.
    """
    try:
        finding = conn.execute("PRAGMA quick_check(1)").fetchone()
    except sqlite3.DatabaseError as error:
        if not _is_damage(error):
            raise
        return one_line(error)
    if finding is not None and finding[0] == "ok":
        return None
    return one_line(str(finding and finding[0]).replace("*** in database main ***", ""))


def _salvage(conn: sqlite3.Connection, path: Path, damage: str) -> None:
    """Copy the events still readable from the damaged log ``conn`` into a fresh log at ``path``.

    The damaged file (with its -wal and -shm) is kept beside it as ``NAME.damaged-<time>``; ``conn``
    is closed. The write lock is held while reading, so that no other writer adds to the old file.
    """
    conn.execute("BEGIN IMMEDIATE")
    rows = _readable_rows(conn)
    total = _first_int(conn, "SELECT count(*) FROM events")
    dropped = _first_int(conn, "SELECT value FROM meta WHERE key = 'dropped'") or 0
    conn.close()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    for number in range(2, 1000):
        if not any(Path(f"{kept}{suffix}").exists() for suffix in ("", "-wal", "-shm")):
            break
        kept = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    with atomic_target(path) as fresh:
        fresh_log = sqlite3.connect(fresh, isolation_level=None)
        try:
            fresh_log.execute("BEGIN")
            for statement in _CREATE:
                fresh_log.execute(statement)
            fresh_log.executemany(
                f"INSERT OR IGNORE INTO events ({_COLUMNS}) VALUES ({', '.join('?' * 14)})", rows
            )
            fresh_log.execute("UPDATE meta SET value = ? WHERE key = 'dropped'", (dropped,))
            fresh_log.execute("COMMIT")
        finally:
            fresh_log.close()
        for suffix in ("", "-wal", "-shm"):  # together: the -wal holds the latest transactions
            if Path(f"{path}{suffix}").exists():
                os.replace(f"{path}{suffix}", f"{kept}{suffix}")
    of_total = f" of {total}" if total is not None and total >= len(rows) else ""
    log.warning(
        "The event log %s was damaged (%s): salvaged %d%s events into a fresh log; "
        "the damaged file is kept as %s",
        path,
        damage,
        len(rows),
        of_total,
        kept,
    )


def _readable_rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """The events that can still be read from a damaged log, oldest first, as rows to insert.

    It reads in ``seq`` order, in chunks that shrink to one row where a damaged page stops the
    reading (so that no readable row before it is missed), then skips to the first ``seq`` from
    which the log reads again. Rows that do not make a valid ``Event`` are left out.
    """
    rows: list[tuple[Any, ...]] = []
    last = _first_int(conn, "SELECT seq FROM sqlite_sequence WHERE name = 'events'")
    if last is None:
        last = _first_int(conn, "SELECT max(seq) FROM events")
    start, size = 0, _SALVAGE_CHUNK
    while True:
        try:
            chunk = _chunk(conn, start, size)
        except sqlite3.DatabaseError:
            if size > 1:
                size //= 2
            elif last is None or start > last:
                return rows
            else:
                start = _next_readable(conn, start, last + 1)
            continue
        for seq, *values in chunk:
            start = seq + 1
            with contextlib.suppress(TypeError, ValueError):
                rows.append(_row(_event(values)))
        if len(chunk) < size:
            return rows
        size = min(2 * size, _SALVAGE_CHUNK)


def _chunk(conn: sqlite3.Connection, start: int, size: int) -> list[tuple[Any, ...]]:
    """Up to ``size`` rows (``seq`` first) from ``seq >= start``; raises where the pages are damaged.

    ``LIMIT`` matters: reading on to see that there is no further row would touch the next page.
    """
    query = f"SELECT seq, {_COLUMNS} FROM events WHERE seq >= ? ORDER BY seq LIMIT ?"
    chunk: list[tuple[Any, ...]] = conn.execute(query, (start, size)).fetchall()
    seqs = [row[0] for row in chunk]
    if not all(isinstance(seq, int) and seq >= start for seq in seqs) or seqs != sorted(set(seqs)):
        raise sqlite3.DatabaseError("rows out of order")  # a damaged page read as rows
    return chunk


def _next_readable(conn: sqlite3.Connection, bad: int, end: int) -> int:
    """The smallest ``seq`` after ``bad`` from which the log reads again (by bisection), or ``end``."""

    def readable(start: int) -> bool:
        try:
            _chunk(conn, start, 1)
        except sqlite3.DatabaseError:
            return False
        return True

    if not readable(end):
        return end
    low, high = bad, end  # reading fails from low and works from high
    while high - low > 1:
        middle = (low + high) // 2
        if readable(middle):
            high = middle
        else:
            low = middle
    return high


def _first_int(conn: sqlite3.Connection, query: str) -> int | None:
    """The integer ``query`` returns first, or ``None`` when it cannot be read."""
    try:
        row = conn.execute(query).fetchone()
    except sqlite3.DatabaseError:
        return None
    return row[0] if row is not None and isinstance(row[0], int) else None


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
                raise _sqlite_error(self.path, error, opened=True) from error

    @contextmanager
    def _transaction(self, doing: str, wait_s: float | None = None) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT: takes the write lock up front, so a transaction never fails half-way
        on a lock upgrade; anything raised rolls it back. ``wait_s`` bounds the wait for the lock (this
        store's other threads, then other connections); ``None``: the busy timeout."""
        if not self._lock.acquire(timeout=-1 if wait_s is None else wait_s):
            raise EventStoreLocked(
                f"The event log {self.path} is busy: another thread of this process is using it",
                "Try again later.",
            )
        try:
            with self._connection(doing) as conn:
                if wait_s is not None:
                    conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield conn
                        conn.execute("COMMIT")
                    finally:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                finally:
                    if wait_s is not None:
                        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        finally:
            self._lock.release()

    def add(self, events: Sequence[Event], *, wait_s: float | None = None) -> None:
        """Log ``events`` in one transaction; on return they are committed. Re-adding an id is a no-op.

        Retention runs in the same transaction, so the log never holds more than its limits.
        ``wait_s`` bounds the wait for the write lock, for a caller that must not block for long (the
        runtime's frame loop); ``None``: up to the busy timeout (5 s). Raises ``EventStoreUnavailable``
        while another connection holds the lock or the disk is full: nothing was written.
        """
        if not events:
            return
        rows = [_row(event) for event in events]
        with self._transaction("add events", wait_s) as conn:
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
