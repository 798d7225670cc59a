"""The engine cache: ``edgecv predict x.onnx --backend tensorrt`` builds once, then reuses the engine.

Engines live under ``<edgecv cache dir>/tensorrt/engines/``, named by the source, the precision and
the key of their sidecar (``Sidecar.key``: the model's sha256, TensorRT version, GPU name, compute
capability, precision, input shape, build options, edgecv versions). Any change of those is another
file, so an engine is never loaded for a machine, TensorRT or model it was not built for, and
identical requests reuse it without building. An entry whose sidecar or bytes do not match (a
crash between the two writes, a truncated file) is built again. One timing cache per TensorRT
version and GPU sits in ``tensorrt/timing/`` and shortens later builds.

Nothing is evicted: ``rm -r ~/.cache/edgecv/tensorrt`` (or ``$EDGECV_CACHE_DIR/tensorrt``) frees it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from edgecv.backend import ModelError, Progress, sha256_of
from edgecv_tensorrt.plan import BUILD_OPTIONS, BuildRequest, Plan, build, plan, silent
from edgecv_tensorrt.runtime import TensorRTModule
from edgecv_tensorrt.sidecar import Machine, read_sidecar, write_engine

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def cache_root() -> Path:
    """``<edgecv cache dir>/tensorrt`` (``EDGECV_CACHE_DIR``, else ``~/.cache/edgecv``)."""
    from edgecv.backend import cache_dir

    return Path(cache_dir()) / "tensorrt"


def timing_cache_path(root: Path, machine: Machine) -> Path:
    """Timing caches are per TensorRT version and GPU, as the tactics they time."""
    where = f"{machine.trt_version}|{machine.gpu_name}|{machine.compute_capability}"
    return root / "timing" / f"{hashlib.sha256(where.encode()).hexdigest()[:16]}.cache"


def engine_path(root: Path, plan: Plan) -> Path:
    stem = _UNSAFE.sub("_", Path(plan.sidecar.source).stem)[:48] or "model"
    return root / "engines" / f"{stem}-{plan.sidecar.precision}-{plan.sidecar.key()[:24]}.engine"


def engine_for(
    onnx_path: Path,
    options: Mapping[str, Any],
    trt: TensorRTModule,
    machine: Machine,
    progress: Progress | None = None,
    *,
    root: Path | None = None,
) -> Path:
    """The cached engine for ``onnx_path`` built with ``options`` (``plan.BUILD_OPTIONS``) on
    ``machine``; built (and reported through ``progress``, with the build time) when missing."""
    folder = root if root is not None else cache_root()
    request = BuildRequest.from_options({k: v for k, v in options.items() if k in BUILD_OPTIONS})
    wanted = plan(onnx_path, request, machine, timing_cache=timing_cache_path(folder, machine))
    engine = engine_path(folder, wanted)
    if reusable(engine, wanted):
        return engine
    data, seconds = build(trt, onnx_path, wanted, request, progress if progress is not None else silent)
    write_engine(engine, data, attrs.evolve(wanted.sidecar, build_seconds=round(seconds, 3)))
    return engine


def reusable(engine: Path, wanted: Plan) -> bool:
    """The cached ``engine`` is the one ``wanted`` describes, whole."""
    if not engine.is_file():
        return False
    try:
        existing = read_sidecar(engine)
    except ModelError:
        return False
    return existing.key() == wanted.sidecar.key() and sha256_of(engine) == existing.engine_sha256
