"""Hook implementations only; everything that touches the TFLite runtime lives in ``session`` (lazy)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv import hookimpl
from edgecv.backends import BackendInfo
from edgecv.spec import LoadedModel, ModelSpec
from edgecv_tflite import runtime

BACKENDS = ("tflite", "edgetpu")


def _is_edgetpu_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith("_edgetpu.tflite")


@hookimpl
def edgecv_register_backends(register: Callable[[BackendInfo], None]) -> None:
    register(
        BackendInfo(
            name="tflite",
            formats=(".tflite",),
            priority=30,
            check=runtime.check_runtime,
            description="TensorFlow Lite (LiteRT) on the CPU: float32, dynamic-range and full-integer models",
            install_hint=runtime.INSTALL_HINT,
        )
    )
    register(
        BackendInfo(
            name="edgetpu",
            formats=("_edgetpu.tflite",),
            priority=60,
            check=runtime.check_edgetpu,
            description="Coral Edge TPU (USB or PCIe) via libedgetpu; edgetpu_compiler models",
            install_hint=runtime.EDGETPU_HINT,
            accepts=_is_edgetpu_file,
        )
    )


@hookimpl
def edgecv_load(backend: str, path: Path, options: Mapping[str, Any]) -> LoadedModel | None:
    if backend not in BACKENDS:
        return None
    from edgecv_tflite import session

    return session.open_session(path, options, backend)


@hookimpl
def edgecv_bare_infer(spec: ModelSpec, session: Any) -> Callable[[npt.NDArray[Any]], object] | None:
    if spec.backend not in BACKENDS:
        return None
    interpreter, feed, indices = session.interpreter, session.input_index, session.output_indices

    def run(tensor: npt.NDArray[Any]) -> object:
        # What a hand-written TFLite script does: set, invoke, read the raw outputs.
        interpreter.set_tensor(feed, tensor)
        interpreter.invoke()
        return [interpreter.get_tensor(index) for index in indices]

    return run


@hookimpl
def edgecv_infer(
    spec: ModelSpec, session: Any, tensor: npt.NDArray[Any]
) -> list[npt.NDArray[np.float32]] | None:
    if spec.backend not in BACKENDS:
        return None
    return session.run(tensor)  # type: ignore[no-any-return]


@hookimpl
def edgecv_export(source: Path, target: str, output: Path, options: Mapping[str, Any]) -> Path | None:
    """``--to tflite``: float32/float16/dynamic-range/full-integer TFLite (needs the ``export`` extra)."""
    if target != "tflite":
        return None
    from edgecv_tflite import export

    return export.export(source, output, options)
