"""What this plugin registers; everything that touches onnxruntime lives in ``session`` (lazy)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgecv.backend import Availability, Backend, Exporter, Session, hookimpl, pip_hint

# This plugin is installed when the hint shows: what is missing is the runtime it depends on.
INSTALL_HINT = f"{pip_hint('onnxruntime>=1.17')} (or onnxruntime-gpu for CUDA and TensorRT)"


def check() -> Availability:
    if importlib.util.find_spec("onnxruntime") is None:
        return Availability(False, "onnxruntime is not installed", INSTALL_HINT)
    return Availability(True)


def open_session(path: Path, options: Mapping[str, Any]) -> Session:
    from edgecv_onnx.session import OnnxSession

    return OnnxSession.open(path, options)


def export(source: Path, output: Path, options: Mapping[str, Any]) -> Path:
    """``--to onnx``: FP32/FP16/INT8 ONNX for ONNX Runtime (needs the ``export`` extra)."""
    from edgecv_onnx import export

    return export.export(source, output, options)


@hookimpl
def edgecv_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        Backend(
            name="onnx",
            open=open_session,
            formats=(".onnx",),
            priority=50,
            check=check,
            description="ONNX Runtime (CPU; CUDA, TensorRT, OpenVINO execution providers when present)",
            install_hint=INSTALL_HINT,
        )
    )


@hookimpl
def edgecv_register_exporters(register: Callable[[Exporter], None]) -> None:
    register(Exporter(format="onnx", export=export, description="FP32, FP16 or static INT8 (QDQ) ONNX"))
