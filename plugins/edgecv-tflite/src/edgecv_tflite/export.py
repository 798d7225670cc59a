"""``edgecv export --to tflite``: ONNX -> TFLite float32, float16, dynamic-range and full-integer INT8.

Conversion: onnx2tf turns the ONNX graph into a TensorFlow SavedModel (NCHW -> NHWC, op by op, no
PyTorch needed); TensorFlow's own TFLite converter then writes every precision. onnx2tf was chosen
because it runs offline (see ``_onnx2tf_sample_data``), needs only ``tensorflow-cpu`` and converts the
YOLO graphs without accuracy loss (yolov8n float32: coco128 mAP50-95 0.444, as with ONNX Runtime);
litert-torch would need the PyTorch
model, which an ``.onnx`` file does not carry.

Full-integer INT8 (``precision="int8"``): activations int8 per tensor, weights int8 per channel, input
int8 (or uint8, option ``io``) so the image bytes go straight in. Two things keep it within a point
or two of float32 (measured on coco128; see the README table):

* the detection head after the last convolutions (DFL softmax, box decode, the sigmoid, the concat of
  pixel boxes with 0..1 scores) stays float and the output is float32: one int8 scale for
  ``[boxes 0..640 | scores 0..1]`` rounds every score to 0 or 2.5 (Ultralytics' full-integer export
  avoids that with normalized boxes, at a 2.5-pixel box step, and loses 7.6 points);
* ranges are the mean of each calibration image's min/max (``calib_method="average"``, the default)
  instead of TensorFlow's global min/max, which lets one outlier image widen a layer's range.

Needs ``pip install --find-links dist 'edgecv-tflite[export]'``; running the exported files does not.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edgecv.backend import (
    BackendError,
    ConfigError,
    ExportOptions,
    ModelError,
    atomic_target,
    one_line,
    pip_hint,
    stderr_redirected,
    working_directory,
)

if TYPE_CHECKING:
    from edgecv import Model
    from edgecv.backend import Progress

Advance = Callable[[int], None]

logger = logging.getLogger(__name__)

TARGET = "tflite"
PRECISIONS = ("fp32", "fp16", "dynamic", "int8")  # dynamic: int8 weights, float activations and I/O
CALIB_METHODS = ("average", "minmax")  # the first is the default
DEFAULT_CALIB_SIZE = 64
IO_TYPES = ("int8", "uint8")
EXPORT_HINT = f"{pip_hint('edgecv-tflite[export]')} (adds tensorflow-cpu and onnx2tf)."
EXPORT_MODULES = ("tensorflow", "onnx2tf", "onnx", "onnx_graphsurgeon", "sng4onnx", "tf_keras")
ONNX2TF_RECURSION_LIMIT = 10_000
"""onnx2tf recurses through the graph; 10,000 frames fit the main thread's 8 MB stack."""
# onnx2tf checks its conversion on this array and downloads it when it is not in the working folder.
SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
SAMPLE_SIZE = 128
EDGETPU_COMPILER = "edgetpu_compiler"
EDGETPU_TIMEOUT_S = 600


@contextlib.contextmanager
def _converter_output_held(progress: Progress) -> Iterator[Progress]:
    """Send TensorFlow's and onnx2tf's native chatter (file descriptor 2) to a log file.

    Dozens of absl lines would bury edgecv's output and its one-line errors. The log is removed
    after a successful export and kept, and named, after a failed one. Yields ``progress`` made to
    draw on the stderr it replaced (``_drawing_on``).
    """
    handle, name = tempfile.mkstemp(prefix="edgecv-tflite-export-", suffix=".log")
    try:
        terminal = os.dup(2)
    except OSError:  # no stderr at all: nothing to draw on
        terminal = -1
    ok = False
    try:
        with stderr_redirected(handle):
            yield _drawing_on(progress, terminal) if terminal >= 0 else progress
        ok = True
    finally:
        os.close(handle)
        if terminal >= 0:
            os.close(terminal)
        if ok:
            os.unlink(name)
        else:
            logger.warning("the converter's own output is in %s", name)


@contextlib.contextmanager
def _on_stderr(fd: int) -> Iterator[None]:
    """File descriptor 2 back on ``fd`` for one write of the progress bar."""
    with stderr_redirected(fd):
        yield
        sys.stderr.flush()


def _drawing_on(progress: Progress, fd: int) -> Progress:
    """``progress`` drawing on ``fd`` while file descriptor 2 goes to the converter log."""

    @contextlib.contextmanager
    def drawn(stage: str, total: int | None) -> Iterator[Advance]:
        with _on_stderr(fd):
            context = progress(stage, total)
            advance = context.__enter__()

        def visible(steps: int) -> None:
            with _on_stderr(fd):
                advance(steps)

        try:
            yield visible
        except BaseException:
            with _on_stderr(fd):
                if not context.__exit__(*sys.exc_info()):
                    raise
        else:
            with _on_stderr(fd):
                context.__exit__(None, None, None)

    return drawn


def require_export_tools() -> None:
    """The export extra is installed, or one clear error naming what is missing.

    Looked up, not imported: importing TensorFlow prints to stderr, which is held back only
    during the conversion itself.
    """
    missing = [name for name in EXPORT_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise BackendError(
            f"Exporting TFLite models needs {', '.join(missing)}, which {verb} not installed", EXPORT_HINT
        )


def _module(name: str) -> Any:
    """Import a module of the export extra (untyped, so it stays ``Any`` for mypy)."""
    return importlib.import_module(name)


def export(source: Path, output: Path, options: Mapping[str, Any]) -> Path:
    """Write ``source`` at the precision in ``options`` to ``output``; return the written .tflite file."""
    settings = ExportOptions.parse(
        options,
        target="TFLite",
        calib_methods=CALIB_METHODS,
        default_calib_size=DEFAULT_CALIB_SIZE,
        precisions=PRECISIONS,
        extra=("io", "edgetpu"),
    )
    io_type = str(settings.raw.get("io") or "int8").lower()
    if io_type not in IO_TYPES:
        raise ConfigError(f"Unknown TFLite input type {io_type!r}", f"Pass io as {' or '.join(IO_TYPES)}.")
    if source.suffix.lower() != ".onnx" or not source.is_file():
        raise ModelError(f"{source} is not an .onnx file", "edgecv export --to tflite converts ONNX models.")
    files = settings.calibration_files() if settings.precision == "int8" else []
    target = _output_path(source, output, settings.precision)
    require_export_tools()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines, before its import

    from edgecv import load

    reference = load(source, backend="onnx", imgsz=settings.imgsz)  # raises for a bad file or size
    if reference.spec.input.layout != "NCHW":
        raise ModelError(
            f"{source.name} has a {reference.spec.input.layout} input",
            "edgecv export --to tflite converts NCHW image models (as exported by PyTorch).",
        )
    details: dict[str, str] = {}
    with (
        _converter_output_held(settings.progress) as progress,
        tempfile.TemporaryDirectory(prefix="edgecv-tflite-") as work,
    ):
        folder = Path(work)
        samples = []
        with progress("reading calibration images", len(files)) if files else _no_stage() as advance:
            for file in files:
                samples.append(_nhwc(reference, file))
                advance(1)
        with progress("converting ONNX to TensorFlow", 1) as advance:
            saved_model = _to_saved_model(source, reference, folder, samples)
            advance(1)
        if settings.precision == "int8":
            data = _int8_model(saved_model, samples, io_type, settings.calib_method, details, progress)
        else:
            with progress(f"converting to TFLite {settings.precision}", 1) as advance:
                if settings.precision == "dynamic":
                    data = _dynamic_model(saved_model)
                else:
                    data = _float_model(saved_model, settings.precision == "fp16")
                advance(1)
        with atomic_target(target) as partial:
            partial.write_bytes(data)
    _write_metadata(target, source, reference, settings, io_type, len(files), details)
    if settings.precision == "int8" and settings.raw.get("edgetpu", True):
        _compile_edgetpu(target, settings.progress)
    return target


@contextlib.contextmanager
def _no_stage() -> Iterator[Advance]:
    yield lambda steps: None


def _output_path(source: Path, output: Path, precision: str) -> Path:
    target = output / f"{source.stem}_{precision}.tflite" if output.is_dir() else output
    if target.suffix.lower() != ".tflite":
        raise ConfigError(
            f"The output {target} is not a .tflite file", "Pass --output NAME.tflite or a folder."
        )
    return target


def _nhwc(reference: Model, file: Path) -> npt.NDArray[np.float32]:
    """The tensor the TFLite backend will feed for ``file``: edgecv's letterbox, NHWC, float 0..1."""
    from edgecv.backend import read_image

    tensor, _ = reference.preprocess(read_image(file))
    return np.ascontiguousarray(np.transpose(tensor, (0, 2, 3, 1)), dtype=np.float32)


def _onnx2tf_sample_data(samples: Sequence[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    """20 images for onnx2tf's own output check, so it never downloads its sample file (offline)."""
    import cv2

    if samples:
        images = [cv2.resize(samples[i % len(samples)][0], (SAMPLE_SIZE, SAMPLE_SIZE)) for i in range(20)]
        return np.stack(images).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, SAMPLE_SIZE * SAMPLE_SIZE * 3, dtype=np.float32)
    return np.stack([np.roll(ramp, 997 * i).reshape(SAMPLE_SIZE, SAMPLE_SIZE, 3) for i in range(20)])


@contextlib.contextmanager
def _recursion_limit(during: int) -> Iterator[None]:
    """At least ``during`` inside, and the process's own limit again afterwards.

    onnx2tf sets Python's recursion limit to 2**31 - 1 when imported and never restores it: any
    deep recursion later in the process (a hostile JSON file, say) then overflows the C stack and
    segfaults instead of raising RecursionError.
    """
    previous = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(max(previous, during))
        yield
    finally:
        sys.setrecursionlimit(previous)


def _to_saved_model(
    source: Path, reference: Model, folder: Path, samples: Sequence[npt.NDArray[np.float32]]
) -> Path:
    with _recursion_limit(ONNX2TF_RECURSION_LIMIT):
        return _convert_to_saved_model(source, reference, folder, samples)


def _convert_to_saved_model(
    source: Path, reference: Model, folder: Path, samples: Sequence[npt.NDArray[np.float32]]
) -> Path:
    onnx2tf = _module("onnx2tf")

    np.save(folder / SAMPLE_FILE, _onnx2tf_sample_data(samples))
    # onnx2tf renames the graph's ops and saves the result over its input file: give it a copy.
    copy = folder / source.name
    shutil.copyfile(source, copy)
    height, width = reference.spec.imgsz
    saved_model = folder / "saved_model"
    # Only for dynamic inputs: onnx2tf's shape rewrite breaks the static YOLO head (wa/model.22/Sub).
    static = all(dim is not None for dim in reference.spec.input.shape)
    shape = None if static else [f"{reference.spec.input.name}:1,3,{height},{width}"]
    try:
        # onnx2tf prints the SavedModel's signature to stdout even when told to be quiet.
        with working_directory(folder), contextlib.redirect_stdout(io.StringIO()):
            onnx2tf.convert(
                input_onnx_file_path=str(copy),
                output_folder_path=str(saved_model),
                overwrite_input_shape=shape,
                output_signaturedefs=True,
                not_use_onnxsim=True,  # onnxsim is not in the extra; the graphs we convert need no folding
                non_verbose=True,
            )
    except Exception as exc:  # onnx2tf raises bare exceptions (and SystemExit) for graphs it cannot map
        raise ModelError(
            f"onnx2tf cannot convert {source.name}: {one_line(exc)}",
            "Export a plain static-shape ONNX model (opset 13-17) from your training framework.",
        ) from exc
    except SystemExit as exc:
        raise ModelError(
            f"onnx2tf cannot convert {source.name} (it exited with {exc.code})",
            "Export a plain static-shape ONNX model (opset 13-17) from your training framework.",
        ) from exc
    return saved_model


def _converter(saved_model: Path) -> Any:
    tf = _module("tensorflow")

    return tf.lite.TFLiteConverter.from_saved_model(str(saved_model))


def _float_model(saved_model: Path, half: bool) -> bytes:
    tf = _module("tensorflow")

    converter = _converter(saved_model)
    if half:  # float16 weights, float32 compute and I/O (what GPU delegates and small flash want)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return bytes(converter.convert())


def _dynamic_model(saved_model: Path) -> bytes:
    tf = _module("tensorflow")

    converter = _converter(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic range
    return bytes(converter.convert())


def _int8_model(
    saved_model: Path,
    samples: Sequence[npt.NDArray[np.float32]],
    io_type: str,
    method: str,
    details: dict[str, str],
    progress: Progress,
) -> bytes:
    """Calibrate, (re)set the ranges, quantize everything but the head, keep the output float32."""
    tf = _module("tensorflow")
    convert = _module("tensorflow.lite.python.convert")

    converter = _converter(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    # Calibrate only, then quantize with mlir_quantize: the public converter cannot keep the head float.
    converter._experimental_calibrate_only = True
    with progress("calibrating", len(samples)) as advance:
        converter.representative_dataset = _representative(samples, advance)
        calibrated = bytes(converter.convert())
    if method == "average":
        with progress("averaging ranges", len(samples)) as advance:
            calibrated = average_ranges(calibrated, samples, advance)
    with progress("quantizing", 1) as advance:
        head = head_nodes(calibrated)
        # Body only (float input and output around it), then the input made integer: TFLiteConverter's path.
        quantized = convert.mlir_quantize(calibrated, fully_quantize=False, denylisted_nodes=head)
        result = _input_type(bytes(quantized), tf.uint8 if io_type == "uint8" else tf.int8)
        advance(1)
    details["edgecv_quantization"] = (
        f"full integer: activations int8 per tensor, weights int8 per channel, {io_type} input; "
        f"{len(head)} head ops kept float, float32 output"
    )
    return result


def _representative(
    samples: Sequence[npt.NDArray[np.float32]], advance: Advance
) -> Callable[[], Iterator[list[npt.NDArray[np.float32]]]]:
    """The converter's representative dataset: ``samples`` one by one, each one reported done."""

    def dataset() -> Iterator[list[npt.NDArray[np.float32]]]:
        for sample in samples:
            yield [sample]
            advance(1)

    return dataset


def _input_type(model: bytes, dtype: Any) -> bytes:
    """Make the input ``dtype`` (int8 or uint8) as TFLiteConverter's ``inference_input_type`` does.

    int8 drops the input QUANTIZE op; uint8 turns it into uint8 -> int8 (a shift by 128).
    """
    util = _module("tensorflow.lite.python.util")
    tf = _module("tensorflow")
    return bytes(
        util.modify_model_io_type(model, inference_input_type=dtype, inference_output_type=tf.float32)
    )


def _interpreter(model: bytes, *, keep_tensors: bool = False) -> Any:
    """TensorFlow's interpreter without XNNPACK, so every op and intermediate tensor stays visible."""
    tf = _module("tensorflow")

    interpreter = tf.lite.Interpreter(
        model_content=model,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=keep_tensors,
    )
    interpreter.allocate_tensors()
    return interpreter


def average_ranges(
    calibrated: bytes, samples: Sequence[npt.NDArray[np.float32]], advance: Advance | None = None
) -> bytes:
    """Replace each tensor's calibrated range by the mean over ``samples`` of its per-image min/max.

    TensorFlow keeps the global min/max: a single bright or cluttered image then sets the int8 step of
    a layer for every other image. The average (TensorRT's and ONNX Runtime's "moving average" idea)
    clips those rare extremes and gives the common case finer steps (YOLOv8n, coco128: 0.424 -> 0.430).
    """
    flatbuffer_utils = _module("tensorflow.lite.tools.flatbuffer_utils")

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    tensors = model.subgraphs[0].tensors
    ranged = [
        index
        for index, tensor in enumerate(tensors)
        if tensor.quantization is not None
        and tensor.quantization.min is not None
        and len(tensor.quantization.min) == 1
    ]
    interpreter = _interpreter(calibrated, keep_tensors=True)
    feed = interpreter.get_input_details()[0]["index"]
    lows = np.zeros(len(ranged), dtype=np.float64)
    highs = np.zeros(len(ranged), dtype=np.float64)
    for sample in samples:
        interpreter.set_tensor(feed, sample)
        interpreter.invoke()
        for slot, index in enumerate(ranged):
            values = interpreter.get_tensor(index)
            lows[slot] += float(values.min())
            highs[slot] += float(values.max())
        if advance is not None:
            advance(1)
    for slot, index in enumerate(ranged):
        tensors[index].quantization.min = [lows[slot] / len(samples)]
        tensors[index].quantization.max = [highs[slot] / len(samples)]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


FEATURE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def head_nodes(model: bytes) -> list[str]:
    """Output-tensor names of the ops between the last feature convolutions and the outputs.

    Walks back from every output and stops at convolutions with more than one output channel: what
    it passes (reshapes, DFL softmax and its 1-channel conv, box decode, sigmoid, concat) is the
    decode, which int8 cannot represent (pixel boxes and 0..1 scores share tensors).
    """
    interpreter = _interpreter(model)
    tensors = {detail["index"]: detail for detail in interpreter.get_tensor_details()}
    producers = {out: op for op in interpreter._get_ops_details() for out in op["outputs"]}
    head: dict[int, str] = {}
    pending = [detail["index"] for detail in interpreter.get_output_details()]
    while pending:
        op = producers.get(pending.pop())
        if op is None or op["index"] in head:
            continue
        if op["op_name"] in FEATURE_OPS and tensors[op["outputs"][0]]["shape"][-1] > 1:
            continue
        head[op["index"]] = str(tensors[op["outputs"][0]]["name"])
        pending.extend(index for index in op["inputs"] if index >= 0)
    return list(head.values())


def _versions() -> dict[str, str]:
    onnx2tf = _module("onnx2tf")
    tf = _module("tensorflow")

    import edgecv
    import edgecv_tflite

    return {
        "edgecv": edgecv.__version__,
        "edgecv-tflite": edgecv_tflite.__version__,
        "tensorflow": str(tf.__version__),
        "onnx2tf": str(getattr(onnx2tf, "__version__", "unknown")),
    }


def _yaml_text(value: str) -> str:
    """A one-line value the plugin's small YAML reader gives back unchanged (quotes are stripped)."""
    text = " ".join(value.replace(" #", " ").split())
    return f'"{text}"'


def metadata_text(metadata: Mapping[str, str], names: Sequence[str], imgsz: tuple[int, int]) -> str:
    """Ultralytics-style ``metadata.yaml``: names as a map, imgsz as a list, the rest as strings."""
    lines = [
        f"{key}: {_yaml_text(value)}" for key, value in metadata.items() if key not in ("names", "imgsz")
    ]
    lines += ["imgsz:", f"- {imgsz[0]}", f"- {imgsz[1]}", "names:"]
    for index, name in enumerate(names):
        quote = '"' if "'" in name else "'"
        lines.append(f"  {index}: {quote}{name}{quote}")
    return "\n".join(lines) + "\n"


def _write_metadata(
    target: Path,
    source: Path,
    reference: Model,
    settings: ExportOptions,
    io_type: str,
    calib_count: int,
    details: Mapping[str, str],
) -> None:
    """``<stem>_metadata.yaml`` beside the model: where the TFLite loader looks for names and imgsz."""
    spec = reference.spec
    metadata = {k: v for k, v in spec.metadata.items() if not k.startswith("edgecv_") and k != "args"}
    metadata.update(
        {
            "edgecv_precision": settings.precision,
            "edgecv_source": source.name,
            "edgecv_source_sha256": spec.sha256,
            "edgecv_versions": json.dumps(_versions()),
            **details,
        }
    )
    if settings.precision == "int8":
        assert settings.calib is not None
        metadata["edgecv_input_type"] = io_type
        metadata["edgecv_calibration"] = json.dumps(
            {"folder": str(settings.calib.resolve()), "count": calib_count, "method": settings.calib_method}
        )
    text = metadata_text(metadata, spec.names, spec.imgsz)
    with atomic_target(target.with_name(f"{target.stem}_metadata.yaml")) as partial:
        partial.write_text(text, encoding="utf-8")


def _compile_edgetpu(model: Path, progress: Progress) -> Path | None:
    """``<stem>_edgetpu.tflite`` beside ``model`` when edgetpu_compiler is installed; else nothing.

    The float head stays on the CPU (the compiler maps the int8 part and leaves the rest). A failed
    compile is logged, not raised: the CPU model written before is complete and usable.
    """
    compiler = shutil.which(EDGETPU_COMPILER)
    if compiler is None:
        logger.info("edgetpu_compiler not found; skipping the Edge TPU model")
        return None
    try:
        with progress("compiling for the Edge TPU", 1) as advance:
            result = subprocess.run(
                [compiler, "-s", "-o", str(model.parent), str(model)],
                capture_output=True,
                text=True,
                timeout=EDGETPU_TIMEOUT_S,
                check=False,
            )
            advance(1)
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("edgetpu_compiler failed on %s: %s", model.name, exc)
        return None
    compiled = model.with_name(f"{model.stem}_edgetpu.tflite")
    if result.returncode != 0 or not compiled.is_file():
        logger.warning(
            "edgetpu_compiler failed on %s: %s", model.name, result.stdout[-500:] + result.stderr[-500:]
        )
        return None
    logger.info("Edge TPU model written to %s", compiled)
    return compiled
