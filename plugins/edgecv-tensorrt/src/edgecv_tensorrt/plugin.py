"""What this plugin registers: the ``tensorrt`` backend and the ``tensorrt`` exporter.

edgecv imports this module on every run (``edgecv backends`` too), so it imports neither TensorRT
nor CUDA: the availability check looks for them without importing TensorRT (``runtime``), and
``session``/``export`` are imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgecv.backend import Availability, Backend, Exporter, Session, hookimpl

FORMATS = (".engine", ".plan", ".onnx")
PRIORITY = 45
"""Below edgecv-onnx (50): ``backend="auto"`` keeps running an ``.onnx`` file with ONNX Runtime
when both are installed (building an engine takes minutes); ``.engine``/``.plan`` files only this
backend reads. Above ncnn, tflite and opencv-dnn: with no edgecv-onnx, ``.onnx`` files go to the GPU."""


def check() -> Availability:
    from edgecv_tensorrt import runtime

    # Looked up at call time: the test seam (tests/trt_fakes.py) replaces runtime.availability.
    return runtime.availability()


def open_session(path: Path, options: Mapping[str, Any]) -> Session:
    from edgecv_tensorrt.session import TensorRTSession

    return TensorRTSession.open(path, options)


def export(source: Path, output: Path, options: Mapping[str, Any]) -> Path:
    """``--to tensorrt``: an engine (+ its sidecar) built here from an ONNX model."""
    from edgecv_tensorrt import export

    return export.export(source, output, options)


@hookimpl
def edgecv_register_backends(register: Callable[[Backend], None]) -> None:
    from edgecv_tensorrt.runtime import INSTALL_HINT

    register(
        Backend(
            name="tensorrt",
            open=open_session,
            formats=FORMATS,
            priority=PRIORITY,
            check=check,
            description="NVIDIA TensorRT engines on Jetson and NVIDIA GPUs (.onnx built once, then cached)",
            install_hint=INSTALL_HINT,
        )
    )


@hookimpl
def edgecv_register_exporters(register: Callable[[Exporter], None]) -> None:
    register(
        Exporter(
            format="tensorrt",
            export=export,
            description="TensorRT engine for this GPU: FP32, FP16 or INT8 (from edgecv-onnx's QDQ export)",
        )
    )
