"""The pipeline's hooks, in pipeline order: registration, export, load, preprocess, infer, postprocess.

Plugins implement these with ``@edgecv.hookimpl`` in a module exposed through the entry-point
group ``edgecv``. A plugin *provides* backends, exporters and decoders by registering objects
(the three ``edgecv_register_*`` hooks); the pipeline hooks are interception points. The core's
own implementations (open through the chosen ``Backend``, letterbox, ``session.run``, decode +
NMS) are ordinary ``trylast`` implementations in ``edgecv.defaults``, so a plugin or an app wraps
one stage (``wrapper=True``) or replaces it (return a result) without knowing which backends
exist. The running service's hooks (``edgecv_on_result`` ...) are in ``edgecv.runtime.hookspecs``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from edgecv.backends import Backend, Exporter, Outputs, Session
    from edgecv.decoders.base import Decoder
    from edgecv.detections import Detections
    from edgecv.model import Model
    from edgecv.postprocess import PostprocessOptions
    from edgecv.preprocess import LetterboxInfo
    from edgecv.spec import ModelSpec

PROJECT_NAME = "edgecv"
ENTRY_POINT_GROUP = "edgecv"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- declaration -----------------------------------------------------------------------------


@hookspec
def edgecv_register_backends(register: Callable[[Backend], None]) -> None:
    """Declare the backends this plugin provides by calling ``register(Backend(...))``.

    Called once per plugin when plugins are loaded. Each plugin's implementation is called in
    isolation: one that raises is reported as broken and the others still register. A backend
    name belongs to the plugin that registered it first: a later one with the same name is
    refused and reported in a warning naming both plugins (``edgecv backends`` lists it).
    """


@hookspec
def edgecv_register_exporters(register: Callable[[Exporter], None]) -> None:
    """Declare the formats this plugin writes by calling ``register(Exporter(...))``, one per format.

    Called once per plugin when plugins are loaded, in isolation like ``edgecv_register_backends``;
    a format already registered by another plugin (case-insensitive) is refused the same way.
    """


@hookspec
def edgecv_register_decoders(register: Callable[[Decoder], None]) -> None:
    """Declare output decoders by calling ``register(Decoder(...))``.

    For a runtime that returns its own output layout (on-chip NMS, an EfficientNMS plugin). At
    load time the decoders are tried in registration order, plugins' before the core's, and the
    first whose ``matches`` accepts the output shapes is used (``arch=`` names one directly).
    """


# --- export ----------------------------------------------------------------------------------


@hookspec(firstresult=True)
def edgecv_export(exporter: Exporter, source: Path, output: Path, options: Mapping[str, Any]) -> Path | None:
    """Convert the ONNX model ``source`` with ``exporter`` (chosen by ``--to``) into ``output``.

    Called once by ``edgecv export``. The core's ``trylast`` implementation calls
    ``exporter.export(source, output, options)``; the first non-``None`` result (the written file
    or folder) wins. Implement it to wrap or replace an export (a wrapper: log, time, sign).
    """


# --- load ------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def edgecv_load(backend: Backend, path: Path, options: Mapping[str, Any]) -> Session | None:
    """Open ``path`` with ``backend`` (already chosen) and return its ``Session``.

    Called by ``edgecv.load`` once per model. The core's ``trylast`` implementation calls
    ``backend.open(path, options)``; the first non-``None`` result wins. ``options`` are the
    backend options the user passed (threads, providers, ...).
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
def edgecv_infer(spec: ModelSpec, session: Session, tensor: npt.NDArray[Any]) -> Outputs | None:
    """Run ``session`` on ``tensor`` and return the raw float32 outputs in the order of ``spec.outputs``.

    Called by ``Model`` for every frame. The core's ``trylast`` implementation returns
    ``session.run(tensor)``; the first non-``None`` result wins.
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
    the first non-``None`` result wins. The core's default (``trylast``) decodes with
    ``spec.decoder``, runs class-aware NMS and undoes the letterbox. A new output layout is
    better served by registering a decoder (``edgecv_register_decoders``). Sorting by score is
    expected.
    """


@hookspec
def edgecv_on_detections(model: Model, image: npt.NDArray[np.uint8], detections: Detections) -> None:
    """Observer: ``detections`` were produced for ``image`` by ``model``.

    Called for every plugin after each frame, in the caller's thread. Keep it fast; hand slow
    work (uploads, disk) to your own thread. Exceptions propagate to the caller.
    """
