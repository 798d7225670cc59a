"""Plugin discovery (entry-point group ``edgecv``), isolation, and the objects plugins register.

``EDGECV_PLUGINS=a,b`` loads only the named entry points (empty: none; a name that is not
installed is a ``ConfigError``); ``EDGECV_DISABLE_PLUGINS=a`` skips some. A plugin that fails to
import or to register its backends, exporters or decoders is recorded (``edgecv backends`` shows
it) and reported in one warning; the core and the other plugins go on. That holds for any
exception, ``SystemExit`` (``sys.exit()`` at import) and a ``KeyboardInterrupt`` the plugin raises
itself too; a Ctrl-C the user presses while plugins load still interrupts (``_UserInterrupts``).

A backend name (or export format) belongs to the plugin that registered it first; a later plugin
registering the same one is refused, recorded as a conflict and reported in one warning naming
both, so no plugin can silently take over ``--backend onnx``.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import threading
import warnings
from collections.abc import Callable
from types import FrameType, ModuleType, TracebackType
from typing import Any

import attrs
import pluggy

from edgecv import hookspecs
from edgecv.backends import Backend, Exporter
from edgecv.decoders.base import Decoder
from edgecv.errors import PluginError, one_line
from edgecv.validation import unknown_names

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
    conflicts: tuple[str, ...] = ()
    """What this plugin registered that another plugin had registered first (and was refused)."""

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
    message = one_line(exc, None)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class _UserInterrupts:
    """Tells a Ctrl-C the user pressed while plugins load from a ``KeyboardInterrupt`` a plugin
    raised itself (at import or in a registration hook), which only breaks that plugin.

    In the main thread the current SIGINT handler is wrapped for the duration, to note a real
    Ctrl-C and then do what it did. Elsewhere, or when SIGINT is ignored or left to the OS, no
    signal ever becomes a ``KeyboardInterrupt``: any one seen comes from a plugin.
    """

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None

    def __enter__(self) -> _UserInterrupts:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if callable(previous):
                self._previous = previous
                try:
                    signal.signal(signal.SIGINT, self._noted)
                except ValueError:  # not the main interpreter: no Python signal handlers there
                    self._previous = None
        return self

    def _noted(self, signum: int, frame: FrameType | None) -> None:
        self.pressed = True
        self._previous(signum, frame)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def plugin_failed(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the plugin's failure, not the user's Ctrl-C to pass on."""
        return not (isinstance(exc, KeyboardInterrupt) and self.pressed)


def _load_entry_points(manager: pluggy.PluginManager, interrupts: _UserInterrupts) -> list[PluginRecord]:
    only = _names_from_env("EDGECV_PLUGINS")
    disabled = _names_from_env("EDGECV_DISABLE_PLUGINS") or set()
    records = []
    seen: dict[str, PluginRecord] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if (only is not None and entry_point.name not in only) or entry_point.name in disabled:
            seen.setdefault(entry_point.name, _record(entry_point))
            continue
        record = _record(entry_point)
        first = seen.setdefault(entry_point.name, record)
        if first is not record:  # another distribution uses the name: the first one found keeps it
            taken = f"entry-point name {record.name!r} is taken by {first.distribution} {first.version}"
            records.append(attrs.evolve(record, error=f"{taken}; not loaded"))
            continue
        try:
            manager.register(entry_point.load(), name=entry_point.name)
        except BaseException as exc:  # any failure inside a plugin stays inside that plugin
            if not interrupts.plugin_failed(exc):
                raise
            record = attrs.evolve(record, error=_describe(exc))
        records.append(record)
    if only is not None and only - set(seen):
        raise unknown_names(
            "plugin in EDGECV_PLUGINS",
            only - set(seen),
            sorted(seen),
            "Name installed plugins only, or unset EDGECV_PLUGINS to load them all.",
            "plugins in EDGECV_PLUGINS",
        )
    return records


def _record(entry_point: importlib.metadata.EntryPoint) -> PluginRecord:
    dist = entry_point.dist
    return PluginRecord(
        name=entry_point.name,
        distribution=dist.metadata["Name"] if dist else "?",
        version=dist.version if dist else "?",
        module=entry_point.value,
    )


def _registrations(
    manager: pluggy.PluginManager, plugin_name: str, interrupts: _UserInterrupts | None = None
) -> Registered:
    """Call ``plugin_name``'s ``edgecv_register_*`` hooks; raise ``PluginError`` if one fails.

    With ``interrupts`` (entry points) a ``BaseException`` is the plugin's failure too, unless it is
    the user's Ctrl-C; without (an app's own plugin) only an ``Exception`` is."""
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
            except BaseException as exc:
                if not isinstance(exc, Exception) and (
                    interrupts is None or not interrupts.plugin_failed(exc)
                ):
                    raise
                raise PluginError(f"{hook_name} raised {_describe(exc)}") from exc
    return found


def _checked(value: Any, kind: type[Any]) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"register() takes a {kind.__name__}, got {type(value).__name__}")
    return value


def _owned(value: Any, kind: type[Backend] | type[Exporter], plugin_name: str) -> Any:
    return attrs.evolve(_checked(value, kind), plugin=plugin_name)


def _collect(
    manager: pluggy.PluginManager, records: list[PluginRecord], interrupts: _UserInterrupts
) -> tuple[Registered, list[PluginRecord]]:
    registered = Registered()
    by_plugin: dict[str, Registered] = {}
    errors: dict[str, str] = {}
    # pluggy calls the last registered plugin first: the entry points' decoders precede the core's.
    names = [name for name, _ in reversed(manager.list_name_plugin())]
    for name in names:
        try:
            found = _registrations(manager, name, interrupts)
        except PluginError as exc:
            errors[name] = str(exc)
            manager.unregister(name=name)
            continue
        by_plugin[name] = found
        registered.decoders.extend(found.decoders)
    conflicts: dict[str, list[str]] = {}
    for name in reversed(names):  # registration order: the first to register a name keeps it
        if name in by_plugin:
            _take(registered, by_plugin[name], conflicts.setdefault(name, []))
    updated = []
    for record in records:
        updated.append(
            attrs.evolve(
                record,
                error=record.error or errors.get(record.name),
                backends=tuple(b.name for b in registered.backends if b.plugin == record.name),
                exporters=tuple(e.format for e in registered.exporters if e.plugin == record.name),
                conflicts=tuple(conflicts.get(record.name, ())),
            )
        )
    return registered, updated


def _take(registered: Registered, found: Registered, conflicts: list[str]) -> None:
    """Add ``found``'s backends and exporters to ``registered``, except a name (format) already
    there: that one is described in ``conflicts`` and dropped."""
    backends = {b.name: b.plugin for b in registered.backends}
    for backend in found.backends:
        if backend.name in backends:
            conflicts.append(
                f"backend {backend.name!r} (plugin {backends[backend.name]!r} registered it first)"
            )
        else:
            backends[backend.name] = backend.plugin
            registered.backends.append(backend)
    exporters = {e.format.lower(): e.plugin for e in registered.exporters}
    for exporter in found.exporters:
        owner = exporters.get(exporter.format.lower())
        if owner is not None:
            conflicts.append(f"export format {exporter.format!r} (plugin {owner!r} registered it first)")
        else:
            exporters[exporter.format.lower()] = exporter.plugin
            registered.exporters.append(exporter)


def _build() -> PluginState:
    from edgecv import defaults

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(defaults, name=DEFAULTS_NAME)
    with _UserInterrupts() as interrupts:
        records = _load_entry_points(manager, interrupts)
        registered, records = _collect(manager, records, interrupts)
    broken = [r for r in records if not r.ok]
    if broken:
        details = "; ".join(f"{r.name} ({r.error})" for r in broken)
        warnings.warn(
            f"skipped broken edgecv plugin(s): {details}. "
            "Reinstall or disable them with EDGECV_DISABLE_PLUGINS.",
            PluginWarning,
            stacklevel=3,
        )
    clashing = [r for r in records if r.conflicts]
    if clashing:
        details = "; ".join(f"{r.name}: {', '.join(r.conflicts)}" for r in clashing)
        warnings.warn(
            f"refused what edgecv plugin(s) registered under a name already taken: {details}. "
            "Uninstall one of each pair or disable it with EDGECV_DISABLE_PLUGINS.",
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
        taken = Registered(list(current.registered.backends), list(current.registered.exporters))
        conflicts: list[str] = []
        _take(taken, found, conflicts)
        if conflicts:
            current.manager.unregister(name=plugin_name)
            raise PluginError(
                f"Plugin {plugin_name!r} registers a name already taken: {', '.join(conflicts)}",
                "Give its backend or exporter another name, or unregister the other plugin first.",
            )
        current.registered.backends[:] = taken.backends
        current.registered.exporters[:] = taken.exporters
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
