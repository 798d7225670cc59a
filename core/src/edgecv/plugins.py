"""Plugin discovery (entry-point group ``edgecv``), isolation, and the backends they declare.

``EDGECV_PLUGINS=a,b`` loads only the named entry points (empty: none);
``EDGECV_DISABLE_PLUGINS=a`` skips some. A plugin that fails to import, register or declare
its backends is recorded (``edgecv backends`` shows it) and reported in one warning; the core
and the other plugins go on.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import warnings
from typing import Any

import attrs
import pluggy

from edgecv import hookspecs
from edgecv.backends import BackendInfo
from edgecv.errors import PluginError

ENTRY_POINT_GROUP = hookspecs.ENTRY_POINT_GROUP


class PluginWarning(UserWarning):
    """A plugin was skipped because it failed to load."""


@attrs.frozen
class PluginRecord:
    """One entry point of the ``edgecv`` group and what became of it."""

    name: str
    distribution: str
    version: str
    module: str
    error: str | None = None
    backends: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@attrs.define
class PluginState:
    manager: pluggy.PluginManager
    records: list[PluginRecord]
    backends: list[BackendInfo]


_lock = threading.Lock()
_state: PluginState | None = None


def _names_from_env(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _load_entry_points(manager: pluggy.PluginManager) -> list[PluginRecord]:
    only = _names_from_env("EDGECV_PLUGINS")
    disabled = _names_from_env("EDGECV_DISABLE_PLUGINS") or set()
    records = []
    seen: set[str] = set()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in seen:
            continue
        seen.add(entry_point.name)
        if (only is not None and entry_point.name not in only) or entry_point.name in disabled:
            continue
        dist = entry_point.dist
        record = PluginRecord(
            name=entry_point.name,
            distribution=dist.metadata["Name"] if dist else "?",
            version=dist.version if dist else "?",
            module=entry_point.value,
        )
        try:
            manager.register(entry_point.load(), name=entry_point.name)
        except Exception as exc:  # any failure inside a plugin stays inside that plugin
            record = attrs.evolve(record, error=_one_line(exc))
        records.append(record)
    return records


def _collect_backends(
    manager: pluggy.PluginManager, records: list[PluginRecord]
) -> tuple[list[BackendInfo], list[PluginRecord]]:
    backends: list[BackendInfo] = []
    by_plugin: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for impl in manager.hook.edgecv_register_backends.get_hookimpls():
        found: list[BackendInfo] = []
        try:
            impl.function(register=found.append)
        except Exception as exc:
            errors[impl.plugin_name] = f"edgecv_register_backends raised {_one_line(exc)}"
            manager.unregister(name=impl.plugin_name)
            continue
        for info in found:
            backends.append(attrs.evolve(info, plugin=impl.plugin_name))
            by_plugin.setdefault(impl.plugin_name, []).append(info.name)
    updated = [
        attrs.evolve(r, error=r.error or errors.get(r.name), backends=tuple(by_plugin.get(r.name, ())))
        for r in records
    ]
    return backends, updated


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _build() -> PluginState:
    from edgecv import defaults

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(defaults, name="edgecv.defaults")
    records = _load_entry_points(manager)
    backends, records = _collect_backends(manager, records)
    broken = [r for r in records if not r.ok]
    if broken:
        details = "; ".join(f"{r.name} ({r.error})" for r in broken)
        warnings.warn(
            f"skipped broken edgecv plugin(s): {details}. "
            "Reinstall or disable them with EDGECV_DISABLE_PLUGINS.",
            PluginWarning,
            stacklevel=3,
        )
    return PluginState(manager, records, backends)


def state() -> PluginState:
    """The loaded plugins, built on first use and then shared."""
    global _state
    with _lock:
        if _state is None:
            _state = _build()
        return _state


def plugin_manager() -> pluggy.PluginManager:
    return state().manager


def backends() -> list[BackendInfo]:
    return list(state().backends)


def plugin_records() -> list[PluginRecord]:
    return list(state().records)


def register(plugin: Any, name: str | None = None) -> None:
    """Register an in-process plugin (an app's own hooks) and the backends it declares.

    Unlike entry-point plugins, a failure here is the caller's: the plugin is unregistered again
    and ``PluginError`` is raised.
    """
    current = state()
    try:
        plugin_name = current.manager.register(plugin, name=name)
    except Exception as exc:
        raise PluginError(f"Cannot register plugin {name or plugin!r}: {_one_line(exc)}") from exc
    if plugin_name is None:
        return
    found: list[BackendInfo] = []
    for impl in current.manager.hook.edgecv_register_backends.get_hookimpls():
        if impl.plugin_name == plugin_name:
            try:
                impl.function(register=found.append)
            except Exception as exc:
                current.manager.unregister(name=plugin_name)
                raise PluginError(
                    f"Plugin {plugin_name!r} failed to declare its backends: {_one_line(exc)}"
                ) from exc
    current.backends.extend(attrs.evolve(info, plugin=plugin_name) for info in found)


def unregister(plugin: Any) -> None:
    current = state()
    name = current.manager.get_name(plugin)
    current.manager.unregister(plugin)
    current.backends[:] = [b for b in current.backends if b.plugin != name]


def reset() -> None:
    """Forget loaded plugins so the next use reads entry points and environment again."""
    global _state
    with _lock:
        _state = None
