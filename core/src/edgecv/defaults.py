"""The core's own hook implementations: the defaults any plugin can override.

Registered first and marked ``trylast``, so a plugin's implementation that returns a result
for a frame takes precedence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edgecv import postprocess as _postprocess
from edgecv import preprocess as _preprocess
from edgecv.detections import Detections
from edgecv.hookspecs import hookimpl
from edgecv.spec import ModelSpec

if TYPE_CHECKING:
    from edgecv.events.sinks import EventSink


@hookimpl(trylast=True)
def edgecv_preprocess(
    image: npt.NDArray[np.uint8], spec: ModelSpec
) -> tuple[npt.NDArray[Any], _preprocess.LetterboxInfo]:
    return _preprocess.preprocess(image, spec.input)


@hookimpl(trylast=True)
def edgecv_postprocess(
    outputs: Sequence[npt.NDArray[Any]],
    spec: ModelSpec,
    letterbox: _preprocess.LetterboxInfo,
    options: _postprocess.PostprocessOptions,
) -> Detections:
    return _postprocess.postprocess(outputs, spec, letterbox, options)


@hookimpl(trylast=True)
def edgecv_event_sink(url: str, options: Mapping[str, Any]) -> EventSink | None:
    from edgecv.events import sinks  # urllib and paho are imported only when a run syncs

    return sinks.core_sink(url, options)
