"""The running service's hooks (``edgecv run`` / ``edgecv.Runtime``), apart from the pipeline's.

``edgecv.runtime`` adds these to the plugin manager when it is used (``plugins.add_hookspecs``),
so a process that only calls ``edgecv.load`` never imports the service. Observers are called by
each ``Runtime`` for its own frames only: the plugins registered globally (entry points,
``edgecv.plugins.register``) plus the ones handed to that ``Runtime``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edgecv.hookspecs import hookspec

if TYPE_CHECKING:
    from edgecv.events.model import Event
    from edgecv.events.sinks import EventSink
    from edgecv.runtime.results import FrameResult
    from edgecv.runtime.thermal import ThrottleState


@hookspec
def edgecv_on_result(result: FrameResult) -> None:
    """Observer: one video frame went through the runtime (inferred, or tracked on a skipped frame).

    Called in the runtime's loop thread for every frame of that runtime's source, in order
    (``result.source`` names it). Keep it fast: a slow observer lowers the frame rate. An exception
    stops the run with a ``PluginError`` naming the plugin (an ``EdgecvError`` passes unchanged);
    the observers after it are still called for that frame.
    """


@hookspec
def edgecv_on_events(events: Sequence[Event]) -> None:
    """Observer: ``events`` were just written to the event log (durably, before this call).

    Called in the loop thread after each batch is committed; the same events are synced to the
    sink in the background. An exception is logged as a warning naming the plugin and the run goes
    on: the events are already in the log.
    """


@hookspec
def edgecv_on_throttle(state: ThrottleState) -> None:
    """Observer: the thermal throttle changed (factor, pause or resume), with the temperature.

    An exception is logged as a warning naming the plugin and the run goes on.
    """


@hookspec
def edgecv_on_restart(reason: str, restarts: int) -> None:
    """Observer: the watchdog restarted part of the pipeline (stalled source, reconnect, crash).

    ``restarts`` is the number of restarts so far in this run, this one included. An exception is
    logged as a warning naming the plugin and the run goes on.
    """


@hookspec(firstresult=True)
def edgecv_event_sink(url: str, options: Mapping[str, Any]) -> EventSink | None:
    """Return a sink that delivers events to ``url``, or ``None`` when the scheme is not yours.

    Called once per run for ``--sync URL``. The core ships ``http(s)://`` and ``mqtt://`` sinks as
    ``trylast`` implementations; a plugin provides another transport (or overrides one) by
    returning its own object with ``send(events)`` (return only after the receiver acknowledged
    every event; raise ``SyncError`` otherwise) and ``close()``.
    """
