"""A fake ``tensorrt`` module and a fake CUDA layer that follow the real APIs, for tests without a GPU.

The fakes keep the real API's names, shapes, dtypes and call order, and compute with ONNX Runtime
on the ONNX model inside the fake engine, so detections in the tests are real:

- ``fake_tensorrt(version)``: a module with ``__version__``, ``ILogger`` (+ ``Severity``),
  ``Logger``, ``Runtime``, ``TensorIOMode``, ``DataType``; ``Runtime.deserialize_cuda_engine``
  returns an engine with the named-tensor API (``num_io_tensors``, ``get_tensor_name``/``mode``/
  ``shape``/``dtype``, ``get_tensor_profile_shape``, ``create_execution_context``), or ``None``
  (after logging an error) for bytes that are not a fake engine or come from another version, as
  the real runtime does. ``builder=`` merges the builder half (``tests/trt_fake_builder.py``).
- ``FakeCuda``: the ``runtime.CudaApi`` calls on a fake device (a dict pointer -> numpy bytes).
  Copies and ``execute_async_v3`` are *queued* on the stream and run at ``synchronize``, as on a
  GPU: reading an output before the sync reads the previous frame. It records every call
  (``calls``, shared with the fake execution context) and counts allocations.
- The execution context asserts the per-frame order ``set_input_shape`` (every input) ->
  ``set_tensor_address`` (every I/O tensor) -> ``execute_async_v3``, that every address is a live
  device buffer large enough for its tensor, and copies go between pinned host and device memory.

Fake serialized engine: ``b"EDGECV-FAKE-TRT\\n" + one-line JSON header + b"\\n" + ONNX bytes``; header
keys ``trt_version``, ``precision``, ``strongly_typed``, ``flags``, ``profile`` (``None`` or
``{"min", "opt", "max"}`` input shapes) and ``workspace``.

The plugin's seam is ``edgecv_tensorrt.runtime``'s ``availability``, ``load_tensorrt`` and
``load_cuda``: ``install_fakes(monkeypatch)`` replaces the three, so ``edgecv.load(...,
backend="tensorrt")`` runs on the fakes.
"""

from __future__ import annotations

import enum
import itertools
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest

import edgecv
from edgecv.backend import Availability
from edgecv.testing import fake_files
from edgecv_tensorrt import runtime
from edgecv_tensorrt.runtime import MachineInfo

MAGIC = b"EDGECV-FAKE-TRT\n"
DEFAULT_VERSION = "10.3.0.30"  # JetPack 6.1/6.2
FAKE_GPU = "Orin (fake)"
FAKE_CAPABILITY = "8.7"

# --- the serialized format ------------------------------------------------------------------------


def fake_engine_bytes(
    onnx_path: Path | str,
    trt_version: str,
    precision: str = "fp32",
    *,
    strongly_typed: bool = False,
    flags: Sequence[str] = (),
    profile: Mapping[str, Sequence[int]] | None = None,
    workspace: int | None = None,
) -> bytes:
    """A fake serialized engine holding ``onnx_path``'s model, as built by TensorRT ``trt_version``."""
    header = {
        "trt_version": trt_version,
        "precision": precision,
        "strongly_typed": strongly_typed,
        "flags": list(flags),
        "profile": None if profile is None else {k: list(v) for k, v in profile.items()},
        "workspace": workspace,
    }
    return fake_files.pack(MAGIC, header, Path(onnx_path).read_bytes())


def parse_fake_engine(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(header, ONNX bytes) of a fake engine; ``None`` for anything else."""
    return fake_files.unpack(MAGIC, data)


# --- CUDA ---------------------------------------------------------------------------------------


class FakeCuda:
    """``runtime.CudaApi`` on a fake device; see the module docstring."""

    def __init__(self, device_name: str = FAKE_GPU, compute_capability: str = FAKE_CAPABILITY) -> None:
        self._name = device_name
        self._capability = compute_capability
        self.calls: list[tuple[Any, ...]] = []
        self.allocations = 0
        self.device: dict[int, npt.NDArray[np.uint8]] = {}
        self.pinned: dict[int, npt.NDArray[np.uint8]] = {}
        self.streams: dict[int, list[Callable[[], None]]] = {}
        self._addresses = itertools.count(0x7F00_0000_0000, 1 << 32)
        self._stream_ids = itertools.count(0x5000)

    # device description
    def device_name(self) -> str:
        return self._name

    def compute_capability(self) -> str:
        return self._capability

    # memory
    def device_alloc(self, nbytes: int) -> int:
        assert nbytes > 0, "cudaMalloc of 0 bytes"
        pointer = next(self._addresses)
        self.device[pointer] = np.zeros(nbytes, dtype=np.uint8)
        self.allocations += 1
        self.calls.append(("device_alloc", nbytes))
        return pointer

    def device_free(self, pointer: int) -> None:
        assert pointer in self.device, f"cudaFree of {pointer:#x}, not a live device allocation"
        del self.device[pointer]
        self.calls.append(("device_free", pointer))

    def host_alloc(self, nbytes: int) -> tuple[int, npt.NDArray[np.uint8]]:
        assert nbytes > 0, "cudaMallocHost of 0 bytes"
        buffer = np.zeros(nbytes, dtype=np.uint8)
        pointer = int(buffer.ctypes.data)
        self.pinned[pointer] = buffer
        self.allocations += 1
        self.calls.append(("host_alloc", nbytes))
        return pointer, buffer

    def host_free(self, pointer: int) -> None:
        assert pointer in self.pinned, f"cudaFreeHost of {pointer:#x}, not a live pinned allocation"
        del self.pinned[pointer]
        self.calls.append(("host_free", pointer))

    def live(self) -> int:
        """Device buffers, pinned buffers and streams not released yet."""
        return len(self.device) + len(self.pinned) + len(self.streams)

    # streams
    def stream_create(self) -> int:
        stream = next(self._stream_ids)
        self.streams[stream] = []
        self.allocations += 1
        self.calls.append(("stream_create", stream))
        return stream

    def stream_destroy(self, stream: int) -> None:
        assert stream in self.streams, f"cudaStreamDestroy of unknown stream {stream:#x}"
        assert not self.streams[stream], "stream destroyed with work still queued (no sync first)"
        del self.streams[stream]
        self.calls.append(("stream_destroy", stream))

    def enqueue(self, stream: int, work: Callable[[], None]) -> None:
        assert stream in self.streams, f"work queued on unknown stream {stream:#x}"
        self.streams[stream].append(work)

    def synchronize(self, stream: int) -> None:
        assert stream in self.streams, f"cudaStreamSynchronize of unknown stream {stream:#x}"
        self.calls.append(("synchronize", stream))
        queue = self.streams[stream]
        while queue:
            queue.pop(0)()

    # copies (queued: they happen at the sync, in order)
    def device_bytes(self, pointer: int, nbytes: int) -> npt.NDArray[np.uint8]:
        buffer = self.device.get(pointer)
        assert buffer is not None, f"{pointer:#x} is not a live device buffer"
        assert nbytes <= buffer.size, f"{nbytes} bytes at {pointer:#x}, which holds {buffer.size}"
        return buffer[:nbytes]

    def _pinned_bytes(self, pointer: int, nbytes: int) -> npt.NDArray[np.uint8]:
        buffer = self.pinned.get(pointer)
        assert buffer is not None, f"{pointer:#x} is not pinned host memory (cudaMallocHost)"
        assert nbytes <= buffer.size, f"{nbytes} bytes at {pointer:#x}, which holds {buffer.size}"
        return buffer[:nbytes]

    def copy_to_device(self, device: int, host: int, nbytes: int, stream: int) -> None:
        self.calls.append(("copy_to_device", device, nbytes))
        target, source = self.device_bytes(device, nbytes), self._pinned_bytes(host, nbytes)
        self.enqueue(stream, lambda: np.copyto(target, source))

    def copy_to_host(self, host: int, device: int, nbytes: int, stream: int) -> None:
        self.calls.append(("copy_to_host", device, nbytes))
        target, source = self._pinned_bytes(host, nbytes), self.device_bytes(device, nbytes)
        self.enqueue(stream, lambda: np.copyto(target, source))

    def frames(self) -> list[list[str]]:
        """The calls grouped per frame (each ending at a ``synchronize``), by name only."""
        frames: list[list[str]] = [[]]
        for call in self.calls:
            frames[-1].append(call[0])
            if call[0] == "synchronize":
                frames.append([])
        return [f for f in frames if f]


# --- TensorRT -----------------------------------------------------------------------------------


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class ILogger:
    """As the real base class: subclasses must call ``ILogger.__init__`` and implement ``log``."""

    Severity = Severity
    INTERNAL_ERROR = Severity.INTERNAL_ERROR
    ERROR = Severity.ERROR
    WARNING = Severity.WARNING
    INFO = Severity.INFO
    VERBOSE = Severity.VERBOSE

    def __init__(self) -> None:
        self._initialised = True

    def log(self, severity: Severity, msg: str) -> None:
        raise NotImplementedError


class Logger(ILogger):
    """TensorRT's stock logger: prints to stderr (which edgecv's runner must not use)."""

    def __init__(self, min_severity: Severity = Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity

    def log(self, severity: Severity, msg: str) -> None:
        if severity <= self.min_severity:
            print(f"[TRT] [{severity.name[0]}] {msg}", file=sys.stderr)


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


_DATA_TYPES = {
    "FLOAT": (0, np.float32),
    "HALF": (1, np.float16),
    "INT8": (2, np.int8),
    "INT32": (3, np.int32),
    "BOOL": (4, np.bool_),
    "UINT8": (5, np.uint8),
    "FP8": (6, None),
    "BF16": (7, None),
    "INT64": (8, np.int64),
    "INT4": (9, None),
}
_ONNX_TYPES = {
    "tensor(float)": "FLOAT",
    "tensor(float16)": "HALF",
    "tensor(int8)": "INT8",
    "tensor(uint8)": "UINT8",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(bool)": "BOOL",
}


def _data_type_enum(major: int) -> type[enum.Enum]:
    # 8.6 has neither BF16 nor INT64 nor INT4 (they came with 9.x/10.0).
    names = [n for n in _DATA_TYPES if major >= 10 or n not in ("BF16", "INT64", "INT4")]
    data_type = enum.Enum("DataType", {name: _DATA_TYPES[name][0] for name in names})
    data_type.itemsize = property(lambda self: np.dtype(_DATA_TYPES[self.name][1] or np.uint8).itemsize)
    return data_type


class FakeEngine:
    """An ``ICudaEngine``: the ONNX model's I/O as named tensors; runs it with ONNX Runtime."""

    def __init__(self, trt: ModuleType, header: Mapping[str, Any], model: bytes, logger: ILogger) -> None:
        self.trt = trt
        self.logger = logger
        self.header = dict(header)
        self.session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        data_type = trt.DataType
        self.tensors: dict[str, tuple[TensorIOMode, Any, tuple[int, ...]]] = {}
        for arg, mode in [(i, TensorIOMode.INPUT) for i in self.session.get_inputs()] + [
            (o, TensorIOMode.OUTPUT) for o in self.session.get_outputs()
        ]:
            name = _ONNX_TYPES[arg.type]
            if name == "INT64" and not hasattr(data_type, "INT64"):
                name = "INT32"  # 8.6 narrows int64 tensors
            shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in arg.shape)
            self.tensors[arg.name] = (mode, data_type[name], shape)
        self.profile = header.get("profile")
        for name in self.inputs():
            if -1 in self.tensors[name][2]:
                assert self.profile, (
                    f"fake engine: input {name!r} is dynamic but the engine has no optimization profile; "
                    "real TensorRT refuses to build that"
                )

    def inputs(self) -> list[str]:
        return [n for n, (mode, _, _) in self.tensors.items() if mode is TensorIOMode.INPUT]

    @property
    def num_io_tensors(self) -> int:
        return len(self.tensors)

    @property
    def num_optimization_profiles(self) -> int:
        return 1

    def get_tensor_name(self, index: int) -> str:
        return list(self.tensors)[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self.tensors[name][0] if name in self.tensors else TensorIOMode.NONE

    def get_tensor_dtype(self, name: str) -> Any:
        return self.tensors[name][1]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name][2]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        assert profile_index == 0, "the fake engine has one optimization profile"
        assert self.tensors[name][0] is TensorIOMode.INPUT, f"{name!r} is not an input"
        if not self.profile:
            raise RuntimeError(f"get_tensor_profile_shape: {name!r} has no optimization profile")
        return [tuple(self.profile[key]) for key in ("min", "opt", "max")]

    def create_execution_context(self) -> FakeContext:
        return FakeContext(self, self.trt.fake_cuda)

    def output_shapes(self, inputs: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Output shapes for these input shapes (dynamic outputs: from one ONNX Runtime run)."""
        outputs = {n: s for n, (mode, _, s) in self.tensors.items() if mode is TensorIOMode.OUTPUT}
        if all(-1 not in s for s in outputs.values()):
            return outputs
        feeds = {
            name: np.zeros(shape, dtype=np.dtype(_DATA_TYPES[self.tensors[name][1].name][1]))
            for name, shape in inputs.items()
        }
        results = self.session.run(list(outputs), feeds)
        return {name: tuple(r.shape) for name, r in zip(outputs, results, strict=True)}


class FakeContext:
    """An ``IExecutionContext``; see the module docstring for what it asserts."""

    def __init__(self, engine: FakeEngine, cuda: FakeCuda) -> None:
        self.engine = engine
        self.cuda = cuda
        self.shapes: dict[str, tuple[int, ...]] = {
            n: s for n in engine.inputs() if -1 not in (s := engine.tensors[n][2])
        }
        self.addresses: dict[str, int] = {}
        self._frame: list[tuple[str, str]] = []

    def _log_error(self, message: str) -> None:
        self.engine.logger.log(Severity.ERROR, message)

    def set_input_shape(self, name: str, shape: Iterable[int]) -> bool:
        dims = tuple(int(d) for d in shape)
        self.cuda.calls.append(("set_input_shape", name, dims))
        mode, _, declared = self.engine.tensors.get(name, (TensorIOMode.NONE, None, ()))
        if mode is not TensorIOMode.INPUT:
            self._log_error(f"IExecutionContext::setInputShape: {name!r} is not an input tensor")
            return False
        low = high = declared
        if -1 in declared:
            low, _, high = self.engine.get_tensor_profile_shape(name, 0)
        fits = len(dims) == len(declared) and all(
            (d == s) if d >= 0 else (lo <= s <= hi)
            for d, s, lo, hi in zip(declared, dims, low, high, strict=True)
        )
        if not fits:
            self._log_error(
                f"IExecutionContext::setInputShape: shape {list(dims)} for {name!r} outside {list(declared)}"
            )
            return False
        self.shapes[name] = dims
        self._frame.append(("set_input_shape", name))
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        mode, _, declared = self.engine.tensors[name]
        if mode is TensorIOMode.INPUT:
            return self.shapes.get(name, declared)
        if len(self.shapes) < len(self.engine.inputs()):
            return declared  # unknown until every input shape is set, as in TensorRT
        return self.engine.output_shapes(self.shapes)[name]

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self.cuda.calls.append(("set_tensor_address", name, memory))
        if name not in self.engine.tensors:
            self._log_error(f"IExecutionContext::setTensorAddress: unknown tensor {name!r}")
            return False
        self.addresses[name] = memory
        self._frame.append(("set_tensor_address", name))
        return True

    def _check_frame_order(self) -> None:
        inputs, tensors = set(self.engine.inputs()), set(self.engine.tensors)
        kinds = [kind for kind, _ in self._frame]
        shaped = {name for kind, name in self._frame if kind == "set_input_shape"}
        addressed = {name for kind, name in self._frame if kind == "set_tensor_address"}
        assert shaped == inputs, f"execute_async_v3 without set_input_shape for {sorted(inputs - shaped)}"
        assert addressed == tensors, (
            f"execute_async_v3 without set_tensor_address for {sorted(tensors - addressed)}"
        )
        last_shape = max(i for i, kind in enumerate(kinds) if kind == "set_input_shape")
        first_address = kinds.index("set_tensor_address")
        assert last_shape < first_address, f"set_input_shape after set_tensor_address: {self._frame}"

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.cuda.calls.append(("execute_async_v3", stream_handle))
        self._check_frame_order()
        self._frame = []
        engine = self.engine
        outputs = engine.output_shapes(self.shapes)
        views: dict[str, npt.NDArray[Any]] = {}
        for name, (_, dtype, _) in engine.tensors.items():
            shape = self.shapes[name] if name in self.shapes else outputs[name]
            numpy_type = np.dtype(_DATA_TYPES[dtype.name][1])
            nbytes = int(np.prod(shape, dtype=np.int64)) * numpy_type.itemsize
            views[name] = self.cuda.device_bytes(self.addresses[name], nbytes).view(numpy_type).reshape(shape)
        session = engine.session

        def run() -> None:
            feeds = {name: views[name].copy() for name in engine.inputs()}
            results = session.run(list(outputs), feeds)
            for name, result in zip(outputs, results, strict=True):
                np.copyto(views[name], result, casting="same_kind")

        self.cuda.enqueue(stream_handle, run)
        return True


class Runtime:
    """``trt.Runtime(logger)``; ``deserialize_cuda_engine`` as the real one (``None`` + logged error)."""

    def __init__(self, logger: ILogger) -> None:
        if not isinstance(logger, ILogger) or not getattr(logger, "_initialised", False):
            raise TypeError("Runtime(): logger must be an ILogger whose ILogger.__init__ was called")
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> FakeEngine | None:
        trt = self._trt
        parsed = parse_fake_engine(bytes(serialized_engine))
        if parsed is None:
            self.logger.log(
                Severity.ERROR,
                "1: [stdArchiveReader.cpp::StdArchiveReader::42] Error Code 1: Serialization "
                "(Serialization assertion stdVersionRead == kSERIALIZATION_VERSION failed."
                "Magic tag does not match)",
            )
            return None
        header, model = parsed
        if header.get("trt_version") != trt.__version__:
            self.logger.log(
                Severity.ERROR,
                "6: The engine plan file is not compatible with this version of TensorRT, expecting "
                f"library version {trt.__version__} got {header.get('trt_version')}, please rebuild.",
            )
            return None
        return FakeEngine(trt, header, model, self.logger)


def fake_tensorrt(
    version: str = DEFAULT_VERSION, builder: Any = None, cuda: FakeCuda | None = None
) -> ModuleType:
    """A fake ``tensorrt`` module of ``version`` (the runtime half), running on ``cuda``.

    ``builder``: an object (or module) whose public attributes are added to the module (the
    builder half), or a callable ``builder(module)`` returning such an object.
    ``module.fake_cuda`` is the ``FakeCuda`` its engines run on (a new one when not given).
    """
    module = ModuleType("tensorrt")
    module.__version__ = version
    major = int(version.split(".", 1)[0])
    data_type = _data_type_enum(major)

    class BoundRuntime(Runtime):
        _trt = module

    for name, value in {
        "ILogger": ILogger,
        "Logger": Logger,
        "Runtime": BoundRuntime,
        "TensorIOMode": TensorIOMode,
        "DataType": data_type,
        "fake_cuda": cuda if cuda is not None else FakeCuda(),
    }.items():
        setattr(module, name, value)
    if builder is not None:
        half = builder(module) if callable(builder) and not isinstance(builder, ModuleType) else builder
        for name in dir(half):
            if not name.startswith("_"):
                setattr(module, name, getattr(half, name))
    return module


# --- engines on disk and the seam ---------------------------------------------------------------


def fake_machine(trt: ModuleType) -> MachineInfo:
    return runtime.machine_info(trt, trt.fake_cuda)


def onnx_metadata(onnx_path: Path) -> dict[str, str]:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def write_fake_engine(
    onnx_path: Path, engine_path: Path, trt: ModuleType, precision: str = "fp32", **sidecar_fields: Any
) -> Path:
    """``engine_path`` (a fake engine of ``onnx_path`` for ``trt``) and its sidecar, as the builder
    writes them on this (fake) machine; ``sidecar_fields`` override the sidecar's fields."""
    from edgecv.backend import sha256_of
    from edgecv_tensorrt import __version__ as plugin_version
    from edgecv_tensorrt.sidecar import Sidecar, write_engine

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    image = session.get_inputs()[0]
    machine = fake_machine(trt)
    fields: dict[str, Any] = {
        "source": onnx_path.name,
        "model_sha256": sha256_of(onnx_path),
        "trt_version": machine.trt_version,
        "gpu_name": machine.gpu_name,
        "compute_capability": machine.compute_capability,
        "precision": precision,
        "input_name": image.name,
        "input_shape": tuple(d if isinstance(d, int) else -1 for d in image.shape),
        "build_options": {"workspace": None, "profile": None, "onnx": "as given", "calibration": None},
        "edgecv_version": edgecv.__version__,
        "plugin_version": plugin_version,
        "metadata": dict(session.get_modelmeta().custom_metadata_map),
    }
    fields.update(sidecar_fields)
    data = fake_engine_bytes(onnx_path, machine.trt_version, precision)
    write_engine(engine_path, data, Sidecar(**fields))
    return engine_path


def install_fakes(
    monkeypatch: pytest.MonkeyPatch, version: str = DEFAULT_VERSION, *, builder: Any = None
) -> ModuleType:
    """Make the plugin's seam return a fake TensorRT ``version`` and its ``FakeCuda``; returns the module."""
    trt = fake_tensorrt(version, builder=builder)
    monkeypatch.setattr(runtime, "availability", lambda: Availability(True))
    monkeypatch.setattr(runtime, "load_tensorrt", lambda: trt)
    monkeypatch.setattr(runtime, "load_cuda", lambda: trt.fake_cuda)
    return trt
