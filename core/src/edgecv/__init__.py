"""edgecv: run computer-vision detectors fast and reliably on edge hardware.

The public API is imported lazily so that ``edgecv --help`` and plugin discovery stay fast:
``import edgecv`` costs almost nothing until a name below is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from edgecv.hookspecs import hookimpl

__version__ = "0.2.0"

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
    "SessionSpec": "edgecv.spec",
    "Backend": "edgecv.backends",
    "Exporter": "edgecv.backends",
    "Session": "edgecv.backends",
    "AsyncSession": "edgecv.backends",
    "DeviceSession": "edgecv.backends",
    "Availability": "edgecv.backends",
    "Decoder": "edgecv.decoders.base",
    "LetterboxInfo": "edgecv.preprocess",
    "PostprocessOptions": "edgecv.postprocess",
    "EdgecvError": "edgecv.errors",
    "ModelError": "edgecv.errors",
    "ConfigError": "edgecv.errors",
    "BackendError": "edgecv.errors",
    "ImageError": "edgecv.errors",
    "DecodeError": "edgecv.errors",
    "PluginError": "edgecv.errors",
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
    "SessionSpec",
    "Backend",
    "Exporter",
    "Session",
    "AsyncSession",
    "DeviceSession",
    "Availability",
    "Decoder",
    "LetterboxInfo",
    "PostprocessOptions",
    "EdgecvError",
    "ModelError",
    "ConfigError",
    "BackendError",
    "ImageError",
    "DecodeError",
    "PluginError",
    "Runtime",
    "RunConfig",
    "FrameResult",
]

if TYPE_CHECKING:
    from edgecv.backends import AsyncSession, Availability, Backend, DeviceSession, Exporter, Session
    from edgecv.decoders.base import Decoder
    from edgecv.detections import Detection, Detections, StageTimings
    from edgecv.errors import (
        BackendError,
        ConfigError,
        DecodeError,
        EdgecvError,
        ImageError,
        ModelError,
        PluginError,
    )
    from edgecv.model import Model, load
    from edgecv.postprocess import PostprocessOptions
    from edgecv.preprocess import LetterboxInfo
    from edgecv.runtime.loop import RunConfig, Runtime
    from edgecv.runtime.results import FrameResult
    from edgecv.spec import InputSpec, ModelSpec, Quantization, SessionSpec, TensorSpec


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgecv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
