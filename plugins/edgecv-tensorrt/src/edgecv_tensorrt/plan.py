"""What to build from an ONNX, decided before anything is built: the engine's sidecar and build config.

``BuildRequest`` is what the user asked (``edgecv export --to tensorrt`` flags, or ``-o`` options of
an ``.onnx`` load); ``plan`` checks it against the ONNX and this machine and returns every input of
the build (``Plan.sidecar``, which keys the engine cache) with the ``BuildConfig``; ``build``
prepares the ONNX TensorRT parses (``prepare``) and builds it (``build.build_engine``).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from edgecv.backend import Advance, ConfigError, ModelError, Progress, imgsz_from_metadata, sha256_of
from edgecv_tensorrt import prepare
from edgecv_tensorrt.build import PRECISIONS, BuildConfig, build_engine, profile_for
from edgecv_tensorrt.runtime import TensorRTModule
from edgecv_tensorrt.sidecar import Machine, Sidecar
from edgecv_tensorrt.versions import TensorRTVersion

BUILD_OPTIONS = frozenset(
    {"precision", "workspace", "dynamic", "imgsz", "calib", "calib_size", "calib_subset", "calib_method"}
)
"""The options of an ``.onnx`` load that choose the engine (``-o precision=fp16 -o workspace=2``)."""
DEFAULT_CALIB_SIZE = 64  # edgecv-onnx's
MAX_WORKSPACE_GB = 1024.0
ONNX_AS_GIVEN, ONNX_FP16, ONNX_INT8 = "as given", "edgecv-onnx fp16", "edgecv-onnx int8"


@contextlib.contextmanager
def silent(stage: str, total: int | None) -> Iterator[Advance]:
    """The ``Progress`` that reports nothing (a library caller passed none)."""
    yield lambda steps: None


@attrs.frozen
class BuildRequest:
    precision: str | None = None
    """``None``: what the ONNX is (Q/DQ: int8, float16 weights: fp16, else fp32)."""
    workspace: int | None = None
    """Bytes (``--workspace`` is in GB)."""
    dynamic: bool = False
    imgsz: int | None = None
    calib: Path | None = None
    calib_size: int = DEFAULT_CALIB_SIZE
    calib_method: str | None = None
    calib_subset: str = "all"

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> BuildRequest:
        """The build options among ``options`` (the others are left to the session), checked."""
        precision = options.get("precision")
        if precision is not None and str(precision).lower() not in PRECISIONS:
            raise ConfigError(
                f"Unknown TensorRT precision {precision!r}", f"Pass precision={', '.join(PRECISIONS)}."
            )
        dynamic = options.get("dynamic", False)
        if not isinstance(dynamic, bool):
            raise ConfigError(
                f"TensorRT option dynamic must be true or false, got {dynamic!r}", "Pass dynamic=true."
            )
        imgsz, size = options.get("imgsz"), options.get("calib_size")
        for name, value in (("imgsz", imgsz), ("calib_size", size)):
            if value is not None and (type(value) is not int or value < 1):
                raise ConfigError(
                    f"TensorRT option {name} must be a positive integer, got {value!r}",
                    f"Pass e.g. {name}=64.",
                )
        calib, method = options.get("calib"), options.get("calib_method")
        return cls(
            precision=str(precision).lower() if precision is not None else None,
            workspace=workspace_bytes(options.get("workspace")),
            dynamic=dynamic,
            imgsz=imgsz,
            calib=Path(calib) if calib is not None else None,
            calib_size=size if size is not None else DEFAULT_CALIB_SIZE,
            calib_method=str(method) if method is not None else None,
            calib_subset=str(options.get("calib_subset") or "all"),
        )


def workspace_bytes(gigabytes: object) -> int | None:
    """``--workspace`` GB -> bytes; ``None`` stays TensorRT's default."""
    if gigabytes is None:
        return None
    if (
        isinstance(gigabytes, bool)
        or not isinstance(gigabytes, (int, float))
        or not math.isfinite(gigabytes)
        or not 0 < gigabytes <= MAX_WORKSPACE_GB
    ):
        raise ConfigError(
            f"TensorRT workspace must be a number of GB above 0 and at most {MAX_WORKSPACE_GB:g}, "
            f"got {gigabytes!r}",
            "Pass e.g. --workspace 2 (GB of GPU memory TensorRT may use while building).",
        )
    return int(gigabytes * (1 << 30))


@attrs.frozen
class Plan:
    sidecar: Sidecar
    """Every input of the build (``engine_sha256`` and ``build_seconds`` are filled in after it)."""
    config: BuildConfig
    onnx: str
    """How the ONNX TensorRT parses is made: ``as given`` or through edgecv-onnx's fp16/int8 export."""


def resolve_precision(summary: prepare.OnnxSummary, request: BuildRequest, source: Path) -> str:
    """The precision to build ``source`` at; ``ConfigError`` when it cannot be built at the one asked."""
    natural = {prepare.QDQ: "int8", prepare.FP16: "fp16"}.get(summary.form, "fp32")
    precision = request.precision or natural
    if summary.form == prepare.QDQ and precision != "int8":
        raise ConfigError(
            f"{source.name} is quantized (Q/DQ nodes): TensorRT builds it as int8, not {precision}",
            "Pass --precision int8, or build from the float32 model.",
        )
    if summary.form == prepare.FP16 and precision != "fp16":
        raise ConfigError(
            f"{source.name} has float16 weights: TensorRT builds it as fp16, not {precision}",
            "Pass --precision fp16, or build from the float32 model.",
        )
    if precision == "int8" and summary.form == prepare.FP32 and request.calib is None:
        raise ConfigError(
            f"INT8 engines are built from Q/DQ ONNX, and {source.name} is float32",
            "Pass --calib DIR (edgecv-onnx calibrates and quantizes it first), or a Q/DQ model "
            "(edgecv export --to onnx --precision int8 --calib DIR).",
        )
    return precision


def plan(source: Path, request: BuildRequest, machine: Machine, timing_cache: Path | None = None) -> Plan:
    """Check ``request`` against the ONNX ``source`` and this machine; what ``build`` will do."""
    import edgecv
    import edgecv_tensorrt

    summary = prepare.summarize(source)
    precision = resolve_precision(summary, request, source)
    version = TensorRTVersion.parse(machine.trt_version)
    route = ONNX_AS_GIVEN
    if precision == "int8" and summary.form == prepare.FP32:
        route = ONNX_INT8
    elif precision == "fp16" and summary.form == prepare.FP32 and version.strongly_typed:
        route = ONNX_FP16
    shape = input_shape(summary, request, source)
    if request.dynamic and route != ONNX_AS_GIVEN:
        raise ConfigError(
            f"--dynamic cannot be combined with {precision} on TensorRT {version}: edgecv-onnx's {precision} "
            "export fixes the input size",
            "Build without --dynamic (one engine per --imgsz).",
        )
    profile = profile_for(summary.input_dims, shape, request.dynamic)
    options = {
        "workspace": request.workspace,
        "dynamic": request.dynamic,
        "profile": profile.to_json() if profile is not None else None,
        "onnx": route,
        "calibration": _calibration(request) if route == ONNX_INT8 else None,
    }
    sidecar = Sidecar(
        source=source.name,
        model_sha256=sha256_of(source),
        trt_version=machine.trt_version,
        gpu_name=machine.gpu_name,
        compute_capability=machine.compute_capability,
        precision=precision,
        input_name=summary.input_name,
        input_shape=shape,
        build_options=options,
        edgecv_version=edgecv.__version__,
        plugin_version=edgecv_tensorrt.__version__,
        metadata=dict(summary.metadata),
    )
    config = BuildConfig(
        precision=precision,
        input_name=summary.input_name,
        input_shape=shape,
        workspace=request.workspace,
        profile=profile,
        timing_cache=timing_cache,
    )
    return Plan(sidecar=sidecar, config=config, onnx=route)


def input_shape(summary: prepare.OnnxSummary, request: BuildRequest, source: Path) -> tuple[int, ...]:
    """The NCHW shape to build for: the ONNX's fixed dimensions; batch 1, and ``--imgsz`` (else the
    model's declared imgsz) for dynamic ones."""
    batch, channels, height, width = summary.input_dims
    if channels is None:
        raise ModelError(
            f"{source.name} does not fix its input's channel count", "Export it with 3 channels."
        )
    if height is not None and width is not None:
        if request.dynamic:
            raise ConfigError(
                f"{source.name} has a fixed input size ({height}x{width}): --dynamic needs dynamic axes",
                "Export the ONNX with dynamic height and width, or build without --dynamic.",
            )
        if request.imgsz is not None and (height, width) != (request.imgsz, request.imgsz):
            raise ConfigError(
                f"{source.name} has a fixed input size ({height}x{width}); "
                f"--imgsz {request.imgsz} cannot change it",
                "Drop --imgsz, or export the ONNX with dynamic axes.",
            )
        return (batch or 1, channels, height, width)
    declared = imgsz_from_metadata(summary.metadata)
    if request.imgsz is not None:
        declared = (request.imgsz, request.imgsz)
    if declared is None:
        raise ConfigError(
            f"{source.name} has a dynamic input size and declares no imgsz",
            "Pass --imgsz N (-o imgsz=N when loading the .onnx).",
        )
    return (batch or 1, channels, height or declared[0], width or declared[1])


def _calibration(request: BuildRequest) -> dict[str, Any]:
    """What calibrates an INT8 build, down to the images' bytes: other images are another engine."""
    from edgecv.backend import calibration_files

    assert request.calib is not None
    files = calibration_files(request.calib, request.calib_size, request.calib_subset)
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode(errors="surrogateescape") + b"\0" + sha256_of(file).encode())
    return {
        "folder": str(request.calib.resolve()),
        "size": request.calib_size,
        "subset": request.calib_subset,
        "method": request.calib_method,
        "images_sha256": digest.hexdigest(),
    }


def build(
    trt: TensorRTModule, source: Path, plan: Plan, request: BuildRequest, progress: Progress
) -> tuple[bytes, float]:
    """Prepare the ONNX ``plan`` says and build it; the serialized engine and the seconds it took."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgecv-tensorrt-") as folder:
        parsed = _prepared_onnx(source, plan, request, Path(folder), progress)
        data = build_engine(trt, parsed, plan.config, progress)
    return data, time.perf_counter() - started


def _prepared_onnx(source: Path, plan: Plan, request: BuildRequest, work: Path, progress: Progress) -> Path:
    """The file TensorRT parses: ``source``, or the FP16 / Q/DQ ONNX made from it in ``work``."""
    options: dict[str, Any] = {"precision": plan.config.precision, "imgsz": request.imgsz}
    if plan.onnx == ONNX_FP16:
        return prepare.onnx_export(source, work / "fp16.onnx", options, progress)
    if plan.config.precision != "int8":
        return source
    if plan.onnx == ONNX_INT8:
        options.update(
            calib=request.calib,
            calib_size=request.calib_size,
            calib_method=request.calib_method,
            calib_subset=request.calib_subset,
        )
        model = prepare.load(prepare.onnx_export(source, work / "int8.onnx", options, progress))
    else:
        model = prepare.load(source)
    if prepare.tensorrt_qdq(model) == 0 and plan.onnx == ONNX_AS_GIVEN:
        return source  # already TensorRT's Q/DQ form: used as it is
    return prepare.save(model, work / "int8_symmetric.onnx")
