"""Ships the event log to a sink in the background: batches, at-least-once, backoff while offline.

The order is what makes delivery at-least-once: read a batch (oldest first), ``sink.send`` it, and
delete it from the log only after ``send`` returned, i.e. after the receiver acknowledged every
event. A crash between the two re-sends the batch on the next run; receivers de-duplicate by id.
While the sink fails, events stay queued (the store's own limits decide what is dropped) and the
syncer retries with exponential backoff and jitter, logging only when it goes offline or comes
back.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import attrs

from edgecv.errors import ConfigError, one_line
from edgecv.events.sinks import EventSink, SyncError
from edgecv.events.store import EventStore

log = logging.getLogger(__name__)

STOP_GRACE_S = 1.0
"""How long ``stop`` waits, past its flush timeout, for a send in flight before leaving it behind."""
QUIET_DRAIN_S = 0.5
"""A drain at ``stop`` that ends within this long is not mentioned; a longer one says what it waits for."""


@attrs.define
class SyncStats:
    sent: int = 0
    """Events acknowledged by the receiver (and so deleted from the log)."""
    batches: int = 0
    """Batches acknowledged."""
    failures: int = 0
    """Failed sends (each retry counts)."""
    last_error: str | None = None
    backoff_s: float = 0.0
    """The wait before the next retry; 0 while online."""
    online: bool = True
    """False from a failed send until the next acknowledged one."""


class Syncer:
    """Moves events from ``store`` to ``sink`` on a daemon thread (``start``/``wake``/``stop``).

    ``on_error(message)`` is called once, the first time the sink fails (one line, for a CLI
    warning); later outages are only logged. Neither ``stop`` nor the syncer closes ``store`` or
    ``sink``: they belong to the caller, who closes the sink after ``stop`` (which ends a send that
    ``stop`` left in flight).
    """

    def __init__(
        self,
        store: EventStore,
        sink: EventSink,
        *,
        batch_size: int = 100,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 60.0,
        idle_poll_s: float = 1.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"Sync batch size must be at least 1, not {batch_size}")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ConfigError(
                f"Sync backoff must satisfy 0 < initial <= max, not {backoff_initial_s} and {backoff_max_s}"
            )
        self.store = store
        self.sink = sink
        self.batch_size = batch_size
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.idle_poll_s = idle_poll_s
        self.on_error = on_error
        self.stats = SyncStats()
        self._delay = 0.0  # the backoff before jitter
        self._reported = False
        self._streak = 0  # failed sends since the last acknowledged one
        self._rng = random.Random()
        self._lock = threading.Lock()  # one batch in flight, whoever calls run_once
        self._wake = threading.Event()
        self._stopping = threading.Event()  # one per thread: a thread left behind by stop() ends
        self._flush_deadline = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread (once; a stopped syncer may be started again)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stopping,), name="edgecv-sync", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        """New events were written: send them now instead of after ``idle_poll_s``."""
        self._wake.set()

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Send what is pending for up to ``flush_timeout_s``, then stop the thread.

        Unacknowledged events stay in the store for the next run. A send still in flight
        ``STOP_GRACE_S`` after that is left behind on its daemon thread, whatever the receiver
        does: its batch is not acknowledged, so it is sent again next time. A drain still going
        after ``QUIET_DRAIN_S`` logs one warning saying what it waits for; a ``KeyboardInterrupt``
        meanwhile ends the drain at once (and is raised).
        """
        thread = self._thread
        if thread is None:
            return
        self._flush_deadline = time.monotonic() + max(0.0, flush_timeout_s)
        self._stopping.set()
        self._wake.set()
        try:
            thread.join(min(QUIET_DRAIN_S, max(0.0, flush_timeout_s)))
            if thread.is_alive():
                self._say_waiting()
                thread.join(max(0.0, self._flush_deadline - time.monotonic()) + STOP_GRACE_S)
        except BaseException:  # Ctrl-C: stop draining now; what is unsent stays queued
            self._flush_deadline = time.monotonic()
            self._thread = None
            raise
        if thread.is_alive():
            log.warning(
                "Event sync to %s: a send still in flight at shutdown was abandoned; "
                "its events stay queued for the next run",
                self.sink.name,
            )
        self._thread = None

    def _say_waiting(self) -> None:
        """One line on what ``stop`` waits for, when the receiver has not taken everything yet."""
        try:
            pending = self.store.stats().pending
        except Exception:  # the log's own error is reported where it is used; the wait goes on
            log.debug("cannot count the pending events", exc_info=True)
            return
        if not pending:
            return
        left = max(0.0, self._flush_deadline - time.monotonic()) + STOP_GRACE_S
        log.warning(
            "Waiting up to %.1f s for the sync receiver %s to take %d pending event%s; "
            "Ctrl-C stops now (what is unsent stays queued in the event log)",
            left,
            self.sink.name,
            pending,
            "" if pending == 1 else "s",
        )

    def run_once(self) -> int:
        """Send one batch and delete it once acknowledged; return how many events that was.

        Raises what the sink raised (``SyncError`` for a refused or lost batch) after recording
        it in ``stats``; the events stay queued.
        """
        with self._lock:
            try:
                batch = self.store.pending(self.batch_size)
                if not batch:
                    return 0
                self.sink.send(batch)
                # Only now: the receiver holds every event of the batch.
                self.store.acknowledge([event.id for event in batch])
            except Exception as exc:
                self._failed(exc)
                raise
            self._succeeded(len(batch))
            return len(batch)

    # --- the thread ----------------------------------------------------------------------------

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            self._wake.clear()  # before reading: an event added during the send wakes the next wait
            try:
                sent = self.run_once()
            except Exception:  # recorded by run_once; the thread must outlive any sink
                stopping.wait(self.stats.backoff_s)
                continue
            if sent < self.batch_size:
                self._wake.wait(self.idle_poll_s)
        self._flush()

    def _flush(self) -> None:
        while time.monotonic() < self._flush_deadline:
            try:
                if self.run_once() == 0:
                    return
            except Exception:
                time.sleep(max(0.0, min(self.stats.backoff_s, self._flush_deadline - time.monotonic())))

    # --- state ---------------------------------------------------------------------------------

    def _failed(self, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, SyncError) else f"{type(exc).__name__}: {exc}"
        message = one_line(message, None)
        stats = self.stats
        stats.failures += 1
        self._streak += 1
        stats.last_error = message
        self._delay = self.backoff_initial_s if stats.online else min(self.backoff_max_s, self._delay * 2)
        stats.backoff_s = self._delay * self._rng.uniform(0.5, 1.0)  # jitter: a fleet must not retry in step
        if not stats.online:
            return
        stats.online = False
        if self._abandoned():
            return
        log.warning(
            "Event sync to %s is offline: %s; events stay queued and are retried",
            self.sink.name,
            message,
            exc_info=not isinstance(exc, SyncError),  # a sink that broke its contract: show where
        )
        if self.on_error is not None and not self._reported:
            self._reported = True
            try:
                self.on_error(f"event sync offline: {message} (events stay queued and are retried)")
            except Exception:
                log.exception("The sync on_error callback raised")

    def _abandoned(self) -> bool:
        """A send that ``stop`` left behind failed (as closing the sink makes it): already reported."""
        return self._stopping.is_set() and time.monotonic() > self._flush_deadline + STOP_GRACE_S

    def _succeeded(self, count: int) -> None:
        stats = self.stats
        stats.sent += count
        stats.batches += 1
        if not stats.online:
            stats.online = True
            log.info("Event sync to %s is back online after %d failed attempts", self.sink.name, self._streak)
        self._streak = 0
        self._delay = 0.0
        stats.backoff_s = 0.0
