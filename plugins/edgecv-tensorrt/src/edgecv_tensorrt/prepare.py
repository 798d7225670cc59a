"""The ONNX that TensorRT parses: read the source's input, form and metadata; make FP16 and INT8 ONNX.

- FP16 on TensorRT 11 (strongly typed: no ``BuilderFlag.FP16``): edgecv-onnx's FP16 export first
  (I/O stay float32, the box-decoding tail stays float32).
- INT8 on every version: a Q/DQ ONNX (explicit quantization; no calibrators, gone in 11). With
  ``--calib`` edgecv-onnx's INT8 export makes it (per-channel int8 weights, float head); a Q/DQ
  ONNX given directly is used as it is, except that TensorRT reads only symmetric int8 Q/DQ
  (zero point 0): asymmetric uint8 activations, what onnxruntime's static quantization writes,
  are rewritten as symmetric int8 over the same calibrated range, int32 biases as float
  (``tensorrt_qdq``).

Needs the ``onnx`` package; the FP16 and INT8 exports need edgecv-onnx's ``export`` extra.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from edgecv.backend import BackendError, ModelError, Progress, atomic_target, one_line, pip_hint

if TYPE_CHECKING:
    import onnx

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
# Integer operators of onnxruntime's dynamic and QOperator quantization, which TensorRT cannot parse.
INTEGER_OPS = frozenset(
    {"ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear"}
)
EXPORT_HINT = pip_hint("edgecv-tensorrt[export]")

FP32, FP16, QDQ = "fp32", "fp16", "qdq"
"""What an ONNX is: float32, float16 weights, or quantized with Q/DQ nodes."""


@attrs.frozen
class OnnxSummary:
    input_name: str
    input_dims: tuple[int | None, ...]
    """``None`` for a symbolic (dynamic) dimension."""
    form: str
    metadata: Mapping[str, str]


def require_onnx() -> None:
    try:
        importlib.import_module("onnx")
    except ImportError as exc:
        raise BackendError(
            "Building TensorRT engines from ONNX needs the onnx package, which is not installed",
            pip_hint("onnx>=1.16"),
        ) from exc


def load(path: Path) -> onnx.ModelProto:
    require_onnx()
    import onnx

    try:
        model: onnx.ModelProto = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError, OSError, onnx's own errors
        raise ModelError(
            f"Cannot read {path.name} as ONNX: {one_line(exc)}", "Pass an .onnx model file."
        ) from exc
    return model


def summarize(path: Path) -> OnnxSummary:
    """The one image input, the form and the metadata of the ONNX at ``path``."""
    return summary_of(load(path), path)


def summary_of(model: onnx.ModelProto, path: Path) -> OnnxSummary:
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 4:
        raise ModelError(
            f"{path.name} has {len(inputs)} inputs; edgecv builds engines for models with one image input "
            "(N, C, H, W)",
            "Export the detector with a single NCHW image input.",
        )
    dims = tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in inputs[0].type.tensor_type.shape.dim
    )
    return OnnxSummary(
        input_name=inputs[0].name,
        input_dims=dims,
        form=form(model, path),
        metadata={entry.key: entry.value for entry in model.metadata_props},
    )


def form(model: onnx.ModelProto, path: Path) -> str:
    ops = {node.op_type for node in model.graph.node}
    integer = sorted(ops & INTEGER_OPS)
    if integer:
        raise ModelError(
            f"{path.name} is quantized with {', '.join(integer)}, which TensorRT cannot parse",
            "Build from the float32 model: edgecv export --to tensorrt --precision int8 --calib DIR "
            "quantizes it with Q/DQ nodes, which TensorRT reads.",
        )
    if ops & QDQ_OPS:
        return QDQ
    float16 = 10  # onnx.TensorProto.FLOAT16
    return FP16 if any(t.data_type == float16 for t in model.graph.initializer) else FP32


def onnx_exporter() -> Any:
    """edgecv-onnx's exporter (the ``export`` extra), which makes the FP16 and INT8 ONNX."""
    try:
        return importlib.import_module("edgecv_onnx.export")
    except ImportError as exc:
        raise BackendError(
            "This TensorRT build converts the ONNX with edgecv-onnx's export, which is not installed",
            f"{EXPORT_HINT} (it adds edgecv-onnx[export]).",
        ) from exc


def onnx_export(source: Path, target: Path, options: Mapping[str, Any], progress: Progress) -> Path:
    """``edgecv export --to onnx`` with ``options`` (precision, imgsz, calib...) into ``target``."""
    return Path(onnx_exporter().export(source, target, {**options, "progress": progress}))


def tensorrt_qdq(model: onnx.ModelProto) -> int:
    """Rewrite ``model``'s Q/DQ nodes in the form TensorRT parses; return how many changed.

    TensorRT quantizes to int8 with zero point 0 only: its parser refuses uint8, int32 and non-zero
    zero points. onnxruntime's static quantization writes uint8 activations and int32 biases:

    - a ``DequantizeLinear`` of an int32 or uint8 constant (biases, constant operands) becomes the
      float constant it computes;
    - a uint8 pair with scale ``s`` and zero point ``z`` covers ``[(0 - z) s, (255 - z) s]``; the
      int8 pair over the same calibrated range has scale ``max(|low|, |high|) / 127``, zero point 0.

    Weights, per-channel symmetric int8 already, are left as they are.
    """
    require_onnx()
    from onnx import TensorProto, numpy_helper

    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    changed = _fold_constant_dequantize(model, initializers)
    replaced: dict[tuple[str, str], tuple[str, str]] = {}
    changed_outputs: set[str] = set()
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        scale = initializers.get(node.input[1]) if len(node.input) > 1 else None
        if scale is None:
            raise ModelError(
                f"{node.op_type} node {node.name!r} has no constant scale; TensorRT needs one",
                "Quantize the model with constant Q/DQ scales (edgecv export --to tensorrt --calib DIR).",
            )
        point = initializers.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        point_type = TensorProto.UINT8 if point is None else point.data_type  # ONNX's default is uint8
        steps = numpy_helper.to_array(scale)
        zero = np.zeros(steps.shape) if point is None else numpy_helper.to_array(point)
        if point_type == TensorProto.INT8 and not zero.any():
            continue
        if point_type not in (TensorProto.UINT8, TensorProto.INT8):
            raise ModelError(
                f"{node.op_type} node {node.name!r} quantizes to {TensorProto.DataType.Name(point_type)}; "
                "TensorRT reads int8 Q/DQ models",
                "Quantize to int8 (edgecv export --to tensorrt --precision int8 --calib DIR).",
            )
        key = (scale.name, point.name if point is not None else "")
        if key not in replaced:
            low, high = (0, 255) if point_type == TensorProto.UINT8 else (-128, 127)
            offset = zero.astype(np.float64)
            wide = steps.astype(np.float64)
            bound = np.maximum(np.abs((low - offset) * wide), np.abs((high - offset) * wide))
            names = (f"{scale.name}_int8_symmetric", f"{key[1] or node.name}_int8_zero_point")
            model.graph.initializer.extend(
                [
                    numpy_helper.from_array((bound / 127).astype(np.float32), names[0]),
                    numpy_helper.from_array(np.zeros(zero.shape, dtype=np.int8), names[1]),
                ]
            )
            replaced[key] = names
        del node.input[1:]
        node.input.extend(replaced[key])
        if node.op_type == "QuantizeLinear":
            changed_outputs.add(node.output[0])
        changed += 1
    if changed:
        _drop_unused_initializers(model, set(initializers))
        for value in model.graph.value_info:  # shape inference typed these uint8
            if value.name in changed_outputs:
                value.type.tensor_type.elem_type = TensorProto.INT8
    return changed


def _fold_constant_dequantize(model: onnx.ModelProto, initializers: dict[str, onnx.TensorProto]) -> int:
    """Replace each ``DequantizeLinear`` of a constant that is not symmetric int8 (int32 biases,
    uint8 constants) by the float32 constant it computes; symmetric int8 weights keep theirs."""
    from onnx import TensorProto, numpy_helper

    folded: list[onnx.NodeProto] = []
    for node in model.graph.node:
        source = initializers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if source is None or node.input[1] not in initializers:
            continue
        values = numpy_helper.to_array(source).astype(np.float64)
        steps = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float64)
        point = initializers.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        zero = numpy_helper.to_array(point).astype(np.float64) if point is not None else np.zeros(steps.shape)
        if source.data_type == TensorProto.INT8 and not zero.any():
            continue
        if steps.ndim == 1 and values.ndim > 0:  # per channel along ``axis`` (ONNX's default: 1)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % values.ndim
            shape = [1] * values.ndim
            shape[axis] = -1
            steps, zero = steps.reshape(shape), zero.reshape(shape)
        constant = ((values - zero) * steps).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(constant, node.output[0]))
        folded.append(node)
    for node in folded:
        model.graph.node.remove(node)
    return len(folded)


def _drop_unused_initializers(model: onnx.ModelProto, candidates: set[str]) -> None:
    """Remove the initializers among ``candidates`` that no node reads any more."""
    used = {name for node in model.graph.node for name in node.input}
    used |= {value.name for value in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name not in candidates or t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def save(model: onnx.ModelProto, target: Path) -> Path:
    require_onnx()
    import onnx

    with atomic_target(target) as partial:
        onnx.save(model, str(partial))
    return target
