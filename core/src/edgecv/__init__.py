"""edgecv: run computer-vision detectors fast and reliably on edge hardware.

The public API is imported lazily so that ``edgecv --help`` and plugin discovery stay fast:
``import edgecv`` costs almost nothing until a name below is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgecv.hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "load": "edgecv.model",
    "Model": "edgecv.model",
    "Detections": "edgecv.detections",
    "Detection": "edgecv.detections",
    "StageTimings": "edgecv.detections",
    "ModelSpec": "edgecv.spec",
    "InputSpec": "edgecv.spec",
    "TensorSpec": "edgecv.spec",
    "Quantization": "edgecv.spec",
    "LoadedModel": "edgecv.spec",
    "BackendInfo": "edgecv.backends",
    "Availability": "edgecv.backends",
    "LetterboxInfo": "edgecv.preprocess",
    "PostprocessOptions": "edgecv.postprocess",
    "EdgecvError": "edgecv.errors",
    "Runtime": "edgecv.runtime.loop",
    "RunConfig": "edgecv.runtime.loop",
    "FrameResult": "edgecv.runtime.results",
}

__all__ = [  # noqa: RUF022 - grouped as in _LAZY
    "__version__",
    "hookimpl",
    "load",
    "Model",
    "Detections",
    "Detection",
    "StageTimings",
    "ModelSpec",
    "InputSpec",
    "TensorSpec",
    "Quantization",
    "LoadedModel",
    "BackendInfo",
    "Availability",
    "LetterboxInfo",
    "PostprocessOptions",
    "EdgecvError",
    "Runtime",
    "RunConfig",
    "FrameResult",
]

if TYPE_CHECKING:
    from edgecv.backends import Availability, BackendInfo
    from edgecv.detections import Detection, Detections, StageTimings
    from edgecv.errors import EdgecvError
    from edgecv.model import Model, load
    from edgecv.postprocess import PostprocessOptions
    from edgecv.preprocess import LetterboxInfo
    from edgecv.runtime.loop import RunConfig, Runtime
    from edgecv.runtime.results import FrameResult
    from edgecv.spec import InputSpec, LoadedModel, ModelSpec, Quantization, TensorSpec


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgecv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
