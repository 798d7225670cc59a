"""Backends declared by plugins, and how ``backend="auto"`` chooses one for a model file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from edgecv.errors import BackendError
from edgecv.spec import to_tuple


@attrs.frozen
class Availability:
    """Whether a backend can run here; ``reason`` says why not, ``hint`` what to install."""

    available: bool
    reason: str = ""
    hint: str = ""


def _always_available() -> Availability:
    return Availability(True)


@attrs.frozen
class BackendInfo:
    """A backend a plugin provides. Declared through ``edgecv_register_backends``.

    ``formats`` are file suffixes (``".onnx"``) or, for models stored as folders, the suffix of
    a file inside the folder; ``accepts`` may refine that for layouts suffixes cannot describe.
    Higher ``priority`` wins for ``backend="auto"`` among available backends that accept a file.
    ``check`` must be cheap and must not import the runtime when it can avoid it.
    """

    name: str
    formats: tuple[str, ...] = attrs.field(converter=to_tuple)
    priority: int = 0
    check: Callable[[], Availability] = _always_available
    description: str = ""
    install_hint: str = ""
    accepts: Callable[[Path], bool] | None = None
    plugin: str = ""
    """Filled in by the core: the plugin that registered this backend."""

    def accepts_path(self, path: Path) -> bool:
        if self.accepts is not None:
            return bool(self.accepts(path))
        if path.is_dir():
            return any(any(p.name.endswith(fmt) for fmt in self.formats) for p in path.iterdir())
        return any(path.name.lower().endswith(fmt) for fmt in self.formats)

    def availability(self) -> Availability:
        try:
            return self.check()
        except Exception as exc:  # a broken check must not break the listing
            return Availability(False, f"availability check failed: {exc}", self.install_hint)


def select_backend(backends: Sequence[BackendInfo], requested: str, path: Path) -> BackendInfo:
    """The backend named by ``requested``, or for ``"auto"`` the best available one for ``path``."""
    by_name = {b.name: b for b in backends}
    installed = ", ".join(sorted(by_name)) or "none"
    if requested != "auto":
        info = by_name.get(requested)
        if info is None:
            raise BackendError(
                f"Unknown backend {requested!r} (installed: {installed})",
                f"Install the plugin that provides it (e.g. pip install edgecv-{requested}) "
                "or choose one of the installed backends.",
            )
        status = info.availability()
        if not status.available:
            raise BackendError(
                f"Backend {requested!r} is not available: {status.reason}",
                status.hint or info.install_hint,
            )
        return info
    candidates = [b for b in backends if b.accepts_path(path)]
    if not candidates:
        raise BackendError(
            f"No installed backend reads {path.name} (installed: {installed})",
            "Install the plugin for this model format (e.g. pip install edgecv-onnx for .onnx files).",
        )
    available = [b for b in candidates if b.availability().available]
    if not available:
        best = max(candidates, key=lambda b: b.priority)
        status = best.availability()
        raise BackendError(
            f"Backend {best.name!r} reads {path.name} but is not available: {status.reason}",
            status.hint or best.install_hint,
        )
    return max(available, key=lambda b: b.priority)
