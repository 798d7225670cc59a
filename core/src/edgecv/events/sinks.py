"""Where synced events go: ``open_sink(url)`` asks the plugins (``edgecv_event_sink``) for a sink.

A sink's ``send(batch)`` returns only once the receiver acknowledged every event of the batch
(HTTP: a 2xx answer; MQTT: a PUBACK per message) and raises ``SyncError`` otherwise, so the
``Syncer`` deletes nothing the receiver does not hold. A failed batch is sent again whole, so
receivers see duplicates and de-duplicate by the event's ``id``. The core's ``http(s)://`` and
``mqtt://`` sinks (``edgecv.events.transports``) are the hook's ``trylast`` implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from edgecv.errors import ConfigError
from edgecv.events.transports import (
    MQTT_MISSING,
    EventSink,
    HttpSink,
    MqttSink,
    SyncError,
    batch_key,
    core_sink,
    public_name,
)

__all__ = [
    "MQTT_MISSING",
    "EventSink",
    "HttpSink",
    "MqttSink",
    "SyncError",
    "batch_key",
    "core_sink",
    "open_sink",
]


def open_sink(url: str, options: Mapping[str, Any] | None = None) -> EventSink:
    """The sink for ``url`` from the first plugin that provides one (the core's last).

    The caller owns the sink and closes it.
    """
    from edgecv.runtime.observers import service_manager

    sink: EventSink | None = service_manager().hook.edgecv_event_sink(url=url, options=dict(options or {}))
    if sink is None:
        shown = public_name(urlsplit(url)) if "://" in url else url
        raise ConfigError(
            f"No sink for {shown!r}: use http(s):// or mqtt:// or install a plugin that provides it"
        )
    return sink
