"""What a plugin registers: backends that open sessions, and exporters that write model files.

A ``Backend`` is an object, not a set of hooks that decline by name: the core chooses one for a
model file (``select_backend``), calls its ``open`` (through the ``edgecv_load`` hook, so an app
can intercept it) and from then on talks to the ``Session`` it returned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.devices import json_ready
from edgecv.errors import BackendError, one_line
from edgecv.install_hints import pip_hint
from edgecv.spec import SessionSpec, to_tuple

log = logging.getLogger(__name__)

Outputs = list[npt.NDArray[np.float32]]

MAX_DEFAULT_IN_FLIGHT = 64
"""A session's ``depth`` is capped at this (an explicit ``in_flight`` is not): each frame in
flight holds a decoded image, so an absurd depth from a plugin must not fill the memory."""
DESCRIBE_TIMEOUT_S = 5.0
"""``Backend.devices()`` waits this long for a plugin's ``describe`` (a busy or hung device)."""


@runtime_checkable
class Session(Protocol):
    """A model opened by a backend's runtime.

    ``spec`` describes the tensors and metadata the file declares; ``run`` returns the raw outputs
    as float32 arrays in the order of ``spec.outputs`` (quantized outputs dequantized); ``bare``
    is the runtime's own call on a prepared tensor with nothing of edgecv around it (what a
    hand-written script would call; ``edgecv bench`` times it to measure edgecv's overhead);
    ``close`` releases the runtime's resources.
    """

    @property
    def spec(self) -> SessionSpec: ...

    def run(self, tensor: npt.NDArray[Any]) -> Outputs: ...

    @property
    def bare(self) -> Callable[[npt.NDArray[Any]], object]: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncSession(Session, Protocol):
    """A session that keeps several frames in flight (accelerator queues, CUDA streams).

    ``submit`` starts a run and returns at once; the future resolves to what ``run`` would have
    returned (completion callbacks may run in the runtime's own thread: keep them short).
    ``Model.submit`` uses it, so a caller keeps several frames in flight. ``depth`` is how many
    frames are worth keeping in flight (the device's queue, or twice its batch size): ``edgecv
    run`` and ``edgecv bench`` keep that many unless told otherwise (``frames_in_flight``).
    """

    def submit(self, tensor: npt.NDArray[Any]) -> Future[Outputs]: ...

    @property
    def depth(self) -> int: ...


@runtime_checkable
class DeviceSession(Session, Protocol):
    """A session on an accelerator that describes the device and reads its temperature.

    ``device()`` is a JSON-ready mapping, e.g. ``{"device": "Hailo-8L", "firmware": "4.20.0",
    "hailort": "4.20.0"}`` (``edgecv bench`` reports it); ``temperature()`` is the chip's °C, or
    ``None`` when unreadable (the thermal governor and ``edgecv bench`` read it). Both are called
    from the caller's thread while frames are in flight: keep them cheap and thread-safe.
    """

    def device(self) -> Mapping[str, Any]: ...

    def temperature(self) -> float | None: ...


def frames_in_flight(session: Session, requested: int | None = None) -> int:
    """Frames to keep in flight on ``session``: ``requested`` when given, else the session's
    ``depth`` (at least 2, at most ``MAX_DEFAULT_IN_FLIGHT``); 1 for a synchronous session."""
    if requested is not None:
        return requested
    if not isinstance(session, AsyncSession):
        return 1
    try:
        depth = session.depth
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise TypeError(f"depth is {type(depth).__name__}, not int")
    except Exception as exc:  # a plugin's broken property must not stop the run
        log.warning("session depth unreadable (%s); keeping 2 frames in flight", one_line(exc))
        return 2
    return min(max(depth, 2), MAX_DEFAULT_IN_FLIGHT)


@attrs.frozen
class Availability:
    """Whether a backend can run here; ``reason`` says why not, ``hint`` what to install."""

    available: bool
    reason: str = ""
    hint: str = ""


def _always_available() -> Availability:
    return Availability(True)


Opener = Callable[[Path, Mapping[str, Any]], Session]


@attrs.frozen
class Backend:
    """A runtime a plugin provides, registered with ``register(Backend(...))``.

    ``open(path, options)`` returns a ``Session``; import the runtime inside it, not at module
    import time. ``formats`` are file suffixes (``".onnx"``) or, for models stored as folders, the
    suffix of a file inside the folder; ``accepts`` may refine that. Higher ``priority`` wins for
    ``backend="auto"`` among available backends that accept a file. ``check`` must be cheap and
    must not import the runtime when it can avoid it. ``describe``, for an accelerator, describes
    the attached devices without loading a model (``edgecv doctor`` shows it), e.g.
    ``{"device": "Hailo-8L", "firmware": "4.20.0", "hailort": "4.20.0", "temperature_c": 51.0}``.
    """

    name: str
    open: Opener
    formats: tuple[str, ...] = attrs.field(default=(), converter=to_tuple)
    priority: int = 0
    check: Callable[[], Availability] = _always_available
    description: str = ""
    install_hint: str = ""
    accepts: Callable[[Path], bool] | None = None
    describe: Callable[[], Mapping[str, Any]] | None = None
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

    def devices(self, timeout_s: float = DESCRIBE_TIMEOUT_S) -> dict[str, Any] | None:
        """``describe()`` made JSON-ready (``None`` without one). A describe that raises, returns
        something else than a mapping or hangs past ``timeout_s`` gives ``{"error": one line}``:
        it must not break ``edgecv doctor``."""
        describe = self.describe
        if describe is None:
            return None
        answer: list[dict[str, Any]] = []

        def ask() -> None:
            try:
                answer.append(json_ready(describe(), "describe()"))
            except Exception as exc:
                answer.append({"error": one_line(f"describe() failed: {type(exc).__name__}: {exc}")})

        # A daemon thread: a device that never answers is left behind, not waited for at exit.
        asking = threading.Thread(target=ask, name=f"describe-{self.name}", daemon=True)
        asking.start()
        asking.join(timeout_s)
        return answer[0] if answer else {"error": f"describe() gave no answer in {timeout_s:g} s"}


@attrs.frozen
class Exporter:
    """Writes one target format (``edgecv export --to FORMAT``), registered with ``register(Exporter(...))``.

    ``export(source, output, options)`` converts the ONNX model ``source`` and returns the file or
    folder it wrote; ``options`` holds precision, image size and calibration settings (parse them
    with ``ExportOptions.parse``). Import heavy converters inside it.
    """

    format: str
    export: Callable[[Path, Path, Mapping[str, Any]], Path]
    description: str = ""
    plugin: str = ""
    """Filled in by the core: the plugin that registered this exporter."""


# edgecv's own backends and the package of each, for the hint when one is asked for and missing.
EDGECV_BACKENDS = {
    "onnx": "edgecv-onnx",
    "ncnn": "edgecv-ncnn",
    "tflite": "edgecv-tflite",
    "edgetpu": "edgecv-tflite",
    "tensorrt": "edgecv-tensorrt",
    "hailo": "edgecv-hailo",
    "openvino": "edgecv-openvino",
}


def select_backend(backends: Sequence[Backend], requested: str, path: Path) -> Backend:
    """The backend named by ``requested``, or for ``"auto"`` the best available one for ``path``."""
    by_name = {b.name: b for b in backends}
    installed = ", ".join(sorted(by_name)) or "none"
    if requested != "auto":
        backend = by_name.get(requested)
        if backend is None:
            raise BackendError(
                f"Unknown backend {requested!r} (installed: {installed})",
                f"Install its plugin ({pip_hint(EDGECV_BACKENDS[requested])}) "
                "or choose one of the installed backends."
                if requested in EDGECV_BACKENDS
                else "Install the plugin that provides it, or choose one of the installed backends.",
            )
        status = backend.availability()
        if not status.available:
            raise BackendError(
                f"Backend {requested!r} is not available: {status.reason}",
                status.hint or backend.install_hint,
            )
        return backend
    candidates = [b for b in backends if b.accepts_path(path)]
    if not candidates:
        raise BackendError(
            f"No installed backend reads {path.name} (installed: {installed})",
            f"Install the plugin for this model format (.onnx files: {pip_hint('edgecv-onnx')}).",
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


def select_exporter(exporters: Sequence[Exporter], target: str) -> Exporter:
    """The exporter registered for ``target`` (case-insensitive)."""
    by_format = {e.format.lower(): e for e in exporters}
    exporter = by_format.get(target.lower())
    if exporter is None:
        known = ", ".join(sorted(by_format)) or "none"
        raise BackendError(
            f"No installed plugin exports to {target!r} (installed exporters: {known})",
            "Install the plugin for that format (see `edgecv backends`).",
        )
    return exporter
