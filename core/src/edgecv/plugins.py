"""Plugin discovery (entry-point group ``edgecv``), isolation, and the objects plugins register.

``EDGECV_PLUGINS=a,b`` loads only the named entry points (empty: none);
``EDGECV_DISABLE_PLUGINS=a`` skips some. A plugin that fails to import or to register its
backends, exporters or decoders is recorded (``edgecv backends`` shows it) and reported in one
warning; the core and the other plugins go on.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import attrs
import pluggy

from edgecv import hookspecs
from edgecv.backends import Backend, Exporter
from edgecv.decoders.base import Decoder
from edgecv.errors import PluginError, one_line

ENTRY_POINT_GROUP = hookspecs.ENTRY_POINT_GROUP
DEFAULTS_NAME = "edgecv.defaults"


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
    exporters: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@attrs.define
class Registered:
    """What one plugin registered through the ``edgecv_register_*`` hooks."""

    backends: list[Backend] = attrs.Factory(list)
    exporters: list[Exporter] = attrs.Factory(list)
    decoders: list[tuple[str, Decoder]] = attrs.Factory(list)
    """(plugin name, decoder): decoders carry no owner of their own."""

    def extend(self, other: Registered) -> None:
        self.backends.extend(other.backends)
        self.exporters.extend(other.exporters)
        self.decoders.extend(other.decoders)


@attrs.define
class PluginState:
    manager: pluggy.PluginManager
    records: list[PluginRecord]
    registered: Registered
    hookspec_modules: set[str] = attrs.Factory(set)


_lock = threading.RLock()
_state: PluginState | None = None


def _names_from_env(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {one_line(exc, None)}"


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
            record = attrs.evolve(record, error=_describe(exc))
        records.append(record)
    return records


def _registrations(manager: pluggy.PluginManager, plugin_name: str) -> Registered:
    """Call ``plugin_name``'s ``edgecv_register_*`` hooks; raise ``PluginError`` if one fails."""
    found = Registered()
    hooks: tuple[tuple[str, Callable[[Any], None]], ...] = (
        ("edgecv_register_backends", lambda b: found.backends.append(_owned(b, Backend, plugin_name))),
        ("edgecv_register_exporters", lambda e: found.exporters.append(_owned(e, Exporter, plugin_name))),
        ("edgecv_register_decoders", lambda d: found.decoders.append((plugin_name, _checked(d, Decoder)))),
    )
    for hook_name, register in hooks:
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            if impl.plugin_name != plugin_name:
                continue
            try:
                impl.function(register=register)
            except Exception as exc:
                raise PluginError(f"{hook_name} raised {_describe(exc)}") from exc
    return found


def _checked(value: Any, kind: type[Any]) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"register() takes a {kind.__name__}, got {type(value).__name__}")
    return value


def _owned(value: Any, kind: type[Backend] | type[Exporter], plugin_name: str) -> Any:
    return attrs.evolve(_checked(value, kind), plugin=plugin_name)


def _collect(
    manager: pluggy.PluginManager, records: list[PluginRecord]
) -> tuple[Registered, list[PluginRecord]]:
    registered = Registered()
    by_plugin: dict[str, Registered] = {}
    errors: dict[str, str] = {}
    # pluggy calls the last registered plugin first: the entry points' decoders precede the core's.
    names = [name for name, _ in reversed(manager.list_name_plugin())]
    for name in names:
        try:
            found = _registrations(manager, name)
        except PluginError as exc:
            errors[name] = str(exc)
            manager.unregister(name=name)
            continue
        by_plugin[name] = found
        registered.extend(found)
    updated = []
    for record in records:
        found = by_plugin.get(record.name, Registered())
        updated.append(
            attrs.evolve(
                record,
                error=record.error or errors.get(record.name),
                backends=tuple(b.name for b in found.backends),
                exporters=tuple(e.format for e in found.exporters),
            )
        )
    return registered, updated


def _build() -> PluginState:
    from edgecv import defaults

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(defaults, name=DEFAULTS_NAME)
    records = _load_entry_points(manager)
    registered, records = _collect(manager, records)
    broken = [r for r in records if not r.ok]
    if broken:
        details = "; ".join(f"{r.name} ({r.error})" for r in broken)
        warnings.warn(
            f"skipped broken edgecv plugin(s): {details}. "
            "Reinstall or disable them with EDGECV_DISABLE_PLUGINS.",
            PluginWarning,
            stacklevel=3,
        )
    return PluginState(manager, records, registered)


def state() -> PluginState:
    """The loaded plugins, built on first use and then shared."""
    global _state
    with _lock:
        if _state is None:
            _state = _build()
        return _state


def plugin_manager() -> pluggy.PluginManager:
    return state().manager


def add_hookspecs(module: ModuleType, defaults: object | None = None) -> pluggy.PluginManager:
    """Add a service's own hook specifications (and its ``trylast`` defaults) to the manager, once.

    The runtime's hooks are not part of the pipeline's: ``edgecv.runtime`` adds them when it is
    used, so the pipeline never imports the service.
    """
    current = state()
    with _lock:
        if module.__name__ not in current.hookspec_modules:
            current.manager.add_hookspecs(module)
            if defaults is not None:
                current.manager.register(defaults, name=f"{module.__name__}.defaults")
            current.hookspec_modules.add(module.__name__)
    return current.manager


def backends() -> list[Backend]:
    return list(state().registered.backends)


def exporters() -> list[Exporter]:
    return list(state().registered.exporters)


def decoders() -> list[Decoder]:
    return [decoder for _, decoder in state().registered.decoders]


def plugin_records() -> list[PluginRecord]:
    return list(state().records)


def register(plugin: Any, name: str | None = None) -> None:
    """Register an in-process plugin (an app's own hooks) and what it registers.

    Unlike entry-point plugins, a failure here is the caller's: the plugin is unregistered again
    and ``PluginError`` is raised. Its decoders are tried before those registered earlier.
    """
    current = state()
    try:
        plugin_name = current.manager.register(plugin, name=name)
    except Exception as exc:
        raise PluginError(f"Cannot register plugin {name or plugin!r}: {_describe(exc)}") from exc
    if plugin_name is None:
        return
    try:
        found = _registrations(current.manager, plugin_name)
    except PluginError as exc:
        current.manager.unregister(name=plugin_name)
        raise PluginError(f"Plugin {plugin_name!r} failed to register: {exc}") from exc
    with _lock:
        current.registered.backends.extend(found.backends)
        current.registered.exporters.extend(found.exporters)
        current.registered.decoders[:0] = found.decoders


def unregister(plugin: Any) -> None:
    current = state()
    name = current.manager.get_name(plugin)
    current.manager.unregister(plugin)
    with _lock:
        registered = current.registered
        registered.backends[:] = [b for b in registered.backends if b.plugin != name]
        registered.exporters[:] = [e for e in registered.exporters if e.plugin != name]
        registered.decoders[:] = [(owner, d) for owner, d in registered.decoders if owner != name]


def reset() -> None:
    """Forget loaded plugins so the next use reads entry points and environment again."""
    global _state
    with _lock:
        _state = None
