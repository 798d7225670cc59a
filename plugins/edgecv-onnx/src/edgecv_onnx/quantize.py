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
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

from edgecv.backend import BackendError, ModelError
from edgecv_onnx import graph
from edgecv_onnx.calibration import ImageCalibrationReader, SingleFeedReader

if TYPE_CHECKING:
    from edgecv.backend import Progress

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
    prepared: Path,
    reader: ImageCalibrationReader,
    method: str,
    work: Path,
    full_range: set[str],
    progress: Progress,
) -> Path:
    """Run the calibrator on ``prepared``; write the tensor ranges as an onnxruntime calibration cache.

    Image by image, so memory does not grow with the number of images: onnxruntime's calibrators
    given all images at once keep every intermediate output of every image (~260 MB per 640x640
    YOLOv8n image). ``CalibMaxIntermediateOutputs`` is no way out: only the MinMax calibrator reads
    it, and onnxruntime 1.32 drops the outputs it caps without folding them into the ranges.
    """
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.calibrate import save_tensors_data

    calibrate_method, options = CALIBRATORS[method]
    calibrator = create_calibrator(
        prepared,
        augmented_model_path=str(work / "augmented.onnx"),
        calibrate_method=getattr(CalibrationMethod, calibrate_method),
        extra_options=dict(options),
    )
    histogram = calibrate_method != "MinMax"
    if histogram:
        _histogram_bounds(calibrator, reader, progress)
    stage = "calibrating: histograms" if histogram else "calibrating: ranges"
    with progress(stage, len(reader)) as advance:
        for feed in reader.feeds():
            # MinMax folds each call into its running min/max; the histogram calibrators add each
            # call's values to the histograms of the bounds found above.
            calibrator.collect_data(SingleFeedReader(feed))
            advance(1)
    ranges = calibrator.compute_data()
    if histogram:
        # (histogram, edges, min, max, ...) per tensor, as onnxruntime's HistogramCollector keeps them.
        _full_range(ranges, _histograms(calibrator), full_range)
    cache = work / "calibration.json"
    save_tensors_data(ranges, cache)
    return cache


def _histograms(calibrator: Any) -> Mapping[str, Sequence[Any]]:
    histograms = getattr(getattr(calibrator, "collector", None), "histogram_dict", None)
    if not isinstance(histograms, Mapping):
        raise ModelError(
            "This onnxruntime's calibrator does not expose its histograms",
            "Use --calib-method minmax, or onnxruntime 1.32 (the release edgecv-onnx was tested with).",
        )
    return histograms


def _histogram_bounds(calibrator: Any, reader: ImageCalibrationReader, progress: Progress) -> None:
    """First pass: each tensor's min/max over every image; start its histogram on that range.

    A histogram calibrator fed image by image starts each histogram on the first image's range and
    widens it bin by bin for later images: other bins, so other percentile and entropy ranges than
    when it sees all images at once. Started on the range of all images (what one call over all of
    them would use), every later image falls inside it and the histograms come out bin for bin the
    same as onnxruntime's all-at-once result, at the cost of one more inference per image.
    """
    from onnxruntime.quantization.calibrate import HistogramCollector

    session = getattr(calibrator, "infer_session", None)
    wanted = getattr(calibrator, "tensors_to_calibrate", None)
    if session is None or wanted is None or getattr(calibrator, "symmetric", False):
        raise ModelError(
            "This onnxruntime's histogram calibrator is not the one edgecv-onnx streams images through",
            "Use --calib-method minmax, or onnxruntime 1.32 (the release edgecv-onnx was tested with).",
        )
    names = [output.name for output in session.get_outputs()]
    bounds: dict[str, tuple[Any, Any]] = {}  # numpy scalars of the tensor's dtype
    with progress("calibrating: bounds", len(reader)) as advance:
        for feed in reader.feeds():
            for name, value in zip(names, session.run(None, feed), strict=True):
                if name not in wanted:
                    continue
                low, high = _extremes(np.asarray(value))
                if name in bounds:
                    low, high = min(bounds[name][0], low), max(bounds[name][1], high)
                bounds[name] = (low, high)
            advance(1)
    collector = HistogramCollector(
        method=calibrator.method,
        symmetric=calibrator.symmetric,
        num_bins=calibrator.num_bins,
        num_quantized_bins=calibrator.num_quantized_bins,
        percentile=calibrator.percentile,
        scenario=calibrator.scenario,
    )
    for name, (low, high) in bounds.items():
        # The entry HistogramCollector.collect_value makes from a tensor's first data, without data.
        threshold = np.array(max(abs(low), abs(high)), dtype=low.dtype)
        empty = np.zeros(0, dtype=low.dtype)
        # 0-d arrays of the tensor's dtype, as onnxruntime passes them (typeshed wants floats).
        hist, edges = np.histogram(empty, collector.num_bins, range=(-threshold, threshold))  # type: ignore[arg-type]
        collector.histogram_dict[name] = (hist, edges, low, high, threshold)
    calibrator.collector = collector


def _extremes(value: npt.NDArray[Any]) -> tuple[Any, Any]:
    """min and max ignoring NaN, as onnxruntime's collector takes them (zeros for an empty tensor)."""
    if value.size == 0:
        zero = np.array(0, dtype=value.dtype)[()]
        return zero, zero
    return np.nanmin(value), np.nanmax(value)


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
    progress: Progress,
    optimize: bool = True,
    float_last_convs: bool = False,
) -> tuple[onnx.ModelProto, int]:
    """Quantize ``model`` (static input shape, named nodes); return it and the number of float nodes.

    ``progress`` (``ExportOptions.progress``) hears of the stages: the calibration passes image by
    image, then the quantization.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = graph.upgrade_opset(model, QDQ_OPSET)
    with tempfile.TemporaryDirectory(prefix="edgecv-int8-") as folder:
        work = Path(folder)
        prepared = work / "prepared.onnx"
        with progress("preparing the graph", 1) as advance:
            onnx.save(model, str(prepared))
            if optimize:
                # onnx shape inference + onnxruntime's basic graph optimizations (constant folding...).
                quant_pre_process(str(prepared), str(prepared), skip_symbolic_shape=True)
                model = onnx.load(str(prepared))
                graph.name_nodes(model)
                onnx.save(model, str(prepared))
            head, last_convs = graph.float_head(model, input_size)
            advance(1)
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
            cache = calibrate(prepared, reader, method, work, head_inputs(model, excluded), progress)
        with progress("quantizing", 1) as advance, contextlib.redirect_stdout(io.StringIO()):
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
            advance(1)
        result = onnx.load(str(output))
    graph.drop_unused_domains(result)
    return result, len(excluded)
