"""What this plugin registers; everything that touches openvino lives in ``session`` and ``export`` (lazy)."""

from __future__ import annotations

import importlib.util
import platform
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgecv.backend import Availability, Backend, Exporter, Session, hookimpl, pip_hint
from edgecv_openvino.modelfiles import looks_like_model

# This plugin is installed when the hint shows: what is missing is the runtime it depends on.
INSTALL_HINT = f"{pip_hint('openvino>=2024.0')} (the OpenVINO runtime)"
X86 = frozenset({"x86_64", "amd64", "i386", "i686"})
NVIDIA_DEVICE = Path("/dev/nvidiactl")
"""Present where an NVIDIA driver is loaded: TensorRT or ONNX Runtime's CUDA provider beat a CPU."""


def auto_priority(machine: str, nvidia: bool) -> int:
    """Where ``backend="auto"`` puts OpenVINO for .onnx files (IR files are read by OpenVINO alone).

    55, above edgecv-onnx (50), on x86 CPUs without an NVIDIA GPU: OpenVINO ran YOLO 1.26-1.5x
    faster than ONNX Runtime there (Intel Xeon with AMX, AMD EPYC; README). 30 elsewhere, below
    edgecv-onnx and edgecv-tensorrt (45): on ARM it is unmeasured, and a GPU belongs to TensorRT or
    ONNX Runtime's CUDA provider.
    """
    return 55 if machine.lower() in X86 and not nvidia else 30


def check() -> Availability:
    if importlib.util.find_spec("openvino") is None:
        return Availability(False, "openvino is not installed", INSTALL_HINT)
    return Availability(True)


def open_session(path: Path, options: Mapping[str, Any]) -> Session:
    from edgecv_openvino.session import OpenVinoSession

    return OpenVinoSession.open(path, options)


def export(source: Path, output: Path, options: Mapping[str, Any]) -> Path:
    """``--to openvino``: an IR folder, FP32/FP16, or INT8 from edgecv-onnx's QDQ export."""
    from edgecv_openvino import export

    return export.export(source, output, options)


@hookimpl
def edgecv_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        Backend(
            name="openvino",
            open=open_session,
            # An IR folder, its .xml (or .bin beside the .xml), or an .onnx file (``accepts``).
            formats=(".xml", ".onnx"),
            priority=auto_priority(platform.machine(), NVIDIA_DEVICE.exists()),
            check=check,
            description="OpenVINO (Intel CPU, GPU, NPU; ARM CPUs): IR and ONNX models",
            install_hint=INSTALL_HINT,
            accepts=looks_like_model,
        )
    )


@hookimpl
def edgecv_register_exporters(register: Callable[[Exporter], None]) -> None:
    register(
        Exporter(
            format="openvino",
            export=export,
            description="FP32, FP16 or INT8 (from edgecv-onnx's QDQ) OpenVINO IR folder",
        )
    )
