"""Which plugins see a run: the process-wide ones plus that ``Runtime``'s own, on a manager of its own.

The runtime's hooks are added to the process-wide manager on first use (``service_manager``):
``edgecv_event_sink`` is asked there. The observers (``edgecv_on_result``, ``edgecv_on_events``,
``edgecv_on_throttle``, ``edgecv_on_restart``) are called on a manager built per run
(``run_manager``), so that two runtimes in one process, one thread each, never see each other's
frames.

That manager calls each observer implementation on its own, so a failing one is named and the
others are still called:

- ``edgecv_on_result``: the failure stops the run as a ``PluginError`` naming the plugin (an
  output that cannot write must not pretend to run); an ``EdgecvError`` the plugin raised itself,
  already a clear message, and ``BrokenPipeError`` (``edgecv run --json | head``) pass unchanged.
- ``edgecv_on_events``, ``edgecv_on_throttle``, ``edgecv_on_restart``: notifications about what
  already happened (the events are committed and will be synced): the failure is logged as a
  warning naming the plugin, once per plugin and hook (then at debug level), and the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import pluggy

from edgecv import plugins
from edgecv.errors import ConfigError, EdgecvError, PluginError, one_line
from edgecv.hookspecs import PROJECT_NAME
from edgecv.runtime import defaults, hookspecs

if TYPE_CHECKING:
    from edgecv.events.sinks import EventSink

log = logging.getLogger(__name__)

STOPPING = frozenset({"edgecv_on_result"})
"""Observer hooks whose failure stops the run."""
CONTINUING = frozenset({"edgecv_on_events", "edgecv_on_throttle", "edgecv_on_restart"})
"""Observer hooks whose failure is logged, and the run goes on."""


def service_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager with the runtime's hookspecs and defaults added (once)."""
    return plugins.add_hookspecs(hookspecs, defaults)


def open_sink(url: str, options: Mapping[str, Any] | None = None) -> EventSink:
    """The sink for ``url`` from the first plugin that provides one (the core's last).

    The caller owns the sink and closes it.
    """
    sink: EventSink | None = service_manager().hook.edgecv_event_sink(url=url, options=dict(options or {}))
    if sink is None:
        from edgecv.urls import redact

        raise ConfigError(
            f"No sink for {redact(url)!r}: use http(s):// or mqtt:// or install a plugin that provides it"
        )
    return sink


def run_manager(own: Sequence[object]) -> pluggy.PluginManager:
    """A manager for one run: the plugins registered process-wide now (a snapshot), then ``own``.

    Raises ``PluginError`` when one of ``own`` does not match the runtime's hookspecs.
    """
    shared = service_manager()
    manager = _RunManager(PROJECT_NAME)
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


class _RunManager(pluggy.PluginManager):
    """A plugin manager that calls each implementation of an observer hook on its own (in hook
    order, through pluggy, so ``wrapper`` implementations still work; there they wrap only
    themselves) and handles its failure as the module docstring says."""

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        self._warned: set[tuple[str, str]] = set()

    def _hookexec(
        self,
        hook_name: str,
        methods: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, object],
        firstresult: bool,
    ) -> object | list[object]:
        # pluggy's one entry for every hook call (stable since pluggy 1.0): one call per method here.
        if hook_name not in STOPPING and hook_name not in CONTINUING:
            return super()._hookexec(hook_name, methods, kwargs, firstresult)
        results: list[object] = []
        failed: tuple[pluggy.HookImpl, Exception] | None = None
        for method in reversed(methods):  # pluggy's order: the last registered first
            try:
                done = super()._hookexec(hook_name, [method], kwargs, firstresult)
            except Exception as exc:
                if hook_name in STOPPING:
                    failed = failed or (method, exc)  # the others still see this frame
                else:
                    self._warn(hook_name, method, exc)
            else:
                results.extend(done if isinstance(done, list) else [done])
        if failed is not None:
            _stop(hook_name, *failed)
        return results

    def _warn(self, hook_name: str, method: pluggy.HookImpl, exc: Exception) -> None:
        what = _failure(hook_name, method, exc)
        key = (method.plugin_name, hook_name)
        if key in self._warned:
            log.debug("%s", what, exc_info=exc)
            return
        self._warned.add(key)
        log.warning(
            "%s; the run goes on (further failures of it are logged at debug level)", what, exc_info=exc
        )


def _stop(hook_name: str, method: pluggy.HookImpl, exc: Exception) -> NoReturn:
    if isinstance(exc, (EdgecvError, BrokenPipeError)):
        raise exc
    raise PluginError(
        _failure(hook_name, method, exc),
        "Fix or remove the plugin (EDGECV_DISABLE_PLUGINS=NAME for an installed one); "
        "run with --debug for the traceback.",
    ) from exc


def _failure(hook_name: str, method: pluggy.HookImpl, exc: Exception) -> str:
    name = _plugin_label(method.plugin_name, method.plugin)
    return f"plugin {name!r} failed in {hook_name}: {type(exc).__name__}: {one_line(exc, 300)}"


def _plugin_label(registered_as: str, plugin: object) -> str:
    """How a plugin is named in messages: its entry-point or given name, else its class (pluggy
    names an object registered without a name by its ``id``)."""
    if registered_as != str(id(plugin)):
        return registered_as
    return getattr(plugin, "__name__", None) or type(plugin).__qualname__
