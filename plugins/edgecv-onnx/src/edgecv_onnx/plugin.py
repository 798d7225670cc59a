"""Hook implementations only; everything that touches onnxruntime lives in ``session`` (lazy)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv import hookimpl
from edgecv.backends import Availability, BackendInfo
from edgecv.spec import LoadedModel, ModelSpec

BACKEND = "onnx"
INSTALL_HINT = "pip install edgecv-onnx (it installs onnxruntime; onnxruntime-gpu for CUDA/TensorRT)."


def check() -> Availability:
    if importlib.util.find_spec("onnxruntime") is None:
        return Availability(False, "onnxruntime is not installed", INSTALL_HINT)
    return Availability(True)


@hookimpl
def edgecv_register_backends(register: Callable[[BackendInfo], None]) -> None:
    register(
        BackendInfo(
            name=BACKEND,
            formats=(".onnx",),
            priority=50,
            check=check,
            description="ONNX Runtime (CPU; CUDA, TensorRT, OpenVINO execution providers when present)",
            install_hint=INSTALL_HINT,
        )
    )


@hookimpl
def edgecv_load(backend: str, path: Path, options: Mapping[str, Any]) -> LoadedModel | None:
    if backend != BACKEND:
        return None
    from edgecv_onnx import session

    return session.open_session(path, options)


@hookimpl
def edgecv_bare_infer(spec: ModelSpec, session: Any) -> Callable[[npt.NDArray[Any]], object] | None:
    if spec.backend != BACKEND:
        return None
    run, names, feed = session.session.run, session.output_names, session.input_name
    return lambda tensor: run(names, {feed: tensor})


@hookimpl
def edgecv_infer(
    spec: ModelSpec, session: Any, tensor: npt.NDArray[Any]
) -> list[npt.NDArray[np.float32]] | None:
    if spec.backend != BACKEND:
        return None
    return session.run(tensor)  # type: ignore[no-any-return]


@hookimpl
def edgecv_export(source: Path, target: str, output: Path, options: Mapping[str, Any]) -> Path | None:
    """``--to onnx``: FP32/FP16/INT8 ONNX for ONNX Runtime (needs the ``export`` extra)."""
    if target != BACKEND:
        return None
    from edgecv_onnx import export

    return export.export(source, output, options)
