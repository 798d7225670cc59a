"""What this plugin registers; everything that touches ncnn lives in ``session`` and ``export`` (lazy)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgecv.backend import Availability, Backend, Exporter, Session, hookimpl, pip_hint
from edgecv_ncnn.paramfile import looks_like_model

# This plugin is installed when the hint shows: what is missing is the runtime it depends on.
INSTALL_HINT = f"{pip_hint('ncnn>=1.0.20240410')} (the NCNN runtime)"


def check() -> Availability:
    if importlib.util.find_spec("ncnn") is None:
        return Availability(False, "ncnn is not installed", INSTALL_HINT)
    return Availability(True)


def open_session(path: Path, options: Mapping[str, Any]) -> Session:
    from edgecv_ncnn.session import NcnnSession

    return NcnnSession.open(path, options)


def export(source: Path, output: Path, options: Mapping[str, Any]) -> Path:
    """``--to ncnn``: an NCNN model folder made by pnnx (needs the ``export`` extra and pnnx)."""
    from edgecv_ncnn import export

    return export.export(source, output, options)


@hookimpl
def edgecv_register_backends(register: Callable[[Backend], None]) -> None:
    register(
        Backend(
            name="ncnn",
            open=open_session,
            # A model folder, a .param, or a .bin whose .param sits next to it (``accepts``).
            formats=(".param", ".bin"),
            priority=40,
            check=check,
            description="ncnn (Tencent) on the CPU; Vulkan GPUs with vulkan=True",
            install_hint=INSTALL_HINT,
            accepts=looks_like_model,
        )
    )


@hookimpl
def edgecv_register_exporters(register: Callable[[Exporter], None]) -> None:
    register(
        Exporter(format="ncnn", export=export, description="FP32, FP16 or INT8 NCNN model folder, via pnnx")
    )
