"""Everything that touches OpenVINO at run time: reading IR/ONNX, compiling, the infer request.

One synchronous infer request is made at load time and reused for every frame. The input array
is wrapped in an ``ov.Tensor`` that shares its memory (no copy). Each static float32 output is
written by OpenVINO straight into a fresh numpy array bound as the output tensor, so the result
is returned without a copy and the next call never overwrites it; other outputs (dynamic shapes,
other types) are copied out of the request's buffers.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import openvino as ov

from edgecv.backend import (
    BackendError,
    ModelError,
    Outputs,
    SessionSpec,
    TensorSpec,
    one_line,
    single_input,
    stderr_captured,
)
from edgecv_openvino import metadata, modelfiles
from edgecv_openvino.settings import Settings, check_device

CORRUPT_HINT = "The file is corrupt, truncated or not an OpenVINO IR/ONNX model: export or download it again."


class PrecisionWarning(UserWarning):
    """The device runs another inference precision than the one asked for."""


def _dims(shape: ov.PartialShape) -> tuple[int | None, ...]:
    return tuple(d.get_length() if d.is_static else None for d in shape)


def _dtype(element: ov.Type) -> str:
    return str(np.dtype(element.to_dtype()))


def _tensor(port: ov.Output) -> TensorSpec:
    names = port.get_names()
    name = port.get_any_name() if names else f"output{port.get_index()}"
    return TensorSpec(name, _dims(port.get_partial_shape()), _dtype(port.get_element_type()))


def _static(output: TensorSpec) -> tuple[int, ...] | None:
    """The shape of a float32 output OpenVINO can write into an array of ours, else ``None``."""
    dims = tuple(d for d in output.shape if d is not None)
    return dims if len(dims) == len(output.shape) and output.dtype == "float32" else None


def _is_utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_model(core: ov.Core, files: modelfiles.ModelFiles) -> ov.Model:
    """The model, from its file names, or from its bytes when a name is not UTF-8 (OpenVINO takes
    C++ strings); a file it cannot read is one ``ModelError`` (its frontends' stderr is dropped)."""
    try:
        with stderr_captured():  # on a bad file OpenVINO tries each frontend, and some print
            if _is_utf8(files.graph) and (files.weights is None or _is_utf8(files.weights)):
                if files.weights is None:
                    return core.read_model(str(files.graph))
                return core.read_model(str(files.graph), str(files.weights))
            graph = files.graph.read_bytes()
            if files.weights is None:
                return core.read_model(graph)
            weights = np.fromfile(files.weights, dtype=np.uint8)
            return core.read_model(graph, ov.Tensor(weights))
    except OSError as exc:
        raise ModelError(f"Cannot read {files.graph}: {exc.strerror or exc}", "Check the file.") from exc
    except Exception as exc:  # OpenVINO raises RuntimeError with a multi-line C++ trace
        raise ModelError(f"OpenVINO cannot load {files.graph.name}: {_reason(exc)}", CORRUPT_HINT) from exc


# Lines of OpenVINO's exception texts that say where in its C++ sources, not what went wrong.
_LOCATION_LINES = ("Exception from src", "Check '", "FrontEnd API failed")


def _reason(exc: BaseException) -> str:
    """The informative line of an OpenVINO exception (its text starts with C++ source locations)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_LOCATION_LINES)]
    reason = (useful or lines or [type(exc).__name__])[0]
    if reason.startswith("Unable to read the model"):  # then the path and every frontend's name
        return "none of its readers (IR, ONNX, ...) recognises the file"
    return one_line(reason).rstrip(".!")


class OpenVinoSession:
    """A compiled model with one infer request, reused for every frame."""

    def __init__(self, compiled: ov.CompiledModel, spec: SessionSpec, settings: Settings) -> None:
        self.compiled = compiled
        self._spec = spec
        self.settings = settings
        self.request = compiled.create_infer_request()
        self._bare_request: ov.InferRequest | None = None
        # Static float32 outputs get a fresh array bound per call; the others are copied out.
        self._bound = [_static(o) for o in spec.outputs]
        # The request's tensors are shared state: one caller at a time.
        self._lock = threading.Lock()
        self.precision = _effective_precision(compiled, settings.precision)

    @classmethod
    def open(cls, path: Path, options: Mapping[str, Any]) -> OpenVinoSession:
        settings = Settings.parse(options)  # bad options fail before any file is read
        files = modelfiles.resolve(path)
        core = ov.Core()
        device = check_device(settings.device, core.available_devices)
        model = read_model(core, files)
        image_input = single_input(model.inputs, path)
        spec = SessionSpec(
            input=_tensor(image_input),
            outputs=tuple(_tensor(o) for o in model.outputs),
            metadata=metadata.read(model, files.metadata),
        )
        try:
            with stderr_captured():
                compiled = core.compile_model(model, device, settings.properties())
        except Exception as exc:
            raise BackendError(
                f"OpenVINO cannot compile {path.name} for {device}: {_reason(exc)}",
                "Try device=CPU, or update openvino (pip install -U openvino).",
            ) from exc
        session = cls(compiled, spec, settings)
        if session.precision != settings.precision:
            warnings.warn(
                f"OpenVINO runs {path.name} in {session.precision} on {device}, not {settings.precision} "
                "(the device has no such arithmetic)",
                PrecisionWarning,
                stacklevel=2,
            )
        return session

    @property
    def spec(self) -> SessionSpec:
        return self._spec

    def run(self, tensor: npt.NDArray[Any]) -> Outputs:
        request = self.request
        # Held here until infer() returns: the ov.Tensor shares its memory (older OpenVINO keeps no
        # reference to it, and a temporary copy of a strided array would be freed under it).
        data = np.ascontiguousarray(tensor)
        with self._lock:
            request.set_input_tensor(ov.Tensor(data, shared_memory=True))
            outputs: Outputs = []
            for index, shape in enumerate(self._bound):
                if shape is not None:
                    array = np.empty(shape, dtype=np.float32)
                    request.set_output_tensor(index, ov.Tensor(array, shared_memory=True))
                    outputs.append(array)
            request.infer()
            for index, shape in enumerate(self._bound):
                if shape is None:
                    copied = np.array(request.get_output_tensor(index).data, dtype=np.float32)
                    outputs.insert(index, copied)
        return outputs

    @property
    def bare(self) -> Callable[[npt.NDArray[Any]], object]:
        """OpenVINO's own zero-copy call (``infer`` sharing inputs and outputs), on a request of its
        own: its outputs are the request's buffers, which ``run``'s results must never be."""
        if self._bare_request is None:
            self._bare_request = self.compiled.create_infer_request()
        infer = self._bare_request.infer
        return lambda tensor: infer({0: tensor}, share_inputs=True, share_outputs=True)

    def device(self) -> dict[str, Any]:
        """What ``edgecv bench`` reports: the device, its name, the precision it runs, OpenVINO's version."""
        devices = self.compiled.get_property("EXECUTION_DEVICES")
        core = ov.Core()
        names = {d: str(core.get_property(d, "FULL_DEVICE_NAME")) for d in devices}
        return {
            "device": ", ".join(devices),
            "name": ", ".join(names.values()),
            "precision": self.precision,
            "openvino": version("openvino"),
        }

    def temperature(self) -> float | None:
        return None

    def close(self) -> None:
        """OpenVINO frees the compiled model with the object; drop the requests."""
        self._bare_request = None


def _effective_precision(compiled: ov.CompiledModel, requested: str) -> str:
    """The precision the device chose (a CPU without f16 arithmetic runs f16 as bf16 or f32)."""
    try:
        chosen = compiled.get_property("INFERENCE_PRECISION_HINT")
    except Exception:  # AUTO, MULTI and HETERO do not report it
        return requested
    name = chosen.get_type_name() if isinstance(chosen, ov.Type) else str(chosen)
    return {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(name, name)
