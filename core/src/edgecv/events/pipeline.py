"""``EventPipeline``: detections to delivered events, with one owner (the ``Runtime`` that runs it).

Per inferred frame the selector picks the events (``EventPolicy``); they are committed to the
``EventStore`` in batches (every ``flush_s`` seconds or ``batch`` events, one transaction each),
and a ``Syncer`` thread ships the log to the sink. Whoever opens closes: a store given as a path
is opened here and closed by ``close()``; an ``EventStore`` and the sink stay the caller's.
sqlite3 is imported only when events are logged.

While the log cannot be written for a passing reason (another process holds its lock, the disk is
full) the selected events wait in memory, up to ``max_memory_events`` (beyond, the oldest are dropped
and counted), and ``add()`` tries again after a backoff; the video goes on. Only a lasting error
(an unwritable or damaged log) raises.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from types import TracebackType
from typing import TYPE_CHECKING

from edgecv.detections import Detections
from edgecv.errors import ConfigError
from edgecv.events.model import Event
from edgecv.events.policy import EventPolicy, EventSelector

if TYPE_CHECKING:
    from edgecv.events.sinks import EventSink
    from edgecv.events.store import EventStore, EventStoreUnavailable, StoreStats
    from edgecv.events.sync import Syncer

log = logging.getLogger(__name__)

SYNC_DRAIN_S = 5.0
"""How long stopping the pipeline lets the syncer send what is pending."""
WRITE_WAIT_S = 0.2
"""How long a commit from ``add()`` waits for the log's lock: the frame loop must not stall."""
RETRY_INITIAL_S, RETRY_MAX_S = 0.5, 5.0
"""The backoff between ``add()``'s attempts while the log cannot be written."""
FLUSH_RETRY_S = 5.0
"""How long ``flush()`` (at shutdown) keeps trying while the log cannot be written."""


class EventPipeline:
    """Chooses, logs and ships the events of one source.

    ``store``: an ``EventStore``, or a path opened with the retention limits ``max_rows`` /
    ``max_mb``. ``sink``: ``None`` (log only) or an ``EventSink``.
    ``model`` and ``source`` name where the events come from. ``max_memory_events`` bounds the
    events kept in memory while the log cannot be written.
    """

    def __init__(
        self,
        store: EventStore | str | os.PathLike[str],
        *,
        model: str,
        source: str,
        policy: EventPolicy | None = None,
        sink: EventSink | None = None,
        max_rows: int | None = 100_000,
        max_mb: float | None = None,
        flush_s: float = 0.5,
        batch: int = 256,
        max_memory_events: int = 10_000,
    ) -> None:
        from edgecv.events.store import EventStore

        if flush_s <= 0 or batch < 1:
            raise ConfigError(f"Event batching needs flush_s > 0 and batch >= 1, got {flush_s} and {batch}")
        if max_memory_events < 1:
            raise ConfigError(f"max_memory_events must be at least 1, got {max_memory_events}")
        with contextlib.ExitStack() as opened:
            if isinstance(store, EventStore):
                self.store = store
            else:
                self.store = opened.enter_context(
                    EventStore(os.fspath(store), max_rows=max_rows, max_mb=max_mb)
                )
            self._owned = opened.pop_all()  # closed by close()
        self.sink = sink
        self.selector = EventSelector(policy or EventPolicy(), model, source)
        self.flush_s = flush_s
        self.batch = batch
        self.max_memory_events = max_memory_events
        self.written = 0
        """Events committed to the log."""
        self.dropped = 0
        """Events dropped from memory (the oldest first) while the log could not be written."""
        self.syncer: Syncer | None = None
        if self.sink is not None:
            from edgecv.events.sync import Syncer

            # It logs going offline and back (one warning line in the CLI); events stay queued.
            self.syncer = Syncer(self.store, self.sink)
        self._pending: list[Event] = []  # selected, not yet committed: kept until the log has them
        self._last_flush = time.monotonic()
        self._closed = False
        self._outage: _Outage | None = None  # while the log cannot be written
        self._flush_deadline: float | None = None  # flush() gives up then, until a commit succeeds

    def start(self) -> None:
        """Start shipping in the background (nothing to do without a sink)."""
        if self._closed:
            raise RuntimeError("the event pipeline is closed")
        if self.syncer is not None:
            self.syncer.start()

    @property
    def unstored(self) -> int:
        """Events selected and not yet committed to the log (they are in memory)."""
        return len(self._pending)

    def stats(self) -> StoreStats:
        """The log's statistics, counting the events still in memory as pending and those dropped
        from memory as dropped."""
        from edgecv.events.store import StoreStats

        store = self.store.stats()
        return StoreStats(
            pending=store.pending + self.unstored,
            dropped=store.dropped + self.dropped,
            size_bytes=store.size_bytes,
        )

    def add(self, detections: Detections | None, *, frame: int, time: float) -> list[Event]:
        """Select events from an inferred frame (``None``: a frame the model skipped), commit when due.

        Returns the batch committed by this call (empty when none was due, or the log could not
        be written: then the events wait in memory and a later call tries again).
        """
        if detections is not None:
            self._pending.extend(self.selector.select(detections, frame=frame, time=time))
            self._limit_memory()
        now = _now()
        if self._outage is not None and now < self._outage.retry_at:
            return []
        due = now - self._last_flush >= self.flush_s
        if len(self._pending) >= self.batch or (due and self._pending):
            return self._commit(WRITE_WAIT_S)
        return []

    def flush(self, retry_s: float = FLUSH_RETRY_S) -> list[Event]:
        """Commit what is pending now (one transaction) and wake the syncer; returns the batch.

        While the log cannot be written it keeps trying for up to ``retry_s`` seconds, then raises
        ``EventStoreUnavailable`` saying how many events could not be stored; they stay in memory.
        The ``retry_s`` are counted once until a commit succeeds: a later ``flush`` (``close()``'s,
        after the runtime's) makes one more attempt without waiting again.
        """
        from edgecv.events.store import EventStoreLocked

        if self._flush_deadline is None:
            self._flush_deadline = _now() + retry_s
        while True:
            batch = self._commit(max(0.0, self._flush_deadline - _now()))
            outage = self._outage
            if outage is None:
                self._flush_deadline = None
                return batch
            left = self._flush_deadline - _now()
            if left <= 0:
                raise type(outage.error)(
                    f"{self.unstored} events could not be stored: {outage.error.message}", outage.error.hint
                )
            if not isinstance(outage.error, EventStoreLocked):  # a lock is waited for in the attempt
                _sleep(min(left, outage.delay))

    def _commit(self, wait_s: float | None) -> list[Event]:
        """One attempt at committing ``_pending``; on a passing failure they stay and ``[]`` is returned."""
        from edgecv.events.store import EventStoreUnavailable

        self._last_flush = _now()
        if not self._pending:
            return []
        try:
            self.store.add(self._pending, wait_s=wait_s)
        except EventStoreUnavailable as error:
            self._failed(error)
            return []
        batch, self._pending = self._pending, []
        self.written += len(batch)
        self._flush_deadline = None
        outage, self._outage = self._outage, None
        if outage is not None:
            log.log(
                logging.WARNING if outage.dropped else logging.INFO,
                "Event log %s written again after %.1f s: stored the %d events kept in memory%s",
                self.store.path,
                _now() - outage.since,
                len(batch),
                f" ({outage.dropped} older ones were dropped)" if outage.dropped else "",
            )
        if self.syncer is not None:
            self.syncer.wake()
        return batch

    def _failed(self, error: EventStoreUnavailable) -> None:
        from edgecv.events.store import EventStoreLocked

        outage = self._outage
        if outage is None:
            outage = self._outage = _Outage(error)
        else:
            outage.retry(error)
        # A lock is often a slow commit elsewhere (fsync on an SD card): warn when it lasts.
        if not outage.warned and (outage.attempts > 1 or not isinstance(error, EventStoreLocked)):
            outage.warned = True
            log.warning("%s; keeping %d events in memory and retrying", error.message, self.unstored)

    def _limit_memory(self) -> None:
        """While the log cannot be written: drop the oldest events beyond ``max_memory_events``."""
        outage = self._outage
        excess = len(self._pending) - self.max_memory_events
        if outage is None or excess <= 0:  # without an outage, what is pending is committed now
            return
        del self._pending[:excess]  # the oldest first, as the log's own retention does
        if not outage.dropped:
            log.warning(
                "Event log %s still cannot be written: dropping the oldest events beyond %d in memory",
                self.store.path,
                self.max_memory_events,
            )
        outage.dropped += excess
        self.dropped += excess

    def stop(self, drain_s: float = SYNC_DRAIN_S) -> None:
        """Stop the syncer after up to ``drain_s`` seconds of sending; unsent events stay in the log."""
        if self.syncer is not None:
            self.syncer.stop(drain_s)

    def close(self) -> None:
        """Commit what is pending, stop the syncer, close what this pipeline opened. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with self._owned:
            try:
                self.flush()
            finally:
                self.stop()

    def __enter__(self) -> EventPipeline:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class _Outage:
    """The log cannot be written for now: since when, why, and when ``add()`` tries again."""

    def __init__(self, error: EventStoreUnavailable) -> None:
        self.error = error
        self.since = _now()
        self.delay = RETRY_INITIAL_S
        self.retry_at = self.since + self.delay
        self.attempts = 1
        self.warned = False
        self.dropped = 0

    def retry(self, error: EventStoreUnavailable) -> None:
        self.error = error
        self.attempts += 1
        self.delay = min(2 * self.delay, RETRY_MAX_S)
        self.retry_at = _now() + self.delay


def _now() -> float:
    return time.monotonic()


def _sleep(seconds: float) -> None:
    time.sleep(seconds)
