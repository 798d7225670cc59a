"""What this plugin registers; everything that touches the TFLite runtime lives in ``session`` (lazy)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgecv.backend import Backend, Exporter, Session, hookimpl
from edgecv_tflite import runtime


def is_edgetpu_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith("_edgetpu.tflite")


def open_tflite(path: Path, options: Mapping[str, Any]) -> Session:
    from edgecv_tflite.session import TfliteSession

    return TfliteSession.open(path, options)


def open_edgetpu(path: Path, options: Mapping[str, Any]) -> Session:
    from edgecv_tflite.session import TfliteSession

    return TfliteSession.open_edgetpu(path, options)


def export(source: Path, output: Path, options: Mapping[str, Any]) -> Path:
    """``--to tflite``: float32/float16/dynamic-range/full-integer TFLite (needs the ``export`` extra)."""
    from edgecv_tflite import export

    return export.export(source, output, options)


@hookimpl
def edgecv_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        Backend(
            name="tflite",
            open=open_tflite,
            formats=(".tflite",),
            priority=30,
            check=runtime.check_runtime,
            description="TensorFlow Lite (LiteRT) on the CPU: float32, dynamic-range and full-integer models",
            install_hint=runtime.INSTALL_HINT,
        )
    )
    register(
        Backend(
            name="edgetpu",
            open=open_edgetpu,
            formats=("_edgetpu.tflite",),
            priority=60,
            check=runtime.check_edgetpu,
            description="Coral Edge TPU (USB or PCIe) via libedgetpu; edgetpu_compiler models",
            install_hint=runtime.EDGETPU_HINT,
            accepts=is_edgetpu_file,
        )
    )


@hookimpl
def edgecv_register_exporters(register: Callable[[Exporter], None]) -> None:
    register(
        Exporter(
            format="tflite",
            export=export,
            description="float32, float16, dynamic-range or full-integer INT8 TFLite (the export extra)",
        )
    )
