"""The seam between edgecv and TensorRT + CUDA: finding them, and running one engine.

Everything here calls the real APIs (``tensorrt``, ``cuda.bindings.runtime``) on objects it is
*given*: ``EngineRunner(trt, cuda, engine_bytes)`` takes the ``tensorrt`` module and a ``CudaApi``.
``load_tensorrt()`` and ``load_cuda()`` return the real ones; tests pass fakes that follow the real
API's names, shapes, dtypes and call order (``tests/trt_fakes.py``) instead. That is the plugin's
test seam: the three module-level functions ``availability``, ``load_tensorrt`` and ``load_cuda``,
which every caller looks up on this module at call time (``trt_fakes.install_fakes`` replaces them).

Nothing here imports TensorRT or CUDA at module import time: ``edgecv backends`` imports the
plugin on every run.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import importlib.util
import logging
import threading
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from edgecv.backend import (
    Availability,
    BackendError,
    ModelError,
    TensorSpec,
    one_line,
    pip_hint,
    single_input,
)
from edgecv_tensorrt.versions import TensorRTVersion

if TYPE_CHECKING:
    import tensorrt

LOG = logging.getLogger("edgecv.tensorrt")

JETSON_HINT = "Jetson: sudo apt install python3-libnvinfer (JetPack)"
X86_HINT = f"x86/SBSA: {pip_hint('edgecv-tensorrt[pip]')}"
INSTALL_HINT = f"{JETSON_HINT}; {X86_HINT}"
GPU_HINT = "TensorRT runs on an NVIDIA GPU: a Jetson with JetPack 6, or a machine with the NVIDIA driver"


class TensorRTModule(Protocol):
    """The part of the ``tensorrt`` module edgecv-tensorrt uses, typed by ``tensorrt-stubs``.

    The real module satisfies it (mypy checks that module against this protocol in
    ``load_tensorrt``); tests pass a fake module with the same names.
    """

    @property
    def ILogger(self) -> type[tensorrt.ILogger]: ...
    @property
    def Logger(self) -> type[tensorrt.Logger]: ...
    @property
    def Runtime(self) -> type[tensorrt.Runtime]: ...
    @property
    def TensorIOMode(self) -> type[tensorrt.TensorIOMode]: ...
    @property
    def DataType(self) -> type[tensorrt.DataType]: ...
    @property
    def Dims(self) -> type[tensorrt.Dims]: ...
    # The builder half (build.py).
    @property
    def Builder(self) -> type[tensorrt.Builder]: ...
    @property
    def OnnxParser(self) -> type[tensorrt.OnnxParser]: ...
    @property
    def BuilderFlag(self) -> type[tensorrt.BuilderFlag]: ...
    @property
    def NetworkDefinitionCreationFlag(self) -> type[tensorrt.NetworkDefinitionCreationFlag]: ...
    @property
    def MemoryPoolType(self) -> type[tensorrt.MemoryPoolType]: ...


def tensorrt_version(trt: TensorRTModule) -> str:
    """``trt.__version__`` (``"10.3.0.30"``); the protocol cannot name a module's dunder."""
    version = getattr(trt, "__version__", "")
    return version if isinstance(version, str) else ""


# --- availability: cheap, imports nothing heavy ----------------------------------------------------


def tensorrt_problem() -> str | None:
    """Why the TensorRT Python bindings cannot be used here, or ``None``; does not import them.

    ``tensorrt-stubs`` installs a folder ``tensorrt`` holding only ``.pyi`` files, which Python
    imports as an empty namespace package: a module spec alone does not mean TensorRT is there.
    """
    try:
        spec = importlib.util.find_spec("tensorrt")
    except (ImportError, ValueError) as exc:
        return f"module tensorrt cannot be found ({one_line(exc)})"
    if spec is None:
        return "TensorRT's Python bindings (module tensorrt) are not installed"
    if spec.origin in (None, "namespace") or not spec.has_location:
        return "TensorRT is not installed (module tensorrt here holds only type stubs, from tensorrt-stubs)"
    return None


class _CudaRuntime(Protocol):
    """The functions of ``cuda.bindings.runtime`` (cuda-python 12.x) this module calls.

    cuda-python ships no type information; these signatures follow its documentation. Every call
    returns a tuple: the ``cudaError_t`` first, then the values.
    """

    cudaError_t: Any
    cudaMemcpyKind: Any

    def cudaGetDeviceCount(self) -> tuple[Any, int | None]: ...
    def cudaGetDevice(self) -> tuple[Any, int | None]: ...
    def cudaGetDeviceProperties(self, device: int) -> tuple[Any, Any]: ...
    def cudaRuntimeGetVersion(self) -> tuple[Any, int | None]: ...
    def cudaDriverGetVersion(self) -> tuple[Any, int | None]: ...
    def cudaGetErrorName(self, error: Any) -> tuple[Any, bytes]: ...
    def cudaGetErrorString(self, error: Any) -> tuple[Any, bytes]: ...
    def cudaMalloc(self, size: int) -> tuple[Any, int | None]: ...
    def cudaFree(self, pointer: int) -> tuple[Any]: ...
    def cudaMallocHost(self, size: int) -> tuple[Any, int | None]: ...
    def cudaFreeHost(self, pointer: int) -> tuple[Any]: ...
    def cudaStreamCreate(self) -> tuple[Any, Any]: ...
    def cudaStreamDestroy(self, stream: int) -> tuple[Any]: ...
    def cudaStreamSynchronize(self, stream: int) -> tuple[Any]: ...
    def cudaMemcpyAsync(self, dst: int, src: int, count: int, kind: Any, stream: int) -> tuple[Any]: ...


def _cudart() -> _CudaRuntime:
    return cast(_CudaRuntime, importlib.import_module("cuda.bindings.runtime"))


def _error_text(cudart: _CudaRuntime, error: Any) -> str:
    name = getattr(error, "name", str(error))
    _, text = cudart.cudaGetErrorString(error)
    return f"{name}: {text.decode(errors='replace')}" if text else str(name)


@functools.lru_cache(maxsize=1)
def cuda_problem() -> str | None:
    """Why no CUDA device can be used here, or ``None`` (asks the driver once per process)."""
    try:
        cudart = _cudart()
    except ImportError as exc:
        return f"cuda-python (cuda.bindings) cannot be imported: {one_line(exc)}"
    error, count = cudart.cudaGetDeviceCount()
    if error != cudart.cudaError_t.cudaSuccess:
        meaning = {
            "cudaErrorInsufficientDriver": "no NVIDIA driver, or one too old for this CUDA",
            "cudaErrorNoDevice": "no NVIDIA GPU found",
        }.get(getattr(error, "name", ""), "CUDA cannot be initialized")
        return f"{meaning} ({_error_text(cudart, error)})"
    if not count:
        return "no NVIDIA GPU found"
    return None


def availability() -> Availability:
    """Whether the ``tensorrt`` backend can run here: the real TensorRT bindings and a CUDA GPU."""
    missing_trt = tensorrt_problem()
    missing_gpu = cuda_problem()
    if missing_trt and missing_gpu:
        return Availability(False, f"{missing_trt}; {missing_gpu}", INSTALL_HINT)
    if missing_trt:
        return Availability(False, missing_trt, INSTALL_HINT)
    if missing_gpu:
        return Availability(False, missing_gpu, GPU_HINT)
    return Availability(True)


# --- the real TensorRT and CUDA ----------------------------------------------------------------


def load_tensorrt() -> TensorRTModule:
    """The real ``tensorrt`` module, checked to be TensorRT itself and new enough."""
    problem = tensorrt_problem()
    if problem is not None:
        raise BackendError(problem, INSTALL_HINT)
    try:
        import tensorrt
    except Exception as exc:  # its native libraries (libnvinfer) may fail to load
        raise BackendError(f"TensorRT cannot be imported: {one_line(exc)}", INSTALL_HINT) from exc
    trt: TensorRTModule = tensorrt
    if not hasattr(tensorrt, "Runtime"):
        raise BackendError("module tensorrt is not NVIDIA TensorRT (it has no Runtime)", INSTALL_HINT)
    TensorRTVersion.parse(tensorrt_version(trt))  # BackendError for a version edgecv does not run
    return trt


class CudaApi(Protocol):
    """The CUDA calls the runner makes: device and pinned host memory, one stream, async copies.

    Pointers and streams are plain ints (what ``set_tensor_address`` and ``execute_async_v3``
    take). ``host_alloc`` returns the pointer and a byte view of the page-locked memory.
    """

    def device_name(self) -> str: ...
    def compute_capability(self) -> str: ...
    def device_alloc(self, nbytes: int) -> int: ...
    def device_free(self, pointer: int) -> None: ...
    def host_alloc(self, nbytes: int) -> tuple[int, npt.NDArray[np.uint8]]: ...
    def host_free(self, pointer: int) -> None: ...
    def stream_create(self) -> int: ...
    def stream_destroy(self, stream: int) -> None: ...
    def copy_to_device(self, device: int, host: int, nbytes: int, stream: int) -> None: ...
    def copy_to_host(self, host: int, device: int, nbytes: int, stream: int) -> None: ...
    def synchronize(self, stream: int) -> None: ...


class RealCuda:
    """``CudaApi`` on ``cuda.bindings.runtime`` (cuda-python), on the current device."""

    def __init__(self, cudart: _CudaRuntime | None = None) -> None:
        self._rt = cudart if cudart is not None else _cudart()
        self._properties: Any = None

    def _check(self, result: tuple[Any, ...], call: str) -> Any:
        error = result[0]
        if error != self._rt.cudaError_t.cudaSuccess:
            raise BackendError(
                f"CUDA {call} failed: {_error_text(self._rt, error)}",
                "Check the GPU (nvidia-smi, or tegrastats on a Jetson) and free GPU memory.",
            )
        return result[1] if len(result) > 1 else None

    def _device_properties(self) -> Any:
        if self._properties is None:
            device = self._check(self._rt.cudaGetDevice(), "cudaGetDevice")
            self._properties = self._check(
                self._rt.cudaGetDeviceProperties(int(device)), "cudaGetDeviceProperties"
            )
        return self._properties

    def device_name(self) -> str:
        name = self._device_properties().name
        text = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        return text.split("\x00", 1)[0].strip()

    def compute_capability(self) -> str:
        properties = self._device_properties()
        return f"{int(properties.major)}.{int(properties.minor)}"

    def device_alloc(self, nbytes: int) -> int:
        return int(self._check(self._rt.cudaMalloc(nbytes), "cudaMalloc"))

    def device_free(self, pointer: int) -> None:
        self._check(self._rt.cudaFree(pointer), "cudaFree")

    def host_alloc(self, nbytes: int) -> tuple[int, npt.NDArray[np.uint8]]:
        pointer = int(self._check(self._rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        view = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(pointer))
        return pointer, view

    def host_free(self, pointer: int) -> None:
        self._check(self._rt.cudaFreeHost(pointer), "cudaFreeHost")

    def stream_create(self) -> int:
        return int(self._check(self._rt.cudaStreamCreate(), "cudaStreamCreate"))

    def stream_destroy(self, stream: int) -> None:
        self._check(self._rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def copy_to_device(self, device: int, host: int, nbytes: int, stream: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self._rt.cudaMemcpyAsync(device, host, nbytes, kind, stream), "cudaMemcpyAsync")

    def copy_to_host(self, host: int, device: int, nbytes: int, stream: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self._rt.cudaMemcpyAsync(host, device, nbytes, kind, stream), "cudaMemcpyAsync")

    def synchronize(self, stream: int) -> None:
        self._check(self._rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def versions(self) -> tuple[int, int]:
        """(CUDA runtime, driver) versions as CUDA encodes them (12060 = 12.6)."""
        runtime = self._check(self._rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")
        driver = self._check(self._rt.cudaDriverGetVersion(), "cudaDriverGetVersion")
        return int(runtime), int(driver)


def load_cuda() -> CudaApi:
    """The real CUDA layer; ``BackendError`` when no GPU can be used."""
    problem = cuda_problem()
    if problem is not None:
        raise BackendError(problem, GPU_HINT)
    return RealCuda()


@dataclass(frozen=True)
class MachineInfo:
    """What an engine is bound to: TensorRT version, GPU name and compute capability (``"8.7"``)."""

    trt_version: str
    gpu_name: str
    compute_capability: str


def machine_info(trt: TensorRTModule, cuda: CudaApi) -> MachineInfo:
    return MachineInfo(tensorrt_version(trt), cuda.device_name(), cuda.compute_capability())


# --- running an engine -------------------------------------------------------------------------

# TensorRT DataType names -> numpy; others (BF16, FP8, INT4, FP4) cannot cross edgecv's I/O.
_NUMPY_TYPES: dict[str, npt.DTypeLike] = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
}


def make_logger(trt: TensorRTModule, errors: list[str]) -> tensorrt.ILogger:
    """A TensorRT logger that keeps errors in ``errors`` and passes the rest to Python logging.

    TensorRT's own ``Logger`` prints to stderr, which would add lines around edgecv's one
    ``error:`` line; its errors go into that line instead.
    """
    base = trt.ILogger
    severity = base.Severity
    failures = (severity.INTERNAL_ERROR, severity.ERROR)
    levels = {severity.WARNING: logging.WARNING, severity.INFO: logging.DEBUG}

    def init(self: tensorrt.ILogger) -> None:
        base.__init__(self)  # pybind11 classes need their base initialised explicitly

    def log(self: tensorrt.ILogger, level: tensorrt.ILogger.Severity, message: str) -> None:
        if level in failures:
            errors.append(one_line(message, None))
        else:
            LOG.log(levels.get(level, logging.DEBUG), "TensorRT: %s", message)

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(__init__=init, log=log)

    logger_class = types.new_class("EdgecvTensorRTLogger", (base,), exec_body=body)
    return cast("tensorrt.ILogger", logger_class())


@dataclass
class _Binding:
    """One I/O tensor: its engine description and the buffers allocated for it at load."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    """As the engine declares it; -1 marks a dynamic dimension."""
    dtype: np.dtype[Any]
    capacity: int
    """Elements the buffers hold: the largest shape the engine's profile allows."""
    device: int = 0
    host: int = 0
    host_view: npt.NDArray[Any] | None = None

    @property
    def nbytes(self) -> int:
        return self.capacity * self.dtype.itemsize

    def spec(self) -> TensorSpec:
        return TensorSpec(self.name, tuple(d if d >= 0 else None for d in self.shape), self.dtype.name)


def _dims(shape: Any) -> tuple[int, ...]:
    """A ``Dims`` (or the tuple TensorRT accepts in its place) as a tuple of ints."""
    return tuple(int(shape[i]) for i in range(len(shape)))


def _volume(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


class EngineRunner:
    """A deserialized engine with its execution context, buffers and stream, allocated once.

    ``execute(tensor)`` is one frame: copy into the pinned input buffer, H2D, ``set_input_shape``,
    ``set_tensor_address`` for every I/O tensor, ``execute_async_v3`` on the stream, D2H of every
    output, stream sync. No CUDA memory is allocated per frame. The outputs it returns are views of
    the pinned buffers, overwritten by the next frame. One frame at a time (a lock).
    """

    def __init__(self, trt: TensorRTModule, cuda: CudaApi, engine_bytes: bytes, *, name: str) -> None:
        self.name = name
        self._cuda = cuda
        self._lock = threading.Lock()
        self._bindings: list[_Binding] = []
        self._stream: int | None = None
        self._closed = False
        self.errors: list[str] = []
        self._logger = make_logger(trt, self.errors)
        self._runtime = trt.Runtime(self._logger)
        version = tensorrt_version(trt)
        try:
            engine: tensorrt.ICudaEngine | None = self._runtime.deserialize_cuda_engine(engine_bytes)
        except Exception as exc:  # the bindings raise on some malformed buffers instead of logging
            self.errors.append(one_line(exc, None))
            engine = None
        if engine is None:
            said = f": {one_line(self.errors[-1])}" if self.errors else ""
            raise ModelError(
                f"TensorRT {version} cannot deserialize {name}{said}",
                "The engine is corrupt, or was built by another TensorRT version or for another GPU: "
                "rebuild it on this machine (edgecv export --to tensorrt, or load the .onnx with "
                "--backend tensorrt).",
            )
        self._engine = engine
        context: tensorrt.IExecutionContext | None = engine.create_execution_context()
        if context is None:
            raise BackendError(
                f"TensorRT cannot create an execution context for {name}{self._last_error()}",
                "Free GPU memory (other processes, other loaded models) and try again.",
            )
        self._context = context
        io_mode = trt.TensorIOMode
        for index in range(engine.num_io_tensors):
            tensor = engine.get_tensor_name(index)
            mode = engine.get_tensor_mode(tensor)
            if mode not in (io_mode.INPUT, io_mode.OUTPUT):
                continue
            dtype_name = engine.get_tensor_dtype(tensor).name
            if dtype_name not in _NUMPY_TYPES:
                raise ModelError(
                    f"{name}: tensor {tensor!r} is {dtype_name}, which edgecv cannot feed or read",
                    "Build the engine with float32, float16 or uint8 inputs and outputs.",
                )
            self._bindings.append(
                _Binding(
                    name=tensor,
                    is_input=mode == io_mode.INPUT,
                    shape=_dims(engine.get_tensor_shape(tensor)),
                    dtype=np.dtype(_NUMPY_TYPES[dtype_name]),
                    capacity=0,
                )
            )
        inputs = [b for b in self._bindings if b.is_input]
        self._input = single_input(inputs, Path(name))
        self.outputs = [b for b in self._bindings if not b.is_input]
        if not self.outputs:
            raise ModelError(f"{name} has no outputs", "Rebuild the engine from the detector's ONNX file.")
        self._max_shape = self._largest_input_shape()
        self._shape: tuple[int, ...] = ()
        self._output_shapes: list[tuple[int, ...]] = []
        try:
            self._use_shape(self._max_shape)  # output sizes at the largest input: the buffer sizes
            self._input.capacity = _volume(self._max_shape)
            for binding, shape in zip(self.outputs, self._output_shapes, strict=True):
                binding.capacity = _volume(shape)
            self._allocate()
        except BaseException:
            self.close()
            raise

    # --- load -------------------------------------------------------------------------------

    def _last_error(self) -> str:
        return f": {one_line(self.errors[-1])}" if self.errors else ""

    def _largest_input_shape(self) -> tuple[int, ...]:
        shape = self._input.shape
        if all(d >= 0 for d in shape):
            return shape
        # Dynamic: profile 0's (min, opt, max); the buffers take the largest.
        profile = self._engine.get_tensor_profile_shape(self._input.name, 0)
        largest = _dims(profile[2])
        if len(largest) != len(shape) or any(d < 0 for d in largest):
            raise ModelError(
                f"{self.name}: input {self._input.name!r} is dynamic {list(shape)} but its optimization "
                f"profile gives no usable largest shape ({list(largest)})",
                "Rebuild the engine with --dynamic (it sets the min/opt/max profile).",
            )
        return largest

    def _use_shape(self, shape: tuple[int, ...]) -> None:
        """Set the input shape on the context and read the output shapes it implies."""
        if not self._context.set_input_shape(self._input.name, shape):
            raise BackendError(
                f"{self.name}: TensorRT refused input shape {list(shape)} for {self._input.name!r} "
                f"(engine shape {list(self._input.shape)}, largest {list(self._max_shape)})"
                f"{self._last_error()}",
                "Feed the size the engine was built for (static engines take exactly one size).",
            )
        shapes = [_dims(self._context.get_tensor_shape(b.name)) for b in self.outputs]
        if any(d < 0 for s in shapes for d in s):
            raise ModelError(
                f"{self.name}: output shapes {shapes} are not known from the input shape "
                "(data-dependent outputs are not supported)",
                "Export the detector without data-dependent output sizes (e.g. without NMS in the graph).",
            )
        self._shape = shape
        self._output_shapes = shapes

    def _allocate(self) -> None:
        cuda = self._cuda
        for binding in self._bindings:
            size = max(binding.nbytes, 1)
            binding.device = cuda.device_alloc(size)
            binding.host, raw = cuda.host_alloc(size)
            binding.host_view = raw[: binding.nbytes].view(binding.dtype)
        self._stream = cuda.stream_create()

    # --- per frame ---------------------------------------------------------------------------

    @property
    def input(self) -> TensorSpec:
        return self._input.spec()

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        return tuple(b.spec() for b in self.outputs)

    def execute(self, tensor: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
        """Run one frame; the outputs are views of the pinned buffers (valid until the next frame)."""
        with self._lock:
            if self._closed or self._stream is None:
                raise BackendError(f"The TensorRT session for {self.name} is closed", "Load the model again.")
            return self._execute(np.asarray(tensor), self._stream)

    def _execute(self, tensor: npt.NDArray[Any], stream: int) -> list[npt.NDArray[Any]]:
        shape = tuple(int(d) for d in tensor.shape)
        if shape != self._shape:
            self._check_fits(shape)
            self._use_shape(shape)
        binding = self._input
        assert binding.host_view is not None
        count = _volume(shape)
        staged = binding.host_view[:count].reshape(shape)
        try:
            np.copyto(staged, tensor, casting="same_kind")
        except TypeError as exc:
            raise BackendError(
                f"{self.name}: input {binding.name!r} is {binding.dtype.name}, got a {tensor.dtype} tensor",
                f"Pass a {binding.dtype.name} tensor (model.preprocess makes one).",
            ) from exc
        cuda, context = self._cuda, self._context
        cuda.copy_to_device(binding.device, binding.host, count * binding.dtype.itemsize, stream)
        ok = context.set_input_shape(binding.name, shape)
        for each in self._bindings:
            ok = context.set_tensor_address(each.name, each.device) and ok
        if not ok or not context.execute_async_v3(stream):
            raise BackendError(
                f"TensorRT could not run {self.name}{self._last_error()}",
                "Check the GPU (nvidia-smi / tegrastats) and rebuild the engine if it keeps failing.",
            )
        results: list[npt.NDArray[Any]] = []
        for output, out_shape in zip(self.outputs, self._output_shapes, strict=True):
            assert output.host_view is not None
            size = _volume(out_shape)
            cuda.copy_to_host(output.host, output.device, size * output.dtype.itemsize, stream)
            results.append(output.host_view[:size].reshape(out_shape))
        cuda.synchronize(stream)
        return results

    def _check_fits(self, shape: tuple[int, ...]) -> None:
        declared = self._input.shape
        fits = len(shape) == len(declared) and all(
            (d == s if d >= 0 else 0 < s <= m)
            for d, s, m in zip(declared, shape, self._max_shape, strict=True)
        )
        if not fits:
            raise BackendError(
                f"{self.name}: input shape {list(shape)} does not fit the engine's {list(declared)} "
                f"(largest {list(self._max_shape)})",
                "Feed the size the engine was built for, or rebuild it with --dynamic / --imgsz.",
            )

    # --- release -----------------------------------------------------------------------------

    def close(self) -> None:
        """Free the buffers and the stream, then the context and the engine (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            cuda, failures = self._cuda, []
            release: list[Callable[[], None]] = []
            if self._stream is not None:
                stream = self._stream
                release += [functools.partial(cuda.synchronize, stream)]
            for binding in self._bindings:
                if binding.device:
                    release.append(functools.partial(cuda.device_free, binding.device))
                if binding.host:
                    release.append(functools.partial(cuda.host_free, binding.host))
                binding.host_view = None
            if self._stream is not None:
                release.append(functools.partial(cuda.stream_destroy, self._stream))
                self._stream = None
            for step in release:
                try:
                    step()
                except BackendError as exc:  # free the rest; report after
                    failures.append(exc)
            for binding in self._bindings:
                binding.device = binding.host = 0
            # The context before the engine before the runtime, as TensorRT requires.
            self.__dict__.pop("_context", None)
            self.__dict__.pop("_engine", None)
            if failures:
                raise failures[0]
