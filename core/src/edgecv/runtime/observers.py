"""Which plugins see a run: the process-wide ones plus that ``Runtime``'s own, on a manager of its own.

The runtime's hooks are added to the process-wide manager on first use (``service_manager``):
``edgecv_event_sink`` is asked there. The observers (``edgecv_on_result``, ``edgecv_on_events``,
``edgecv_on_throttle``, ``edgecv_on_restart``) are called on a manager built per run
(``run_manager``), so that two runtimes in one process, one thread each, never see each other's
frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

from edgecv import plugins
from edgecv.errors import ConfigError, PluginError, one_line
from edgecv.hookspecs import PROJECT_NAME
from edgecv.runtime import defaults, hookspecs

if TYPE_CHECKING:
    from edgecv.events.sinks import EventSink


def service_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager with the runtime's hookspecs and defaults added (once)."""
    return plugins.add_hookspecs(hookspecs, defaults)


def open_sink(url: str, options: Mapping[str, Any] | None = None) -> EventSink:
    """The sink for ``url`` from the first plugin that provides one (the core's last).

    The caller owns the sink and closes it.
    """
    sink: EventSink | None = service_manager().hook.edgecv_event_sink(url=url, options=dict(options or {}))
    if sink is None:
        from urllib.parse import urlsplit

        from edgecv.events.sinks import public_name

        shown = public_name(urlsplit(url)) if "://" in url else url
        raise ConfigError(
            f"No sink for {shown!r}: use http(s):// or mqtt:// or install a plugin that provides it"
        )
    return sink


def run_manager(own: Sequence[object]) -> pluggy.PluginManager:
    """A manager for one run: the plugins registered process-wide now (a snapshot), then ``own``.

    Raises ``PluginError`` when one of ``own`` does not match the runtime's hookspecs.
    """
    shared = service_manager()
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for name, plugin in shared.list_name_plugin():
        if plugin is not None:  # None: a name blocked on the shared manager
            manager.register(plugin, name=name)
    for plugin in own:
        if manager.is_registered(plugin):  # also registered process-wide: called once
            continue
        try:
            manager.register(plugin)
        except Exception as exc:
            raise PluginError(
                f"Cannot use {plugin!r} as a runtime plugin: {type(exc).__name__}: {one_line(exc, None)}"
            ) from exc
    return manager
