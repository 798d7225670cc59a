"""Everything a backend plugin needs from the core, in one import.

A backend plugin is a module named in the ``edgecv`` entry-point group that registers a
``Backend`` (and, if it writes a format, an ``Exporter``)::

    from edgecv.backend import Backend, hookimpl

    @hookimpl
    def edgecv_register_backends(register):
        register(Backend(name="mine", formats=(".onnx",), open=open_session))

``open_session(path, options)`` returns an object with the ``Session`` protocol. Plugins import
from here (and the public ``edgecv`` API) and nothing else of the core; see
docs/writing-a-backend.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edgecv.backends import AsyncSession, Availability, Backend, DeviceSession, Exporter, Outputs, Session
from edgecv.decoders.base import Candidates, DecodeContext, Decoder
from edgecv.errors import BackendError, ConfigError, EdgecvError, ImageError, ModelError, one_line
from edgecv.exporting import ExportOptions
from edgecv.files import atomic_target, sha256_of, working_directory
from edgecv.hardware import coral_usb_count
from edgecv.hookspecs import hookimpl
from edgecv.install_hints import pip_hint
from edgecv.native_output import stderr_captured, stderr_redirected, stderr_silenced
from edgecv.progress import Advance, Progress, terminal_progress
from edgecv.spec import (
    Layout,
    ModelSpec,
    Quantization,
    SessionSpec,
    TensorSpec,
    default_names,
    imgsz_from_metadata,
    names_from_metadata,
    parse_metadata_value,
    shapes_match,
)
from edgecv.validation import check_options, positive_int

if TYPE_CHECKING:
    from edgecv.calibration import calibration_files
    from edgecv.images import read_image
    from edgecv.registry import cache_dir

# Imported on first use (OpenCV when an exporter reads images), not when a plugin is discovered.
_LAZY = {
    "cache_dir": "edgecv.registry",
    "calibration_files": "edgecv.calibration",
    "read_image": "edgecv.images",
}

__all__ = [
    "Advance",
    "AsyncSession",
    "Availability",
    "Backend",
    "BackendError",
    "Candidates",
    "ConfigError",
    "DecodeContext",
    "Decoder",
    "DeviceSession",
    "EdgecvError",
    "ExportOptions",
    "Exporter",
    "ImageError",
    "Layout",
    "ModelError",
    "ModelSpec",
    "Outputs",
    "Progress",
    "Quantization",
    "Session",
    "SessionSpec",
    "TensorSpec",
    "atomic_target",
    "cache_dir",
    "calibration_files",
    "check_options",
    "coral_usb_count",
    "default_names",
    "hookimpl",
    "imgsz_from_metadata",
    "names_from_metadata",
    "one_line",
    "parse_metadata_value",
    "pip_hint",
    "positive_int",
    "read_image",
    "sha256_of",
    "shapes_match",
    "single_input",
    "stderr_captured",
    "stderr_redirected",
    "stderr_silenced",
    "terminal_progress",
    "working_directory",
]

T = TypeVar("T")


def single_input(inputs: Sequence[T], path: Path) -> T:
    """The one input of a detector, or ``ModelError`` for a model with several (or none)."""
    if len(inputs) != 1:
        raise ModelError(
            f"{path.name} has {len(inputs)} inputs; edgecv runs models with one image input",
            "Export the detector with a single image input.",
        )
    return inputs[0]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgecv.backend' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
