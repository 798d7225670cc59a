"""Static INT8 quantization (QDQ) with onnxruntime, around ``quantize_static``.

- Activations: uint8 per tensor, ranges calibrated on images through edgecv's preprocessing.
- Weights: int8 symmetric per output channel. The scale of each channel is ``max|w| / n`` with the
  ``n`` in 64..127 that gives the smallest rounding error (``n = 127`` is onnxruntime's default).
  For ordinary float weights that is 127 or close; for weights that already sit on a coarser grid
  (models dequantized from an INT8 export, quantization-aware training) it finds that grid, so
  re-quantizing them loses nothing. On ``yolov8n_fp32_dequant.onnx`` this alone is worth ~0.9 mAP.
- The detection head's post-processing stays float (``graph.float_head``).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

from edgecv.backend import BackendError, ModelError
from edgecv_onnx import graph
from edgecv_onnx.calibration import ImageCalibrationReader

# The candidate grids for a channel's weight scale: max|w| / n.
SCALE_STEPS = np.arange(64, 128, dtype=np.float64)
INT8_MAX = 127
QDQ_OPSET = 13
"""Per-channel QuantizeLinear/DequantizeLinear (the ``axis`` attribute) need opset 13."""


def require_quantization_support() -> None:
    """INT8 export hands the ranges to ``quantize_static`` as a calibration cache (onnxruntime 1.32+)."""
    import inspect

    from onnxruntime import __version__
    from onnxruntime.quantization import quantize_static

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        raise BackendError(
            f"INT8 export needs onnxruntime 1.32 or newer (this is {__version__})",
            "pip install -U onnxruntime (the exported model still runs on onnxruntime 1.17+).",
        )


def channel_scales(weight: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Per-output-channel int8 scales with the least rounding error among ``max|w| / n``."""
    flat = weight.reshape(weight.shape[0], -1).astype(np.float64)
    peak = np.abs(flat).max(axis=1)
    peak[peak == 0] = 1.0
    best_error = np.full(flat.shape[0], np.inf)
    best_scale = peak / INT8_MAX
    for steps in SCALE_STEPS[::-1]:  # finest grid first: it wins ties
        scale = peak / steps
        quantized = np.clip(np.rint(flat / scale[:, None]), -INT8_MAX, INT8_MAX) * scale[:, None]
        error = np.square(quantized - flat).mean(axis=1)
        better = error < best_error * (1 - 1e-9)
        best_error = np.where(better, error, best_error)
        best_scale = np.where(better, scale, best_scale)
    return np.asarray(best_scale, dtype=np.float32)


def weight_overrides(model: onnx.ModelProto, excluded: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """``TensorQuantOverrides`` giving each quantized Conv weight its per-channel scales."""
    skip = set(excluded)
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    overrides: dict[str, list[dict[str, Any]]] = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or node.name in skip or len(node.input) < 2:
            continue
        tensor = initializers.get(node.input[1])
        if tensor is None or tensor.name in overrides:
            continue
        scales = channel_scales(numpy_helper.to_array(tensor))
        entries: list[dict[str, Any]] = [
            {"scale": np.float32(scale), "zero_point": np.int8(0)} for scale in scales
        ]
        entries[0]["axis"] = 0
        overrides[tensor.name] = entries
    return overrides


def head_inputs(model: onnx.ModelProto, head: Sequence[str]) -> set[str]:
    """Tensors computed by quantized nodes and read by the float head (the raw box and class logits)."""
    floats = set(head)
    produced = {out for node in model.graph.node if node.name not in floats for out in node.output}
    read = {name for node in model.graph.node if node.name in floats for name in node.input}
    return read & produced


def _full_range(ranges: Any, histograms: Mapping[str, Sequence[Any]], names: set[str]) -> None:
    """Widen clipped (percentile, entropy) ranges of ``names`` back to everything observed.

    Clipping assumes the rare extremes are noise; for the logits that feed the head they are the
    detections themselves (the highest class logits are the confident boxes), so clipping them
    flattens exactly the scores that matter.
    """
    from onnxruntime.quantization.calibrate import TensorData

    for name in names & set(ranges.keys()):
        observed = histograms.get(name)
        if observed is None:
            continue
        data = ranges[name]
        dtype = np.asarray(data.lowest).dtype
        ranges[name] = TensorData(
            lowest=np.array(min(float(data.lowest), float(observed[2])), dtype=dtype),
            highest=np.array(max(float(data.highest), float(observed[3])), dtype=dtype),
        )


def calibrate(
    prepared: Path, reader: ImageCalibrationReader, method: str, work: Path, full_range: set[str]
) -> Path:
    """Run the calibrator on ``prepared``; write the tensor ranges as an onnxruntime calibration cache."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.calibrate import save_tensors_data

    calibrate_method, options = CALIBRATORS[method]
    calibrator = create_calibrator(
        prepared,
        augmented_model_path=str(work / "augmented.onnx"),
        calibrate_method=getattr(CalibrationMethod, calibrate_method),
        extra_options=dict(options),
    )
    calibrator.collect_data(reader)
    ranges = calibrator.compute_data()
    if calibrate_method != "MinMax":
        # (histogram, edges, min, max, ...) per tensor, as onnxruntime's HistogramCollector keeps them.
        histograms = getattr(getattr(calibrator, "collector", None), "histogram_dict", None)
        if not isinstance(histograms, Mapping):
            raise ModelError(
                "This onnxruntime's calibrator does not expose its histograms",
                "Use --calib-method minmax, or onnxruntime 1.32 (the release edgecv-onnx was tested with).",
            )
        _full_range(ranges, histograms, full_range)
    cache = work / "calibration.json"
    save_tensors_data(ranges, cache)
    return cache


# --calib-method -> (onnxruntime CalibrationMethod, calibrator options).
CALIBRATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "minmax": ("MinMax", {}),
    # onnxruntime's defaults (128 bins); with 2048 bins KL clips far more and loses ~3 mAP here.
    "entropy": ("Entropy", {"symmetric": False}),
    # Both tails from one real-valued histogram (onnxruntime's default, |x|, wastes half of uint8
    # on SiLU outputs that are almost all positive).
    "percentile": ("Percentile", {"symmetric": False, "num_bins": 2048, "percentile": 99.999}),
}


def quantize_int8(
    model: onnx.ModelProto,
    reader: ImageCalibrationReader,
    *,
    input_size: tuple[int, int],
    method: str,
    optimize: bool = True,
    float_last_convs: bool = False,
) -> tuple[onnx.ModelProto, int]:
    """Quantize ``model`` (static input shape, named nodes); return it and the number of float nodes."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = graph.upgrade_opset(model, QDQ_OPSET)
    with tempfile.TemporaryDirectory(prefix="edgecv-int8-") as folder:
        work = Path(folder)
        prepared = work / "prepared.onnx"
        onnx.save(model, str(prepared))
        if optimize:
            # onnx shape inference + onnxruntime's basic graph optimizations (constant folding...).
            quant_pre_process(str(prepared), str(prepared), skip_symbolic_shape=True)
            model = onnx.load(str(prepared))
            graph.name_nodes(model)
            onnx.save(model, str(prepared))
        head, last_convs = graph.float_head(model, input_size)
        if not head:
            warnings.warn(
                "No detection head found (no Conv on an image grid feeds the outputs); every node is "
                "quantized, check the scores of the exported model",
                stacklevel=3,
            )
        excluded = head + last_convs if float_last_convs else head
        output = work / "int8.onnx"
        # onnxruntime's histogram calibrators print progress lines: keep the CLI's stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            cache = calibrate(prepared, reader, method, work, head_inputs(model, excluded))
            quantize_static(
                str(prepared),
                str(output),
                None,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded,
                calibrate_method=getattr(CalibrationMethod, CALIBRATORS[method][0]),
                extra_options={"TensorQuantOverrides": weight_overrides(model, excluded)},
                calibration_cache_path=str(cache),
            )
        result = onnx.load(str(output))
    graph.drop_unused_domains(result)
    return result, len(excluded)
