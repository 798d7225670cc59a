"""Hook implementations only; everything that touches ncnn lives in ``session`` and ``export`` (lazy)."""

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
from edgecv_ncnn.paramfile import looks_like_model

BACKEND = "ncnn"
TARGET = "ncnn"
INSTALL_HINT = "pip install edgecv-ncnn (it installs ncnn)."


def check() -> Availability:
    if importlib.util.find_spec("ncnn") is None:
        return Availability(False, "ncnn is not installed", INSTALL_HINT)
    return Availability(True)


@hookimpl
def edgecv_register_backends(register: Callable[[BackendInfo], None]) -> None:
    register(
        BackendInfo(
            name=BACKEND,
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
def edgecv_export(source: Path, target: str, output: Path, options: Mapping[str, Any]) -> Path | None:
    if target.lower() != TARGET:
        return None
    from edgecv_ncnn import export

    return export.export(source, output, options)


@hookimpl
def edgecv_load(backend: str, path: Path, options: Mapping[str, Any]) -> LoadedModel | None:
    if backend != BACKEND:
        return None
    from edgecv_ncnn import session

    return session.open_session(path, options)


@hookimpl
def edgecv_bare_infer(spec: ModelSpec, session: Any) -> Callable[[npt.NDArray[Any]], object] | None:
    if spec.backend != BACKEND:
        return None
    net, mat, feed, names = session.net, session.mat, session.input_name, session.output_names

    def run(tensor: npt.NDArray[Any]) -> object:
        # What a hand-written ncnn script does: the prepared tensor (contiguous float32, kept alive
        # by the caller) wrapped without a copy, one extractor per frame.
        extractor = net.create_extractor()
        extractor.input(feed, mat(tensor[0]))
        return [extractor.extract(name)[1] for name in names]

    return run


@hookimpl
def edgecv_infer(
    spec: ModelSpec, session: Any, tensor: npt.NDArray[Any]
) -> list[npt.NDArray[np.float32]] | None:
    if spec.backend != BACKEND:
        return None
    return session.run(tensor)  # type: ignore[no-any-return]
