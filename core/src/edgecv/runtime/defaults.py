"""The running service's own ``trylast`` hook implementations (the pipeline's are ``edgecv.defaults``).

Registered on the process-wide plugin manager with the runtime's hookspecs
(``edgecv.runtime.observers.service_manager``), so a plugin's implementation that returns a
sink for a scheme takes precedence over the core's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edgecv.hookspecs import hookimpl

if TYPE_CHECKING:
    from edgecv.events.sinks import EventSink


@hookimpl(trylast=True)
def edgecv_event_sink(url: str, options: Mapping[str, Any]) -> EventSink | None:
    from edgecv.events import sinks  # urllib and paho are imported only when a run syncs

    return sinks.core_sink(url, options)
