"""``EventPipeline``: detections to delivered events, with one owner (the ``Runtime`` that runs it).

Per inferred frame the selector picks the events (``EventPolicy``); they are committed to the
``EventStore`` in batches (every ``flush_s`` seconds or ``batch`` events, one transaction each),
and a ``Syncer`` thread ships the log to the sink. Whoever opens closes: a store given as a path
is opened here and closed by ``close()``; an ``EventStore`` and the sink stay the caller's.
sqlite3 is imported only when events are logged.
"""

from __future__ import annotations

import contextlib
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
    from edgecv.events.store import EventStore
    from edgecv.events.sync import Syncer

SYNC_DRAIN_S = 5.0
"""How long stopping the pipeline lets the syncer send what is pending."""


class EventPipeline:
    """Chooses, logs and ships the events of one source.

    ``store``: an ``EventStore``, or a path opened with the retention limits ``max_rows`` /
    ``max_mb``. ``sink``: ``None`` (log only) or an ``EventSink``.
    ``model`` and ``source`` name where the events come from.
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
    ) -> None:
        from edgecv.events.store import EventStore

        if flush_s <= 0 or batch < 1:
            raise ConfigError(f"Event batching needs flush_s > 0 and batch >= 1, got {flush_s} and {batch}")
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
        self.written = 0
        self.syncer: Syncer | None = None
        if self.sink is not None:
            from edgecv.events.sync import Syncer

            # It logs going offline and back (one warning line in the CLI); events stay queued.
            self.syncer = Syncer(self.store, self.sink)
        self._pending: list[Event] = []
        self._last_flush = time.monotonic()
        self._closed = False

    def start(self) -> None:
        """Start shipping in the background (nothing to do without a sink)."""
        if self._closed:
            raise RuntimeError("the event pipeline is closed")
        if self.syncer is not None:
            self.syncer.start()

    def add(self, detections: Detections | None, *, frame: int, time: float) -> list[Event]:
        """Select events from an inferred frame (``None``: a frame the model skipped), commit when due.

        Returns the batch committed by this call (empty when none was due).
        """
        if detections is not None:
            self._pending.extend(self.selector.select(detections, frame=frame, time=time))
        due = _now() - self._last_flush >= self.flush_s
        if len(self._pending) >= self.batch or (due and self._pending):
            return self.flush()
        return []

    def flush(self) -> list[Event]:
        """Commit what is pending now (one transaction) and wake the syncer; returns the batch."""
        self._last_flush = _now()
        if not self._pending:
            return []
        batch, self._pending = self._pending, []
        self.store.add(batch)
        self.written += len(batch)
        if self.syncer is not None:
            self.syncer.wake()
        return batch

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


def _now() -> float:
    return time.monotonic()
