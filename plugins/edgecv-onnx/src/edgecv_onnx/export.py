"""``edgecv export --to onnx``: FP32 (static shape + metadata), FP16 and static INT8 (QDQ) models.

INT8 is onnxruntime's static quantization in QDQ form: activations uint8 per tensor, weights int8 per
output channel, ranges calibrated on real images passed through edgecv's own preprocessing
(``calibration.ImageCalibrationReader``), one image at a time so memory does not grow with their
number (``quantize.calibrate``), reporting each stage through ``ExportOptions.progress``. The
detection head's post-processing stays float (``graph.float_head``). The written file keeps the
source's metadata (names, imgsz, stride, task...) so edgecv reads it like the original, plus
``edgecv_*`` keys that record how it was made.

``uint8_input=true`` (``--option uint8_input=true``) makes the graph take the decoded BGR frame as
uint8 NHWC and convert it itself (``graph.take_uint8_input``); ``edgecv_input`` records that recipe,
so edgecv's preprocessing is the letterbox alone. Off by default: the file's input is then not the
float NCHW tensor other tools (and edgecv's other exporters, which read ONNX) expect.

Needs the ``onnx`` package (``pip install --find-links dist 'edgecv-onnx[export]'``); inference does not.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecv.backend import BackendError, ConfigError, ExportOptions, ModelError, atomic_target, pip_hint

if TYPE_CHECKING:
    import onnx

    from edgecv import Model

TARGET = "onnx"
CALIB_METHODS = ("percentile", "minmax", "entropy")  # the first is the default
DEFAULT_CALIB_SIZE = 64
EXPORT_HINT = f"{pip_hint('edgecv-onnx[export]')} (it adds the onnx package)."


def require_onnx() -> None:
    """The export extra is installed, or one clear error naming it."""
    try:
        importlib.import_module("onnx")
    except ImportError as exc:
        raise BackendError(
            "Exporting ONNX models needs the onnx package, which is not installed", EXPORT_HINT
        ) from exc


def export(source: Path, output: Path, options: Mapping[str, Any]) -> Path:
    """Write ``source`` at the precision in ``options`` to ``output``; return the written file."""
    settings = ExportOptions.parse(
        options,
        target="ONNX",
        calib_methods=CALIB_METHODS,
        default_calib_size=DEFAULT_CALIB_SIZE,
        extra=("optimize", "float_last_convs", "uint8_input"),
    )
    uint8_input = _flag(settings.raw, "uint8_input")
    require_onnx()
    import onnx

    from edgecv import load
    from edgecv_onnx import graph

    files: list[Path] = []
    if settings.precision == "int8":
        from edgecv_onnx.quantize import require_quantization_support

        require_quantization_support()
        files = settings.calibration_files()
    if source.suffix.lower() != ".onnx" or not source.is_file():
        raise ModelError(f"{source} is not an .onnx file", "edgecv export --to onnx converts ONNX models.")
    target = _output_path(source, output, settings.precision)
    reference = load(source, backend="onnx", imgsz=settings.imgsz)  # raises for a bad file or size
    if uint8_input and reference.spec.input.dtype != "float32":
        raise ModelError(
            f"{source.name} takes {reference.spec.input.dtype} input already",
            "Export from the float32 model: uint8_input=true replaces a float input.",
        )
    model = onnx.load(str(source))
    if graph.is_quantized(model):
        raise ModelError(
            f"{source.name} is already quantized",
            "Export from the float32 model; edgecv does not re-quantize integer graphs.",
        )
    graph.fix_input_size(model, reference.spec.imgsz)
    graph.name_nodes(model)
    details: dict[str, str] = {}
    if settings.precision == "fp16":
        model = _to_fp16(model, reference, details)
    elif settings.precision == "int8":
        model = _to_int8(model, reference, settings, files, details)
    if uint8_input:
        spec = reference.spec.input
        details["edgecv_uint8_input"] = graph.take_uint8_input(model, spec.layout, spec.color, spec.scale)
    _write_metadata(model, source, reference, settings, details)
    _save(model, target)
    return target


def _flag(options: Mapping[str, Any], key: str) -> bool:
    value = options.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(
            f"ONNX export option {key} must be true or false, got {value!r}",
            f"Pass --option {key}=true or leave it out.",
        )
    return value


def _output_path(source: Path, output: Path, precision: str) -> Path:
    target = output / f"{source.stem}_{precision}.onnx" if output.is_dir() else output
    if target.exists() and target.resolve() == source.resolve():
        raise ConfigError(f"The output {target} is the source model", "Pass another --output path.")
    return target


def _to_fp16(model: onnx.ModelProto, reference: Model, details: dict[str, str]) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from edgecv_onnx import graph

    head, _ = graph.float_head(model, reference.spec.imgsz)
    details["edgecv_float32_nodes"] = str(len(head))
    converted: onnx.ModelProto = convert_float_to_float16(model, keep_io_types=True, node_block_list=head)
    return converted


def _to_int8(
    model: onnx.ModelProto,
    reference: Model,
    settings: ExportOptions,
    files: list[Path],
    details: dict[str, str],
) -> onnx.ModelProto:
    from edgecv_onnx.calibration import ImageCalibrationReader
    from edgecv_onnx.quantize import quantize_int8

    assert settings.calib is not None
    result, float_nodes = quantize_int8(
        model,
        ImageCalibrationReader(reference, files),
        input_size=reference.spec.imgsz,
        method=settings.calib_method,
        progress=settings.progress,
        # Expert switches (Python API only): quant_pre_process first; keep the head's feeding convs float.
        optimize=bool(settings.raw.get("optimize", True)),
        float_last_convs=bool(settings.raw.get("float_last_convs", False)),
    )
    details["edgecv_quantization"] = (
        "static QDQ: activations uint8 per-tensor, weights int8 per-channel (least-error scales); "
        f"{float_nodes} head nodes kept float"
    )
    details["edgecv_calibration"] = json.dumps(
        {
            "folder": str(settings.calib.resolve()),
            "count": len(files),
            "method": settings.calib_method,
            "subset": settings.calib_subset,
            "selection": "spread evenly over the folder (its subset) in name order",
            "first": files[0].name,
            "last": files[-1].name,
        }
    )
    return result


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    import edgecv
    import edgecv_onnx

    return {
        "edgecv": edgecv.__version__,
        "edgecv-onnx": edgecv_onnx.__version__,
        "onnxruntime": str(onnxruntime.__version__),
        "onnx": onnx.__version__,
    }


def _write_metadata(
    model: onnx.ModelProto,
    source: Path,
    reference: Model,
    settings: ExportOptions,
    details: Mapping[str, str],
) -> None:
    import onnx

    from edgecv_onnx import graph

    spec = reference.spec
    tensor = graph.graph_inputs(model)[0]
    recipe = {
        "layout": spec.input.layout,
        "color": spec.input.color,
        "scale": spec.input.scale,
    }
    if "edgecv_uint8_input" in details:  # the graph does colour, layout and scaling itself
        recipe = {"layout": "NHWC", "color": "BGR", "scale": 1.0}
    metadata = dict(spec.metadata)
    metadata["imgsz"] = str(list(spec.imgsz))
    metadata.update(
        {
            "edgecv_precision": settings.precision,
            "edgecv_input": json.dumps(
                {
                    "name": spec.input.name,
                    "shape": list(graph.dims(tensor)),
                    "dtype": onnx.helper.tensor_dtype_to_np_dtype(tensor.type.tensor_type.elem_type).name,
                    **recipe,
                    "letterbox": spec.input.letterbox,
                    "pad_value": spec.input.pad_value,
                }
            ),
            "edgecv_source": source.name,
            "edgecv_source_sha256": spec.sha256,
            "edgecv_versions": json.dumps(_versions()),
            **details,
        }
    )
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _save(model: onnx.ModelProto, target: Path) -> None:
    """Write next to ``target`` then rename, so a failed export never leaves half a file."""
    import onnx

    with atomic_target(target) as partial:
        onnx.save(model, str(partial))
