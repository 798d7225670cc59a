"""``edgecv export --to tensorrt``: an ONNX model -> ``.engine`` + its sidecar, for this GPU.

    edgecv export --model yolo11n.onnx --to tensorrt --precision fp16 -o yolo11n.engine
    edgecv export --model yolo11n.onnx --to tensorrt --precision int8 --calib coco128/images -o out/

``--precision fp32|fp16|int8``: fp16 is ``BuilderFlag.FP16`` on TensorRT 8.6/10 and an FP16 ONNX
(edgecv-onnx's export) built strongly typed on 11; int8 is explicit quantization from a Q/DQ ONNX
(edgecv-onnx's int8 export when ``--calib`` is given; a Q/DQ ONNX is used as it is).
``--workspace GB`` caps the GPU memory TensorRT's tactics may use; ``--imgsz N`` sizes a dynamic
ONNX; ``--dynamic`` keeps its image sides dynamic (32 to N) in an optimization profile.

The engine runs only with this TensorRT version on this GPU model: the sidecar says so and
edgecv refuses it anywhere else (``sidecar.check_engine``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from edgecv.backend import ConfigError, ExportOptions, ModelError
from edgecv_tensorrt import prepare
from edgecv_tensorrt.build import PRECISIONS
from edgecv_tensorrt.plan import BuildRequest, build, input_shape, plan, resolve_precision, workspace_bytes
from edgecv_tensorrt.runtime import TensorRTModule
from edgecv_tensorrt.sidecar import Machine, write_engine

TARGET = "TensorRT"
ENGINE_SUFFIXES = (".engine", ".plan")


def export(
    source: Path,
    output: Path,
    options: Mapping[str, Any],
    *,
    trt: TensorRTModule | None = None,
    machine: Machine | None = None,
    cache_root: Path | None = None,
) -> Path:
    """Build ``source`` into an engine at ``output`` (a file, or a folder for ``<stem>_<precision>.engine``).

    ``trt``/``machine``: the TensorRT module and the machine it builds for (``None``: the real ones);
    ``cache_root``: where the timing cache is kept (``None``: edgecv's cache dir).
    """
    if source.suffix.lower() != ".onnx" or not source.is_file():
        raise ModelError(f"{source} is not an .onnx file", "edgecv export --to tensorrt builds ONNX models.")
    summary = prepare.summarize(source)
    asked = str(options.get("precision") or "fp32").lower()
    if asked in PRECISIONS:  # TensorRT's own words (INT8 needs Q/DQ) before the generic checks
        resolve_precision(summary, BuildRequest(precision=asked, calib=options.get("calib")), source)
    settings = _parse(options, summary.form)
    request = BuildRequest(
        precision=settings.precision,
        workspace=workspace_bytes(settings.raw.get("workspace")),
        dynamic=_flag(settings.raw.get("dynamic", False)),
        imgsz=settings.imgsz,
        calib=settings.calib,
        calib_size=settings.calib_size,
        calib_method=settings.calib_method,
        calib_subset=settings.calib_subset,
    )
    # Mistakes fail before TensorRT is looked for, on any machine.
    resolve_precision(summary, request, source)
    input_shape(summary, request, source)
    target = _target(source, output, settings.precision)
    if trt is None or machine is None:
        from edgecv_tensorrt import runtime

        trt = trt if trt is not None else runtime.load_tensorrt()
        machine = machine if machine is not None else runtime.machine_info(trt, runtime.load_cuda())
    from edgecv_tensorrt import cache

    wanted = plan(source, request, machine)
    timing = cache.timing_cache_path(cache_root if cache_root is not None else cache.cache_root(), machine)
    wanted = attrs.evolve(wanted, config=attrs.evolve(wanted.config, timing_cache=timing))
    data, seconds = build(trt, source, wanted, request, settings.progress)
    write_engine(target, data, attrs.evolve(wanted.sidecar, build_seconds=round(seconds, 3)))
    return target


def _parse(options: Mapping[str, Any], form: str) -> ExportOptions:
    """``ExportOptions`` with ``workspace`` and ``dynamic``; INT8 from a Q/DQ ONNX needs no ``--calib``."""
    # ExportOptions asks every INT8 export for --calib; a Q/DQ ONNX is calibrated already.
    quantized = form == prepare.QDQ and options.get("calib") is None
    asked = str(options.get("precision") or "fp32").lower()
    checked = {**options, "precision": "fp32"} if quantized and asked == "int8" else options
    settings = ExportOptions.parse(
        checked,
        target=TARGET,
        calib_methods=_calib_methods(options),
        extra=("workspace", "dynamic"),
    )
    return attrs.evolve(settings, precision="int8") if checked is not options else settings


def _calib_methods(options: Mapping[str, Any]) -> tuple[str, ...]:
    """edgecv-onnx calibrates INT8 builds: its methods (the first is its default)."""
    try:
        from edgecv_onnx.export import CALIB_METHODS
    except ImportError:  # any method passes here: the INT8 build then names the missing extra
        return (str(options.get("calib_method") or "default"),)
    return tuple(CALIB_METHODS)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(
            f"TensorRT export option dynamic must be true or false, got {value!r}", "Pass --dynamic."
        )
    return value


def _target(source: Path, output: Path, precision: str) -> Path:
    if output.is_dir():
        return output / f"{source.stem}_{precision}.engine"
    if output.suffix.lower() not in ENGINE_SUFFIXES:
        raise ConfigError(
            f"{output.name} is not an engine file name (.engine or .plan)",
            f"Pass -o {output.with_suffix('.engine')} or an existing folder.",
        )
    return output
