"""What this plugin registers: the ``hailo`` backend, the ``hailo`` exporter and the ``hailo-nms`` decoder.

edgecv imports this module on every run (``edgecv backends`` too), so it imports neither HailoRT
nor the Dataflow Compiler: the availability check looks for them without importing them
(``runtime.availability``), and ``session``/``export`` are imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgecv.backend import Availability, Backend, Decoder, Exporter, Session, hookimpl
from edgecv_hailo.nms import HAILO_NMS

FORMATS = (".hef",)
PRIORITY = 60
"""Only this backend reads HEF files; the priority matters for nothing else."""


def check() -> Availability:
    from edgecv_hailo import runtime

    # Looked up at call time: the test seam (tests/hailo_fakes.py) replaces runtime.availability.
    return runtime.availability()


def describe() -> Mapping[str, Any]:
    """The attached Hailo device for ``edgecv doctor``: type, firmware, HailoRT version, temperature."""
    from edgecv_hailo import runtime

    return runtime.describe()


def open_session(path: Path, options: Mapping[str, Any]) -> Session:
    from edgecv_hailo.session import HailoSession

    return HailoSession.open(path, options)


def export(source: Path, output: Path, options: Mapping[str, Any]) -> Path:
    """``--to hailo``: a HEF compiled from an ONNX model by Hailo's Dataflow Compiler (x86 only)."""
    from edgecv_hailo import export

    return export.export(source, output, options)


@hookimpl
def edgecv_register_backends(register: Callable[[Backend], None]) -> None:
    from edgecv_hailo.runtime import INSTALL_HINT

    register(
        Backend(
            name="hailo",
            open=open_session,
            formats=FORMATS,
            priority=PRIORITY,
            check=check,
            description="Hailo-8 / Hailo-8L accelerators (Raspberry Pi AI Kit): HEF files, on-chip NMS",
            install_hint=INSTALL_HINT,
            describe=describe,
        )
    )


@hookimpl
def edgecv_register_exporters(register: Callable[[Exporter], None]) -> None:
    register(
        Exporter(
            format="hailo",
            export=export,
            description="HEF for Hailo-8/8L via Hailo's Dataflow Compiler (x86 only; INT8, on-chip NMS)",
        )
    )


@hookimpl
def edgecv_register_decoders(register: Callable[[Decoder], None]) -> None:
    register(HAILO_NMS)
