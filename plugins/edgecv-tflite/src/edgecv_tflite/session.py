"""Everything that touches the TFLite interpreter: options, tensor descriptions, (de)quantization."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv.backend import (
    BackendError,
    ConfigError,
    ModelError,
    Quantization,
    SessionSpec,
    TensorSpec,
    check_options,
    one_line,
    positive_int,
    single_input,
    stderr_captured,
)
from edgecv_tflite import runtime
from edgecv_tflite.metadata import read_metadata

KNOWN_OPTIONS = frozenset({"threads", "boxes_normalized"})
EDGETPU_OPTIONS = KNOWN_OPTIONS | {"device"}
EDGETPU_OP = b"edgetpu-custom-op"
DEVICE_FORMS = "usb, usb:N, pci or pci:N"


class OutputTensor:
    """An output's interpreter index and how to turn its values into float32."""

    def __init__(
        self, index: int, dtype: np.dtype[Any], scales: npt.NDArray[np.float32], zero_points: Any, axis: int
    ):
        self.index = index
        self.quantized = dtype.kind in "iu" and scales.size > 0
        shape_axis = axis
        self.scale: npt.NDArray[np.float32] | np.float32 = scales.astype(np.float32)
        self.zero_point: npt.NDArray[np.float32] | np.float32 = np.asarray(zero_points, dtype=np.float32)
        self.axis = shape_axis if scales.size > 1 else None

    def dequantize(self, values: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        if not self.quantized:
            return np.asarray(values, dtype=np.float32)
        scale, zero_point = self.scale, self.zero_point
        if self.axis is not None:
            shape = [1] * values.ndim
            shape[self.axis] = -1
            scale, zero_point = np.reshape(scale, shape), np.reshape(zero_point, shape)
        else:
            scale, zero_point = np.float32(np.ravel(scale)[0]), np.float32(np.ravel(zero_point)[0])
        result: npt.NDArray[np.float32] = (values.astype(np.float32) - zero_point) * scale
        return result


def _output(detail: Mapping[str, Any]) -> OutputTensor:
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", ()), dtype=np.float32)
    zero_points = np.asarray(params.get("zero_points", ()), dtype=np.int64)
    if scales.size == 0 and detail.get("quantization", (0.0, 0))[0]:
        scale, zero_point = detail["quantization"]
        scales, zero_points = np.asarray([scale], np.float32), np.asarray([zero_point], np.int64)
    return OutputTensor(
        int(detail["index"]),
        np.dtype(detail["dtype"]),
        scales,
        zero_points,
        int(params.get("quantized_dimension", 0)),
    )


def _quantization(detail: Mapping[str, Any]) -> Quantization | None:
    if np.dtype(detail["dtype"]).kind not in "iu":
        return None
    params = detail.get("quantization_parameters") or {}
    scales = [float(s) for s in np.ravel(params.get("scales", ()))]
    zero_points = [int(z) for z in np.ravel(params.get("zero_points", ()))]
    if not scales:
        scale, zero_point = detail.get("quantization", (0.0, 0))
        if not scale:
            return None
        scales, zero_points = [float(scale)], [int(zero_point)]
    if len(scales) == 1:
        return Quantization(scale=scales[0], zero_point=zero_points[0] if zero_points else 0)
    return Quantization(
        scale=tuple(scales), zero_point=tuple(zero_points), axis=int(params.get("quantized_dimension", 0))
    )


def _tensor(detail: Mapping[str, Any]) -> TensorSpec:
    signature = detail.get("shape_signature")
    dims = signature if signature is not None and len(signature) else detail["shape"]
    shape = tuple(int(d) if int(d) > 0 else None for d in dims)
    return TensorSpec(str(detail["name"]), shape, np.dtype(detail["dtype"]).name, _quantization(detail))


def _check_options(options: Mapping[str, Any], known: frozenset[str], backend: str) -> None:
    check_options(options, known, backend)
    positive_int(options, "threads", backend)


def is_edgetpu_model(path: Path) -> bool:
    """Compiled for the Edge TPU: named ``*_edgetpu.tflite`` (edgetpu_compiler's suffix) or holds its op."""
    if path.name.lower().endswith("_edgetpu.tflite"):
        return True
    try:
        return EDGETPU_OP in path.read_bytes()
    except OSError:
        return False


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise ModelError(f"{path} is a folder, not a .tflite file", "Pass the .tflite file itself.")


def _refuse_edgetpu_model(path: Path) -> None:
    """The CPU interpreter cannot run the Edge TPU's custom op: say which backend can, or what it lacks."""
    if not is_edgetpu_model(path):
        return
    status = runtime.check_edgetpu()
    reason = (
        "the Edge TPU backend is available: run it with --backend edgetpu"
        if status.available
        else (f"no Edge TPU here ({status.reason})")
    )
    raise ModelError(
        f"{path.name} is compiled for the Edge TPU and cannot run on the CPU TFLite backend; {reason}",
        "" if status.available else status.hint,
    )


@contextlib.contextmanager
def _native_stderr_filtered() -> Iterator[None]:
    """Hold back the C++ runtime's stderr while a model loads, then pass on all but ``INFO:`` lines.

    LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" (and its own copy of load errors)
    straight to file descriptor 2, which would break edgecv's one-line error output. On failure the
    held text is dropped: the exception carries the runtime's message.
    """
    with stderr_captured() as lines:
        yield
    kept = [line for line in lines if not line.startswith("INFO:")]
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")


def _model_content(path: Path) -> bytes:
    """The model's bytes: LiteRT's bindings refuse a file name that is not UTF-8, not its contents."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"Cannot read {path}: {exc.strerror or exc}", "Check the file.") from exc


def _interpreter(path: Path, options: Mapping[str, Any], delegates: Sequence[Any]) -> Any:
    module = runtime.interpreter_module()
    content = _model_content(path)  # the interpreter keeps a reference to it
    try:
        with _native_stderr_filtered():
            interpreter = module.Interpreter(
                model_content=content,
                num_threads=options.get("threads"),
                experimental_delegates=list(delegates) or None,
            )
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(
            f"TFLite cannot load {path.name}: {one_line(exc)}",
            "The file is corrupt, truncated or not a TFLite model: export or download it again.",
        ) from exc
    return interpreter


def _edgetpu_interpreter(path: Path, options: Mapping[str, Any]) -> tuple[Any, tuple[Any, ...]]:
    """The interpreter on the Edge TPU and the delegates it was given (pycoral keeps its own)."""
    device = options.get("device")
    if device is not None and not _valid_device(str(device)):
        raise ConfigError(f"Unknown Edge TPU device {device!r}", f"Pass device as {DEVICE_FORMS}.")
    if importlib.util.find_spec("pycoral") is not None:
        edgetpu = importlib.import_module("pycoral.utils.edgetpu")
        try:
            interpreter = edgetpu.make_interpreter(_model_content(path), device=device)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"The Edge TPU cannot load {path.name}: {one_line(exc)}",
                "Compile the full-integer model with edgetpu_compiler, or check the device.",
            ) from exc
        return interpreter, ()
    delegates = (runtime.load_edgetpu_delegate(str(device) if device else None),)
    return _interpreter(path, options, delegates), delegates


def _valid_device(device: str) -> bool:
    kind, _, index = device.partition(":")
    return kind in ("usb", "pci") and (index == "" or index.isdigit())


class TfliteSession:
    """An allocated interpreter with its input and output tensor indices bound once."""

    def __init__(
        self, interpreter: Any, path: Path, options: Mapping[str, Any], delegates: Sequence[Any] = ()
    ) -> None:
        self.interpreter = interpreter
        self.delegates = tuple(delegates)
        detail = single_input(interpreter.get_input_details(), path)
        self.input_index = int(detail["index"])
        output_details = interpreter.get_output_details()
        self.outputs = [_output(d) for d in output_details]
        self.output_indices = [o.index for o in self.outputs]
        input_spec = _tensor(detail)
        normalized = options.get("boxes_normalized")
        if normalized is None:
            normalized = probe_boxes_normalized(self, input_spec)
        self._spec = SessionSpec(
            input=input_spec,
            outputs=tuple(_tensor(d) for d in output_details),
            metadata=read_metadata(path),
            layout="NHWC",
            boxes_normalized=normalized,
        )

    @classmethod
    def open(cls, path: Path, options: Mapping[str, Any]) -> TfliteSession:
        """The ``tflite`` backend: the CPU interpreter (XNNPACK)."""
        _check_options(options, KNOWN_OPTIONS, "tflite")
        _check_file(path)
        _refuse_edgetpu_model(path)
        return cls(_interpreter(path, options, ()), path, options)

    @classmethod
    def open_edgetpu(cls, path: Path, options: Mapping[str, Any]) -> TfliteSession:
        """The ``edgetpu`` backend: the interpreter with the Edge TPU delegate (or pycoral's)."""
        _check_options(options, EDGETPU_OPTIONS, "edgetpu")
        _check_file(path)
        interpreter, delegates = _edgetpu_interpreter(path, options)
        return cls(interpreter, path, options, delegates)

    @property
    def spec(self) -> SessionSpec:
        return self._spec

    def run(self, tensor: npt.NDArray[Any]) -> list[npt.NDArray[np.float32]]:
        interpreter = self.interpreter
        if interpreter is None:
            raise BackendError("The TFLite model was closed", "Load the model again to run it.")
        interpreter.set_tensor(self.input_index, tensor)
        interpreter.invoke()
        return [o.dequantize(interpreter.get_tensor(o.index)) for o in self.outputs]

    @property
    def bare(self) -> Callable[[npt.NDArray[Any]], object]:
        interpreter, feed, indices = self.interpreter, self.input_index, self.output_indices

        def run(tensor: npt.NDArray[Any]) -> object:
            # What a hand-written TFLite script does: set, invoke, read the raw outputs.
            interpreter.set_tensor(feed, tensor)
            interpreter.invoke()
            return [interpreter.get_tensor(index) for index in indices]

        return run

    def close(self) -> None:
        """Drop the interpreter before its delegates: the Edge TPU is released when both are gone."""
        self.interpreter = None
        self.delegates = ()


def probe_boxes_normalized(session: TfliteSession, tensor: TensorSpec) -> bool | None:
    """Whether the model emits boxes in 0..1 of the input, from the numbers themselves.

    One run on a grey (114) image: a YOLO head still regresses a box at every anchor, whose centres
    span the whole input, so their largest value is about the input width in pixel units and about 1
    when normalized. ``None`` (let the core decide) for outputs that are not ``[1, C, N]``/``[1, N, C]``.
    """
    if any(d is None for d in tensor.shape):
        return None
    grey = np.full(tuple(int(d) for d in tensor.shape if d is not None), 114 / 255, dtype=np.float32)
    quant = tensor.quantization
    if quant is not None:
        scale = float(np.ravel(np.asarray(quant.scale))[0])
        zero_point = float(np.ravel(np.asarray(quant.zero_point))[0])
        info = np.iinfo(np.dtype(tensor.dtype))
        values = np.clip(np.rint(grey / scale + zero_point), info.min, info.max)
        feed = values.astype(tensor.dtype)
    else:
        feed = grey.astype(tensor.dtype)
    first = session.run(feed)[0]
    if first.ndim != 3 or first.shape[0] != 1:
        return None
    boxes = first[0, :4, :] if first.shape[1] < first.shape[2] else first[0, :, :4].T
    return bool(np.abs(boxes[:2]).max() <= 2.0)
