"""Every edgecv hook, in pipeline order.

Plugins implement these with ``@edgecv.hookimpl`` in a module exposed through the entry-point
group ``edgecv``. The core's own defaults (letterbox preprocessing, YOLO decoders + NMS) are
ordinary ``trylast`` implementations in ``edgecv.defaults``, so overriding one is the same act as
providing it. Hooks take and return core types (``ModelSpec``, ``Detections``, numpy arrays), never
a runtime's objects, except the opaque ``session`` a backend hands back to itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from edgecv.backends import BackendInfo
    from edgecv.detections import Detections
    from edgecv.events.model import Event
    from edgecv.events.sinks import EventSink
    from edgecv.model import Model
    from edgecv.postprocess import PostprocessOptions
    from edgecv.preprocess import LetterboxInfo
    from edgecv.runtime.results import FrameResult
    from edgecv.runtime.thermal import ThrottleState
    from edgecv.spec import LoadedModel, ModelSpec

PROJECT_NAME = "edgecv"
ENTRY_POINT_GROUP = "edgecv"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- declaration -----------------------------------------------------------------------------


@hookspec
def edgecv_register_backends(register: Callable[[BackendInfo], None]) -> None:
    """Declare the backends this plugin provides by calling ``register(BackendInfo(...))``.

    Called once by the plugin manager after plugins are loaded, for every plugin. Each plugin's
    implementation is called in isolation: one that raises is reported as broken and the others
    still register. Return nothing.
    """


# --- export ----------------------------------------------------------------------------------


@hookspec(firstresult=True)
def edgecv_export(source: Path, target: str, output: Path, options: Mapping[str, Any]) -> Path | None:
    """Convert the ONNX model ``source`` into format ``target`` (e.g. ``"ncnn"``) at ``output``.

    Called by ``edgecv export``. Implement it only for the targets your plugin owns and return
    ``None`` for the others; the first non-``None`` result (the written file or folder) wins.
    ``options`` holds precision, image size, calibration settings. Raise ``EdgecvError`` with a
    hint when a tool is missing. Chains (torch -> ONNX -> X) are the CLI's job, not the plugin's.
    """


# --- load ------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def edgecv_load(backend: str, path: Path, options: Mapping[str, Any]) -> LoadedModel | None:
    """Open ``path`` with backend ``backend`` and describe its tensors.

    Called by ``edgecv.load`` once per model, after the backend was chosen. Return ``None`` when
    ``backend`` is not yours; the first non-``None`` result wins. ``options`` are the backend
    options the user passed (threads, providers, ...): reject unknown keys with ``ConfigError``.
    Raise ``ModelError`` (with a hint) for a file your runtime cannot read. Import the runtime
    here, not at module import time.
    """


@hookspec
def edgecv_on_model_loaded(model: Model) -> None:
    """Observer: ``model`` is ready. Called for every plugin once per ``edgecv.load``."""


# --- per frame -------------------------------------------------------------------------------


@hookspec(firstresult=True)
def edgecv_preprocess(
    image: npt.NDArray[np.uint8], spec: ModelSpec
) -> tuple[npt.NDArray[Any], LetterboxInfo] | None:
    """Turn a BGR ``image`` (H, W, 3, uint8) into the input tensor for ``spec``.

    Called by ``Model`` for every frame. Return ``(tensor, letterbox)`` where ``letterbox``
    records how the image was scaled and padded, or ``None`` to leave the frame to the next
    implementation. The first non-``None`` result wins; the core's letterbox is ``trylast``.
    """


@hookspec(firstresult=True)
def edgecv_infer(spec: ModelSpec, session: Any, tensor: npt.NDArray[Any]) -> list[npt.NDArray[Any]] | None:
    """Run ``session`` (returned by your ``edgecv_load``) on ``tensor``.

    Called by ``Model`` for every frame. Return the raw outputs as float32 numpy arrays in the
    order of ``spec.outputs`` (dequantize quantized outputs here), or ``None`` when
    ``spec.backend`` is not yours. The first non-``None`` result wins.
    """


@hookspec(firstresult=True)
def edgecv_bare_infer(spec: ModelSpec, session: Any) -> Callable[[npt.NDArray[Any]], object] | None:
    """Return a callable that runs the runtime itself on a prepared tensor, with no edgecv around it.

    Called by ``edgecv bench`` once per model to time the bare runtime on the same tensor as the
    pipeline, so the overhead ratio (end-to-end / bare) is measured, not guessed. The callable
    should be exactly what a hand-written script would call (e.g. ``session.run(names, feeds)``).
    Return ``None`` when ``spec.backend`` is not yours; the first non-``None`` result wins.
    """


@hookspec(firstresult=True)
def edgecv_postprocess(
    outputs: Sequence[npt.NDArray[Any]],
    spec: ModelSpec,
    letterbox: LetterboxInfo,
    options: PostprocessOptions,
) -> Detections | None:
    """Turn raw ``outputs`` into ``Detections`` in original-image pixels.

    Called by ``Model`` for every frame. Return ``None`` to leave it to the next implementation;
    the first non-``None`` result wins. The core's default (``trylast``) decodes with the decoder
    named by ``spec.arch``, runs class-aware NMS and undoes the letterbox. Override it for a
    backend with on-chip NMS or a custom head. Sorting by score is expected.
    """


@hookspec
def edgecv_on_detections(model: Model, image: npt.NDArray[np.uint8], detections: Detections) -> None:
    """Observer: ``detections`` were produced for ``image`` by ``model``.

    Called for every plugin after each frame, in the caller's thread. Keep it fast; hand slow
    work (uploads, disk) to your own thread. Exceptions propagate to the caller.
    """


# --- the running service (``edgecv run`` / ``edgecv.runtime.Runtime``) --------------------------


@hookspec
def edgecv_on_result(result: FrameResult) -> None:
    """Observer: one video frame went through the runtime (inferred, or tracked on a skipped frame).

    Called in the runtime's loop thread for every frame, in order. Keep it fast: a slow observer
    lowers the frame rate. Exceptions stop the run with the observer named in the error.
    """


@hookspec
def edgecv_on_events(events: Sequence[Event]) -> None:
    """Observer: ``events`` were just written to the event log (durably, before this call).

    Called in the loop thread after each batch is committed; the same events are synced to the
    sink in the background.
    """


@hookspec
def edgecv_on_throttle(state: ThrottleState) -> None:
    """Observer: the thermal throttle changed (factor, pause or resume), with the temperature."""


@hookspec
def edgecv_on_restart(reason: str, restarts: int) -> None:
    """Observer: the watchdog restarted part of the pipeline (stalled source, reconnect, crash).

    ``restarts`` is the number of restarts so far in this run, this one included.
    """


@hookspec(firstresult=True)
def edgecv_event_sink(url: str, options: Mapping[str, Any]) -> EventSink | None:
    """Return a sink that delivers events to ``url``, or ``None`` when the scheme is not yours.

    Called once per run for ``--sync URL``. The core ships ``http(s)://`` and ``mqtt://`` sinks as
    ``trylast`` implementations; a plugin provides another transport (or overrides one) by
    returning its own object with ``send(events)`` (return only after the receiver acknowledged
    every event; raise ``SyncError`` otherwise) and ``close()``.
    """
