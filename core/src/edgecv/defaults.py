"""The core's own hook implementations: the defaults any plugin can wrap or override.

Registered first and marked ``trylast``, so a plugin's implementation that returns a result
takes precedence, and a wrapper (``wrapper=True``) sees the default's result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv import postprocess as _postprocess
from edgecv import preprocess as _preprocess
from edgecv.backends import Backend, Exporter, Outputs, Session
from edgecv.decoders import BUILTIN_DECODERS
from edgecv.decoders.base import Decoder
from edgecv.detections import Detections
from edgecv.hookspecs import hookimpl
from edgecv.spec import ModelSpec


@hookimpl
def edgecv_register_decoders(register: Callable[[Decoder], None]) -> None:
    for decoder in BUILTIN_DECODERS:
        register(decoder)


@hookimpl(trylast=True)
def edgecv_export(exporter: Exporter, source: Path, output: Path, options: Mapping[str, Any]) -> Path:
    return exporter.export(source, output, options)


@hookimpl(trylast=True)
def edgecv_load(backend: Backend, path: Path, options: Mapping[str, Any]) -> Session:
    return backend.open(path, options)


@hookimpl(trylast=True)
def edgecv_preprocess(
    image: npt.NDArray[np.uint8], spec: ModelSpec
) -> tuple[npt.NDArray[Any], _preprocess.LetterboxInfo]:
    return _preprocess.preprocess(image, spec.input)


@hookimpl(trylast=True)
def edgecv_infer(spec: ModelSpec, session: Session, tensor: npt.NDArray[Any]) -> Outputs:
    return session.run(tensor)


@hookimpl(trylast=True)
def edgecv_postprocess(
    outputs: Sequence[npt.NDArray[Any]],
    spec: ModelSpec,
    letterbox: _preprocess.LetterboxInfo,
    options: _postprocess.PostprocessOptions,
) -> Detections:
    return _postprocess.postprocess(outputs, spec, letterbox, options)
