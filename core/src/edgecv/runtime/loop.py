"""``Runtime``: the long-running loop behind ``edgecv run``, usable from Python as it is.

One thread reads the source (``sources``), one runs the session (``inference``), and the caller's
thread runs this loop: it decides which frames to infer (``--skip`` and the thermal throttle),
preprocesses them, postprocesses what the session returned, carries boxes across the other frames
with the tracker, hands them to the ``EventPipeline`` and calls the hooks on the run's own plugin
manager (``observers``). A watchdog check on every iteration restarts a stalled source or inference.

The stages overlap: while the session infers frame N, the capture thread decodes ahead and the
loop preprocesses frame N+1 and finishes frame N-1 (``RunConfig.in_flight`` frames submitted,
default ``PIPELINE_DEPTH``; 1: one frame at a time). When the model's session is
asynchronous (an accelerator with its own queue: ``Model.asynchronous``) the loop submits to it
instead of the thread, up to the session's ``depth``. Either way frames complete strictly in
order, so tracking and events see what they would see one frame at a time.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import inspect
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from edgecv.backends import frames_in_flight
from edgecv.detections import Detections
from edgecv.errors import ConfigError, EdgecvError
from edgecv.events.model import Event
from edgecv.events.pipeline import EventPipeline
from edgecv.events.policy import EventPolicy
from edgecv.model import Model
from edgecv.runtime.inference import InferenceWorker, Inferred, finish, prepare
from edgecv.runtime.observers import open_sink, run_manager
from edgecv.runtime.results import FrameResult
from edgecv.runtime.sources import EndOfStream, Frame, FrameSource, open_source
from edgecv.runtime.stats import RunStats
from edgecv.runtime.thermal import ThermalGovernor, ThrottleState
from edgecv.runtime.threads import wait_futures
from edgecv.runtime.tracker import ByteTracker, TrackerConfig

if TYPE_CHECKING:  # sqlite3 and urllib are imported only by runs that log or sync events
    from edgecv.events.sinks import EventSink
    from edgecv.events.store import EventStore

log = logging.getLogger(__name__)


class RuntimeFailure(EdgecvError):
    """The pipeline kept failing after restarts."""


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


@attrs.frozen
class RunConfig:
    """How the loop runs. ``skip``: infer every K-th frame; the others are tracked or reuse the last boxes."""

    skip: int = attrs.field(default=1, validator=_positive)
    track: bool = False
    tracker: TrackerConfig = attrs.field(factory=TrackerConfig)
    max_frames: int | None = attrs.field(default=None, validator=_positive)
    duration_s: float | None = attrs.field(default=None, validator=_positive)
    stall_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    """Watchdog: no frame from the source, or no answer from the model, for this long restarts it."""
    max_failures: int = attrs.field(default=5, validator=_positive)
    """Inference errors in a row before the run gives up."""
    event_flush_s: float = attrs.field(default=0.5, validator=_positive)
    event_batch: int = attrs.field(default=256, validator=_positive)
    event_max_rows: int | None = attrs.field(default=100_000, validator=_positive)
    """Retention of an event log the runtime opens from a path: unsynced events kept at most."""
    event_max_mb: float | None = attrs.field(default=None, validator=_positive)
    """Retention of an event log the runtime opens from a path: its size limit."""
    in_flight: int | None = attrs.field(default=None, validator=_positive)
    """Frames submitted to the model and not yet completed; 1 runs them one at a time (the lowest
    capture-to-result latency). ``None``: the session's ``depth`` (at least 2) when it is
    asynchronous, else ``PIPELINE_DEPTH``."""


PIPELINE_DEPTH = 2
"""Frames in flight through a synchronous session by default: one inferring in the thread while
the loop preprocesses the next and finishes the previous. Measured no slower than one at a time
on one core too (``taskset -c 1``), so there is no single-core exception."""


_FINISH_TIMEOUT_S = 5.0  # the end of a run waits at most this long for the model's thread

# What the loop decided for a frame when it was read.
PAUSED, INFER, CARRY = "paused", "infer", "carry"


@attrs.define
class _Pending:
    """A frame read and decided, waiting for its inference (``future``: detections from an
    asynchronous session, outputs from the inference thread) or its turn."""

    frame: Frame
    kind: str
    throttle: ThrottleState
    """The thermal state the frame was decided in (its result reports it)."""
    future: concurrent.futures.Future[Detections] | concurrent.futures.Future[Inferred] | None = None


FPS_WINDOW_S = 1.0
"""``FrameResult.fps`` counts the results of about this many last seconds."""


class _RollingFps:
    """Frames delivered per second over the last second, inferred, carried and paused frames alike.

    The rate is the results in the window divided by the time since the result before them.
    With ``--skip K`` results come in bursts (a slow inferred frame, then carried frames within
    microseconds), so the count is rounded down to whole cycles of ``stride`` frames: both ends
    of the span are then at the same point of a cycle and the rate does not swing with the phase.
    Until the run has delivered for a second the span starts at ``start`` (when the loop got its
    first frame): the first result reads 1 / the time it took.
    """

    def __init__(self, stride: int = 1, window_s: float = FPS_WINDOW_S) -> None:
        self._stride = stride
        self._window_s = window_s
        # The start, then result times: those in the window and the last one before it.
        self._times: collections.deque[float] = collections.deque()
        self.settled = False
        """The run has delivered for a whole window: the rate no longer describes the start-up."""

    def start(self, now: float) -> None:
        """The loop got its first frame (later calls change nothing)."""
        if not self._times:
            self._times.append(now)

    def tick(self, now: float) -> float:
        """Count a result delivered at ``now``; the rate including it."""
        self.start(now)
        times = self._times
        times.append(now)
        while len(times) > 2 and times[1] <= now - self._window_s:
            times.popleft()
        self.settled = times[0] <= now - self._window_s
        count = len(times) - 1  # results after times[0]
        if count >= self._stride:
            count -= count % self._stride
        span = now - times[-1 - count]
        return count / span if span > 0 else 0.0


class Runtime:
    """Runs ``model`` on a video source until it ends, a limit is reached, or ``stop()`` is called.

    Whoever opens closes: ``source`` given as a path, URL or camera index is opened here and
    closed by the runtime; a ``FrameSource`` stays the caller's. Likewise ``events`` (an event log
    path, or the caller's ``EventStore``) and ``sink`` (a URL for ``open_sink``, or the caller's
    ``EventSink``; it needs ``events``). ``thermal`` is a ``ThermalGovernor``, ``True`` for the
    default 75/85 °C policy on the hottest sensor, or ``False`` for none. ``plugins`` are objects
    with ``edgecv_on_*`` hookimpls (results, events, throttle, restart): they and the plugins
    registered process-wide observe this runtime's frames only.

    Iterate ``results()`` to get each ``FrameResult``, or call ``run()`` to drive the loop and get
    the ``RunStats``. A runtime runs once: the end of the run closes what it opened. Use it as a
    context manager (or call ``close()``) so that this also happens when it never ran or the
    iteration was abandoned.
    """

    def __init__(
        self,
        model: Model,
        source: FrameSource | str | int | os.PathLike[str],
        config: RunConfig | None = None,
        *,
        events: EventStore | str | os.PathLike[str] | None = None,
        event_policy: EventPolicy | None = None,
        sink: EventSink | str | None = None,
        thermal: ThermalGovernor | bool = True,
        plugins: Sequence[object] = (),
        realtime: bool = False,
    ) -> None:
        if sink is not None and events is None:
            raise ConfigError("An event sink needs an event log to send from", "Pass events= too.")
        if event_policy is not None:  # a typo in the classes would log nothing, forever
            event_policy.check_classes(model.names)
        self.model = model
        self.config = config or RunConfig()
        with contextlib.ExitStack() as opened:
            if isinstance(source, FrameSource):
                self.source = source
            else:
                spec = source if isinstance(source, (str, int)) else os.fspath(source)
                self.source = open_source(spec, realtime=realtime)
                opened.callback(self.source.close)
            if isinstance(sink, str):
                sink = open_sink(sink)
                opened.callback(sink.close)
            self.events: EventPipeline | None = None
            if events is not None:
                self.events = opened.enter_context(
                    EventPipeline(
                        events,
                        model=model.spec.path.name,
                        source=self.source.name,
                        policy=event_policy,
                        sink=sink,
                        max_rows=self.config.event_max_rows,
                        max_mb=self.config.event_max_mb,
                        flush_s=self.config.event_flush_s,
                        batch=self.config.event_batch,
                    )
                )
            self._owned = opened.pop_all()  # closed in reverse: the event pipeline, the sink, the source
        # True: the default policy on whatever sensor exists; False: no throttling.
        self.governor = ThermalGovernor() if thermal is True else thermal or None
        if self.governor is not None:  # an accelerator's chip counts as much as the SoC
            self.governor.watch(model.session)
        self.stats = RunStats()
        self._plugins = list(plugins)
        # Plain flags, not locks or Events: signal handlers set them (see install_signal_handlers).
        self._stop_requested = False
        self._stop_signal: str | None = None
        self._report_requested = False
        self._on_stats: Callable[[RunStats], None] | None = None
        self._tracker = ByteTracker(self.config.tracker) if self.config.track else None
        # ByteTrack's second stage keeps tracks alive with low-score boxes: the model reports down
        # to the tracker's floor, and what is shown or logged is filtered at the user's threshold.
        self._infer_options = (
            attrs.evolve(model.options, conf=min(model.options.conf, self.config.tracker.low_score))
            if self._tracker is not None
            else None
        )
        self._last_detections: Detections | None = None
        self._throttle = ThrottleState(1.0, False, None, None, "not read yet")
        self._since_inference = 0
        self._need_inference = True  # the first frame, and the one after a lost inference
        self._pending: collections.deque[_Pending] = collections.deque()
        requested = self.config.in_flight
        self._in_flight = (
            frames_in_flight(model.session, requested) if model.asynchronous else requested or PIPELINE_DEPTH
        )
        self._asynchronous = model.asynchronous and self._in_flight > 1
        self._failures = 0
        self._worker: InferenceWorker | None = None
        self._last_restart = 0.0
        self._seen_reconnects = 0
        self._run: Generator[FrameResult, None, None] | None = None
        self._closed = False

    # --- control -----------------------------------------------------------------------------

    def add_plugin(self, plugin: object) -> None:
        """Add ``plugin`` (hookimpls) to this runtime's observers before it runs, e.g. an output that
        needs ``stop``."""
        self._plugins.append(plugin)

    def stop(self) -> None:
        """Ask the loop to finish after the current frame. Safe from other threads and from signal
        handlers: it sets a flag and takes no lock."""
        self._stop_requested = True

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    def install_signal_handlers(self, on_stats: Callable[[RunStats], None] | None = None) -> None:
        """SIGINT, SIGTERM and SIGHUP (a closed terminal or SSH session) stop cleanly, a second
        SIGINT interrupts; SIGUSR1 reports stats.

        Call from the main thread. ``on_stats`` defaults to printing the summary to stderr.

        The handlers only set flags, which the loop reads at each turn (every frame, and every
        0.25 s while none comes): a
        handler runs between two bytecodes of whatever the main thread was doing, and one that took
        a lock waits forever for a lock that code holds. A second Ctrl-C landing while the first
        one's handler was inside ``threading.Event.set`` hung ``edgecv run`` that way; logging and
        printing take locks too.
        """
        self._on_stats = on_stats or (lambda stats: print(stats.format(), file=sys.stderr, flush=True))

        def stop(signum: int, frame: FrameType | None) -> None:
            if self._stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_signal = signal.Signals(signum).name
            self._stop_requested = True

        def report(signum: int, frame: FrameType | None) -> None:
            self._report_requested = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, stop)
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, report)

    def run(self) -> RunStats:
        for _ in self.results():
            pass
        return self.stats

    def close(self) -> None:
        """Stop, and close what this runtime opened (event log and sink, source). Safe to call twice.

        Called from the thread that runs the loop (or after it). From another thread it only asks
        the loop to stop, and the loop closes at its end.
        """
        run = self._run
        if run is not None and inspect.getgeneratorstate(run) == inspect.GEN_RUNNING:
            self.stop()
            return
        if self._closed:
            return
        self._closed = True
        self._stop_requested = True
        self._run = None
        with self._owned:
            if run is not None:
                run.close()  # an abandoned results(): its finally ends the run (flush, sync)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # --- the loop ----------------------------------------------------------------------------

    def results(self) -> Iterator[FrameResult]:
        """The run, one ``FrameResult`` per frame; it starts at the first ``next()``."""
        if self._closed or self._run is not None:
            raise RuntimeError("This Runtime already ran or is closed; a Runtime runs once")
        self._run = self._loop()
        return self._run

    def _loop(self) -> Generator[FrameResult, None, None]:
        hook: Any = None
        try:
            hook = run_manager(self._plugins).hook  # a snapshot of the process-wide plugins, plus ours
            if not self.source.started:  # the CLI starts it early to fail fast and learn the fps
                self.source.start()
            if not self._asynchronous:
                self._worker = InferenceWorker(self.model)
            if self.events is not None:
                self.events.start()
            fps = _RollingFps(self.config.skip)
            while not self._stop_requested and not self._limit_reached():
                self._report_if_asked()
                self._poll_thermal(hook)
                self._poll_reconnects(hook)
                try:
                    frame = self.source.read(timeout=0.25)
                except EndOfStream:
                    break
                if frame is None:
                    self._check_source_stall(hook)
                    continue
                fps.start(time.monotonic())
                kind = self._decide()
                self._pending.append(
                    _Pending(
                        frame, kind, self._throttle, self._submit(frame, hook) if kind == INFER else None
                    )
                )
                yield from self._drain(fps, hook, everything=False)
            yield from self._drain(fps, hook, everything=True)
        finally:
            self._finish(hook)

    def _emit(self, result: FrameResult, hook: Any) -> FrameResult:
        hook.edgecv_on_result(result=result)
        self._collect_events(result, hook)
        return result

    def _report_if_asked(self) -> None:
        """The statistics, when SIGUSR1 asked for them since the last turn."""
        if self._report_requested and self._on_stats is not None:
            self._report_requested = False
            self._refresh_stats()
            self._on_stats(self.stats)

    def _limit_reached(self) -> bool:
        config = self.config
        if config.max_frames is not None and self.stats.processed + len(self._pending) >= config.max_frames:
            return True
        return config.duration_s is not None and self.stats.elapsed_s >= config.duration_s

    def _decide(self) -> str:
        """What to do with the frame just read: nothing while paused, else infer every
        ``skip / throttle`` frames (and the first, and the one after a lost inference)."""
        if self._throttle.paused:
            self._since_inference += 1
            return PAUSED
        stride = math.ceil(self.config.skip / max(self._throttle.factor, 1e-3) - 1e-9)
        if self._need_inference or self._since_inference + 1 >= stride:
            self._need_inference = False
            self._since_inference = 0
            return INFER
        self._since_inference += 1
        return CARRY

    def _complete(self, pending: _Pending, found: Detections | None, fps: _RollingFps) -> FrameResult:
        """The frame's result; ``found`` is the model's detections (``None``: not inferred, or lost)."""
        frame, kind = pending.frame, pending.kind
        names, shape = self.model.names, (frame.image.shape[0], frame.image.shape[1])
        inferred = found is not None
        if kind == PAUSED:
            # Nothing is known about a frame nobody looked at: no boxes. The tracker's clock still
            # advances so its motion model stays in frames.
            self.stats.paused_frames += 1
            if self._tracker is not None:
                self._tracker.predict(shape)
            detections = Detections.empty(names, shape)
        elif found is not None:
            if self._tracker is not None:
                found = self._tracker.update(found).filter(min_score=self.model.options.conf)
            detections = self._last_detections = found
        else:
            if kind == INFER:  # lost to a restart: infer again next frame, keep the tracker's clock
                self._need_inference = True
            detections = self._carry(names, shape)
        now = time.monotonic()
        latency_ms = (now - frame.captured_at) * 1e3
        timings = detections.timings if inferred else None
        rate = fps.tick(now)
        self.stats.frame_done(
            now, latency_ms, timings.total if timings is not None else None, rate if fps.settled else None
        )
        return FrameResult(
            source=self.source.name,
            frame=frame.index,
            timestamp=frame.timestamp,
            image=frame.image,
            detections=detections,
            inferred=inferred,
            latency_ms=latency_ms,
            fps=rate,
            throttle=pending.throttle.factor,
            paused=pending.throttle.paused,
        )

    def _carry(self, names: tuple[str, ...], shape: tuple[int, int]) -> Detections:
        """Boxes for a frame the model skipped: the tracker's prediction, else the last detections."""
        if self._tracker is not None:
            return self._tracker.predict(shape).filter(min_score=self.model.options.conf)
        if self._last_detections is not None:
            return attrs.evolve(self._last_detections, timings=None)
        return Detections.empty(names, shape)

    def _failed(self, exc: Exception, hook: Any, restart: Callable[[str, Any], None]) -> None:
        """Count a failed inference: give up after ``max_failures`` in a row, else ``restart``."""
        self._failures += 1
        if self._failures >= self.config.max_failures:
            raise RuntimeFailure(
                f"Inference failed {self._failures} times in a row; last: {type(exc).__name__}: {exc}",
                "Check the model and backend with `edgecv predict` on one frame; "
                "run with --debug for the traceback.",
            ) from exc
        restart(f"inference failed: {type(exc).__name__}: {exc}", hook)

    # --- frames in flight --------------------------------------------------------------------

    def _submit(
        self, frame: Frame, hook: Any
    ) -> concurrent.futures.Future[Detections] | concurrent.futures.Future[Inferred] | None:
        """Preprocess the frame and queue it on the asynchronous session or the inference thread;
        ``None`` (the frame is lost) when preprocessing fails."""
        options, source = self._infer_options, self.source.name
        try:
            if self._asynchronous:
                return self.model.submit(frame.image, options, source)
            assert self._worker is not None
            return self._worker.submit(prepare(self.model, frame.image, options, source))
        except Exception as exc:
            self._failed(exc, hook, self._restart)
            return None

    def _drain(self, fps: _RollingFps, hook: Any, *, everything: bool) -> Iterator[FrameResult]:
        """Complete the oldest frames in order: those whose inference is done, and the oldest one
        anyway once ``in_flight`` inferences are outstanding (``everything``: all of them)."""
        while self._pending:
            head = self._pending[0]
            if head.future is not None and not head.future.done() and not everything:
                outstanding = sum(1 for pending in self._pending if pending.future is not None)
                if outstanding < self._in_flight:
                    return
            self._pending.popleft()
            found = self._await(head.future, hook) if head.future is not None else None
            yield self._emit(self._complete(head, found, fps), hook)

    def _await(
        self,
        future: concurrent.futures.Future[Detections] | concurrent.futures.Future[Inferred],
        hook: Any,
    ) -> Detections | None:
        """The detections of a frame in flight (postprocessed here when it comes from the
        inference thread), or ``None`` when it failed or stalled."""
        try:
            done = future.result(timeout=self.config.stall_timeout_s)
        except concurrent.futures.TimeoutError:
            self._stalled(hook)
            return None
        except Exception as exc:
            self._failed(exc, hook, self._restart)
            return None
        try:
            detections = finish(self.model, done) if isinstance(done, Inferred) else done
        except Exception as exc:
            self._failed(exc, hook, self._restart)
            return None
        self._failures = 0
        return detections

    def _stalled(self, hook: Any) -> None:
        """The oldest frame in flight gave no result in time: it is lost (tracked over)."""
        reason = f"inference gave no result in {self.config.stall_timeout_s:g} s"
        if not self._asynchronous:
            self._restart_worker(reason, hook)
            return
        # The device's queue is stuck: nothing in flight will come back in time. Those frames
        # are lost too; the next frame is submitted afresh.
        for pending in self._pending:
            pending.future = None
        self._restart(reason, hook)

    def _restart(self, reason: str, hook: Any) -> None:
        self.stats.restarts += 1
        self._last_restart = time.monotonic()
        log.warning("watchdog: %s; restarting (restart %d)", reason, self.stats.restarts)
        hook.edgecv_on_restart(reason=reason, restarts=self.stats.restarts)

    def _restart_worker(self, reason: str, hook: Any) -> None:
        """Abandon the stuck inference thread for a new one, which takes the frames queued behind
        the stuck frame."""
        stuck, self._worker = self._worker, InferenceWorker(self.model)
        moved = (
            {id(future): self._worker.submit(prepared) for prepared, future in stuck.close()} if stuck else {}
        )
        for pending in self._pending:
            if pending.future is not None and not pending.future.done():
                pending.future = moved.get(id(pending.future))
        self._restart(reason, hook)

    def _check_source_stall(self, hook: Any) -> None:
        quiet_since = max(self.source.last_progress(), self._last_restart, self.stats.started)
        if time.monotonic() - quiet_since > self.config.stall_timeout_s:
            reason = f"no frame from {self.source.name} for {self.config.stall_timeout_s:g} s"
            self.source.restart(reason)
            self._restart(reason, hook)

    def _poll_reconnects(self, hook: Any) -> None:
        reconnects = self.source.stats.reconnects
        if reconnects > self._seen_reconnects:
            self._seen_reconnects = reconnects
            hook.edgecv_on_restart(reason=f"reconnected to {self.source.name}", restarts=self.stats.restarts)

    def _poll_thermal(self, hook: Any) -> None:
        if self.governor is None:
            return
        changed = self.governor.poll()
        if changed is not None:
            self._throttle = changed
            self.stats.throttle = changed.factor
            hook.edgecv_on_throttle(state=changed)

    # --- events ------------------------------------------------------------------------------

    def _collect_events(self, result: FrameResult, hook: Any) -> None:
        if self.events is None:
            return
        detections = result.detections if result.inferred else None
        batch = self.events.add(detections, frame=result.frame, time=result.timestamp)
        self._events_written(batch, hook)

    def _events_written(self, batch: list[Event], hook: Any) -> None:
        if batch:
            self.stats.events_written += len(batch)
            hook.edgecv_on_events(events=batch)

    # --- shutdown ----------------------------------------------------------------------------

    def _refresh_stats(self) -> None:
        source = self.source.stats
        self.stats.read, self.stats.dropped, self.stats.reconnects = (
            source.read,
            source.dropped,
            source.reconnects,
        )
        if self.events is not None:
            store = self.events.stats()
            self.stats.events_pending, self.stats.events_dropped = store.pending, store.dropped
            if self.events.syncer is not None:
                sync = self.events.syncer.stats
                self.stats.synced, self.stats.sync_failures = sync.sent, sync.failures

    def _finish(self, hook: Any | None) -> None:
        """End the run in the order that loses nothing: events first, then sync, then the model's
        thread, then what the runtime opened (``close``); each step runs even when one before it
        failed. ``hook`` is ``None`` when the run's plugins were refused."""
        self.stats.ended = time.monotonic()
        if self._stop_signal is not None:
            log.info("received %s: stopping", self._stop_signal)
        self._stop_requested = True  # the run is over: Ctrl-C during the waits below interrupts
        with contextlib.ExitStack() as steps:  # run last-registered first
            steps.callback(self._closed_by_finish)
            steps.callback(self._refresh_stats)
            steps.callback(self._stop_inference)
            if self.events is not None:
                steps.callback(self.events.stop)
                if hook is not None:
                    self._events_written(self.events.flush(), hook)

    def _stop_inference(self) -> None:
        """Stop the model's thread, or let the frames in flight finish, waiting a bounded time (a
        second Ctrl-C included): a thread still inside a native runtime when the interpreter shuts
        down aborts the process."""
        timeout_s = min(self.config.stall_timeout_s, _FINISH_TIMEOUT_S)
        if self._worker is not None:
            self._worker.close()  # the frames it had not started are dropped
            if not self._worker.join(timeout_s):
                log.warning("the inference thread is still busy after %g s; leaving it", timeout_s)
        in_flight = [
            pending.future for pending in self._pending if self._asynchronous and pending.future is not None
        ]
        if in_flight and not wait_futures(in_flight, timeout_s):
            log.warning("inferences in flight are still busy after %g s; leaving them", timeout_s)

    def _closed_by_finish(self) -> None:
        self._run = None  # this generator is ending: close() must not close it again
        self.close()
