"""The builder half of the fake ``tensorrt`` module: ``fake_tensorrt(version, builder=fake_builder)``.

It follows the real builder API of each version family, with the rules the real one enforces that
edgecv's build code could get wrong:

- ``NetworkDefinitionCreationFlag``: 8.6 has ``EXPLICIT_BATCH`` (and ``EXPLICIT_PRECISION``), and its
  ONNX parser refuses a network created without ``EXPLICIT_BATCH``; 10 has ``EXPLICIT_BATCH``
  (ignored) and ``STRONGLY_TYPED``; 11 only ``STRONGLY_TYPED`` (ignored: every network is strongly
  typed).
- ``BuilderFlag``: ``FP16``/``INT8`` (and the other weak-typing flags) exist on 8.6 and 10 and are
  absent on 11, as in the real 11. Setting them on a strongly typed network fails the build; a
  weakly typed network with Q/DQ nodes needs ``INT8``; ``INT8`` without Q/DQ (a calibrator, which
  edgecv never uses) fails.
- ``OnnxParser`` reads the ONNX with the ``onnx`` package and refuses what TensorRT's parser
  refuses: bytes that are not ONNX, onnxruntime's integer operators (``ConvInteger``...), and Q/DQ
  that is not symmetric int8 (uint8, or a non-zero zero point), with TensorRT-like error texts.
- ``build_serialized_network`` returns ``None`` (after logging an error) on a failure, as the real
  one: a dynamic input without an optimization profile, a profile that does not fit the input.

A build returns the shared fake engine format (``trt_fakes.MAGIC`` + one-line JSON header + the
parsed ONNX bytes); the header records ``precision`` (what the network computes in: from the flags
when weakly typed, from the ONNX's own types when strongly typed), ``strongly_typed``, ``flags``,
``profile`` and ``workspace``. Every build is appended to ``module.builds`` (the header plus
``onnx``, the parsed model's bytes, and ``timing_cache_entries``, what the timing cache held
before the build), so tests count builds and check which branch was taken.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import onnx
from onnx import numpy_helper
from trt_fakes import MAGIC, Severity

# BuilderFlag members by family: what 11 removed is what edgecv must not touch there.
_WEAK_TYPING_FLAGS = ("FP16", "INT8", "BF16", "FP8", "INT4", "FP4")
_PRECISION_CONSTRAINTS = ("OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS", "DIRECT_IO")
_COMMON_FLAGS = (
    "DEBUG",
    "GPU_FALLBACK",
    "REFIT",
    "DISABLE_TIMING_CACHE",
    "TF32",
    "SPARSE_WEIGHTS",
    "SAFETY_SCOPE",
    "REJECT_EMPTY_ALGORITHMS",
    "VERSION_COMPATIBLE",
    "EXCLUDE_LEAN_RUNTIME",
)
_INTEGER_OPS = ("ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear")
_TIMING_MAGIC = b"FAKE-TRT-TIMING-CACHE\n"


def _enum(name: str, members: Sequence[str]) -> type[enum.IntEnum]:
    """pybind11 enums, as TensorRT's: ``.name``, ``.value`` and ``int(member)``."""
    return enum.IntEnum(name, {member: index for index, member in enumerate(members)})


def _builder_flags(major: int) -> type[enum.IntEnum]:
    if major >= 11:
        return _enum("BuilderFlag", _COMMON_FLAGS)
    weak = _WEAK_TYPING_FLAGS if major >= 10 else ("FP16", "INT8", "FP8")
    return _enum("BuilderFlag", (*weak, *_PRECISION_CONSTRAINTS, *_COMMON_FLAGS))


def _creation_flags(major: int) -> type[enum.IntEnum]:
    if major >= 11:
        return enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 1})
    if major >= 10:
        return enum.IntEnum("NetworkDefinitionCreationFlag", {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1})
    return enum.IntEnum("NetworkDefinitionCreationFlag", {"EXPLICIT_BATCH": 0, "EXPLICIT_PRECISION": 1})


def _memory_pools(major: int) -> type[enum.IntEnum]:
    pools = ["WORKSPACE", "DLA_MANAGED_SRAM", "DLA_LOCAL_DRAM", "DLA_GLOBAL_DRAM"]
    return _enum("MemoryPoolType", pools if major < 10 else [*pools, "TACTIC_DRAM", "TACTIC_SHARED_MEMORY"])


class Dims(tuple[int, ...]):
    """``trt.Dims([1, 3, 320, 320])``: a sequence of ints."""

    def __new__(cls, shape: Sequence[int] = ()) -> Dims:
        return super().__new__(cls, (int(d) for d in shape))


class FakeTensor:
    def __init__(self, name: str, shape: Sequence[int], dtype: Any) -> None:
        self.name = name
        self.shape = Dims(shape)
        self.dtype = dtype


class FakeNetwork:
    """An ``INetworkDefinition``: empty until an ``OnnxParser`` fills it."""

    def __init__(self, flags: int, strongly_typed: bool, explicit_batch: bool) -> None:
        self.flags = flags
        self.strongly_typed = strongly_typed
        self.explicit_batch = explicit_batch
        self.inputs: list[FakeTensor] = []
        self.outputs: list[FakeTensor] = []
        self.model: onnx.ModelProto | None = None
        self.model_bytes = b""

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_input(self, index: int) -> FakeTensor:
        return self.inputs[index]

    def get_output(self, index: int) -> FakeTensor:
        return self.outputs[index]


class FakeParserError:
    """``trt.ParserError``."""

    def __init__(self, desc: str, node: int = -1, node_name: str = "", operator: str = "") -> None:
        self._desc, self._node, self._name, self._operator = desc, node, node_name, operator

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._operator

    def __str__(self) -> str:
        if self._node < 0:
            return self._desc
        return (
            f"In node {self._node} with name: {self._name} and operator: {self._operator} "
            f"(importNode): UNSUPPORTED_NODE: {self._desc}"
        )


class FakeOptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}

    def set_shape(self, input: str, min: Sequence[int], opt: Sequence[int], max: Sequence[int]) -> None:
        self.shapes[input] = (tuple(min), tuple(opt), tuple(max))

    def get_shape(self, input: str) -> list[Dims]:
        return [Dims(s) for s in self.shapes[input]]

    def __bool__(self) -> bool:
        # As the real one: valid when every shape has min <= opt <= max.
        return bool(self.shapes) and all(
            len(a) == len(b) == len(c) and all(x <= y <= z for x, y, z in zip(a, b, c, strict=True))
            for a, b, c in self.shapes.values()
        )


class FakeTimingCache:
    """``ITimingCache``: how many tactic timings it holds, for one TensorRT version."""

    def __init__(self, version: str, entries: int = 0) -> None:
        self.version = version
        self.entries = entries

    def serialize(self) -> memoryview:
        header = json.dumps({"trt_version": self.version, "entries": self.entries}).encode()
        return memoryview(_TIMING_MAGIC + header)

    @classmethod
    def deserialize(cls, version: str, blob: bytes) -> FakeTimingCache | None:
        if not blob:
            return cls(version)
        if not blob.startswith(_TIMING_MAGIC):
            return None
        try:
            data = json.loads(blob[len(_TIMING_MAGIC) :])
        except ValueError:
            return None
        return cls(str(data.get("trt_version")), int(data.get("entries", 0)))


def fake_builder(module: ModuleType) -> SimpleNamespace:
    """The builder half for the fake ``module`` (its ``__version__`` picks the family)."""
    version: str = module.__version__
    major = int(version.split(".", 1)[0])
    builder_flag = _builder_flags(major)
    creation_flag = _creation_flags(major)
    memory_pool = _memory_pools(major)
    module.builds = []

    def error(logger: Any, message: str) -> None:
        logger.log(Severity.ERROR, message)

    class BuilderConfig:
        """``IBuilderConfig``."""

        def __init__(self) -> None:
            self.flags: list[Any] = []
            self.pools: dict[Any, int] = {}
            self.profiles: list[FakeOptimizationProfile] = []
            self.timing_cache: FakeTimingCache | None = None

        def set_flag(self, flag: Any) -> None:
            assert isinstance(flag, builder_flag), (
                f"set_flag({flag!r}): not a BuilderFlag of TensorRT {version}"
            )
            if flag not in self.flags:
                self.flags.append(flag)

        def get_flag(self, flag: Any) -> bool:
            return flag in self.flags

        def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
            assert isinstance(pool, memory_pool), f"set_memory_pool_limit({pool!r}): not a MemoryPoolType"
            assert isinstance(pool_size, int) and pool_size > 0, f"pool size {pool_size!r}"
            self.pools[pool] = pool_size

        def get_memory_pool_limit(self, pool: Any) -> int:
            return self.pools.get(pool, 1 << 40)

        def add_optimization_profile(self, profile: FakeOptimizationProfile) -> int:
            if not profile:
                return -1  # the real one refuses an invalid profile the same way
            self.profiles.append(profile)
            return len(self.profiles) - 1

        @property
        def num_optimization_profiles(self) -> int:
            return len(self.profiles)

        def create_timing_cache(self, serialized_timing_cache: bytes) -> FakeTimingCache:
            cache = FakeTimingCache.deserialize(version, bytes(serialized_timing_cache))
            return cache if cache is not None else FakeTimingCache(version)

        def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
            if cache.version != version and not ignore_mismatch:
                cache = FakeTimingCache(version)  # a cache from another version is not used
            self.timing_cache = cache
            return True

        def get_timing_cache(self) -> FakeTimingCache | None:
            return self.timing_cache

    class OnnxParser:
        """``trt.OnnxParser(network, logger)``."""

        def __init__(self, network: FakeNetwork, logger: Any) -> None:
            self.network = network
            self.logger = logger
            self.errors: list[FakeParserError] = []

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, index: int) -> FakeParserError:
            return self.errors[index]

        def clear_errors(self) -> None:
            self.errors = []

        def parse_from_file(self, model: str) -> bool:
            with open(model, "rb") as handle:
                return self.parse(handle.read())

        def parse(self, model: bytes, path: str | None = None) -> bool:
            failure = self._import(bytes(model))
            if failure is not None:
                self.errors.append(failure)
                error(self.logger, str(failure))
                return False
            return True

        def _import(self, data: bytes) -> FakeParserError | None:
            if not self.network.explicit_batch:
                return FakeParserError(
                    "Assertion failed: !_importer_ctx.network()->hasImplicitBatchDimension() && "
                    '"This version of the ONNX parser only supports TensorRT INetworkDefinitions with an '
                    "explicit batch dimension. Please ensure the network was initialized with the "
                    'EXPLICIT_BATCH NetworkDefinitionCreationFlag."'
                )
            try:
                model = onnx.load_from_string(data)
            except Exception:
                return FakeParserError("Failed to parse ONNX model from file: protobuf parsing failed")
            if not model.graph.node:
                return FakeParserError("Failed to parse ONNX model: the graph has no nodes")
            try:  # TensorRT types every tensor on import: mismatched types fail there
                onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
            except Exception as exc:
                return FakeParserError(f"ModelImporter.cpp: {' '.join(str(exc).split())}")
            initializers = {t.name: t for t in model.graph.initializer}
            for index, node in enumerate(model.graph.node):
                if node.op_type in _INTEGER_OPS:
                    return FakeParserError(
                        f"No importer registered for op: {node.op_type}", index, node.name, node.op_type
                    )
                if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                    point = initializers.get(node.input[2]) if len(node.input) > 2 else None
                    if point is None or point.data_type != onnx.TensorProto.INT8:
                        kind = "UINT8" if point is None else onnx.TensorProto.DataType.Name(point.data_type)
                        return FakeParserError(
                            f"Assertion failed: TensorRT only supports INT8 quantization, not {kind} "
                            "(a missing zero point means UINT8)",
                            index,
                            node.name,
                            node.op_type,
                        )
                    if numpy_helper.to_array(point).any():
                        return FakeParserError(
                            "Assertion failed: shiftIsAllZeros(zeroPoint): "
                            "Non-zero zero point is not supported",
                            index,
                            node.name,
                            node.op_type,
                        )
            data_type = module.DataType
            names = {1: "FLOAT", 10: "HALF", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL"}

            def tensor(value: onnx.ValueInfoProto) -> FakeTensor:
                dims = value.type.tensor_type.shape.dim
                shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in dims]
                return FakeTensor(value.name, shape, data_type[names[value.type.tensor_type.elem_type]])

            self.network.inputs = [tensor(v) for v in model.graph.input if v.name not in initializers]
            self.network.outputs = [tensor(v) for v in model.graph.output]
            self.network.model = model
            self.network.model_bytes = data
            return None

    class Builder:
        """``trt.Builder(logger)``."""

        def __init__(self, logger: Any) -> None:
            if not getattr(logger, "_initialised", False):
                raise TypeError("Builder(): logger must be an ILogger whose ILogger.__init__ was called")
            self.logger = logger

        def create_network(self, flags: int = 0) -> FakeNetwork:
            assert isinstance(flags, int) and flags >= 0, f"create_network({flags!r})"
            known = sum(1 << member.value for member in creation_flag)
            assert not flags & ~known, f"create_network({flags:#b}): flags unknown to TensorRT {version}"
            if major >= 11:
                return FakeNetwork(flags, strongly_typed=True, explicit_batch=True)
            strongly = major >= 10 and bool(flags & (1 << creation_flag["STRONGLY_TYPED"].value))
            explicit = major >= 10 or bool(flags & (1 << creation_flag["EXPLICIT_BATCH"].value))
            return FakeNetwork(flags, strongly_typed=strongly, explicit_batch=explicit)

        def create_builder_config(self) -> BuilderConfig:
            return BuilderConfig()

        def create_optimization_profile(self) -> FakeOptimizationProfile:
            return FakeOptimizationProfile()

        def build_serialized_network(self, network: FakeNetwork, config: BuilderConfig) -> memoryview | None:
            problem = self._problem(network, config)
            if problem is not None:
                error(self.logger, problem)
                return None
            assert network.model is not None
            flags = [flag.name for flag in config.flags]
            quantized = any(n.op_type == "DequantizeLinear" for n in network.model.graph.node)
            if network.strongly_typed:
                half = any(t.data_type == onnx.TensorProto.FLOAT16 for t in network.model.graph.initializer)
                precision = "int8" if quantized else "fp16" if half else "fp32"
            else:
                precision = "int8" if "INT8" in flags else "fp16" if "FP16" in flags else "fp32"
            profile = None
            if config.profiles:
                low, opt, high = next(iter(config.profiles[0].shapes.values()))
                profile = {"min": list(low), "opt": list(opt), "max": list(high)}
            header = {
                "trt_version": version,
                "precision": precision,
                "strongly_typed": network.strongly_typed,
                "flags": flags,
                "profile": profile,
                "workspace": config.pools.get(memory_pool["WORKSPACE"]),
            }
            cache = config.timing_cache
            module.builds.append(
                {
                    **header,
                    "onnx": network.model_bytes,
                    "timing_cache_entries": None if cache is None else cache.entries,
                }
            )
            if cache is not None:
                cache.entries += len(network.model.graph.node)  # tactics timed for these layers
            return memoryview(
                MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + network.model_bytes
            )

        def _problem(self, network: FakeNetwork, config: BuilderConfig) -> str | None:
            """Why the real builder would fail, as it logs it; ``None`` when it would build."""
            if network.model is None or not network.inputs:
                return (
                    "4: [network.cpp::validate::2000] Error Code 4: Internal Error "
                    "(Network must have at least one output)"
                )
            flags = {flag.name for flag in config.flags}
            quantized = any(n.op_type == "DequantizeLinear" for n in network.model.graph.node)
            if network.strongly_typed and flags & set(_WEAK_TYPING_FLAGS):
                return (
                    "4: [network.cpp::validate::3100] Error Code 4: API Usage Error (precision builder flags "
                    f"{sorted(flags & set(_WEAK_TYPING_FLAGS))} cannot be set on a strongly typed network)"
                )
            if not network.strongly_typed and quantized and "INT8" not in flags:
                return (
                    "4: [network.cpp::validate::3000] Error Code 4: API Usage Error (Q/DQ layers in a "
                    "weakly typed network need BuilderFlag.INT8)"
                )
            if "INT8" in flags and not quantized:
                return (
                    "4: [standardEngineBuilder.cpp::initCalibrationParams] Error Code 4: API Usage Error "
                    "(INT8 without Q/DQ layers needs a calibrator or dynamic ranges for every tensor)"
                )
            shapes = config.profiles[0].shapes if config.profiles else {}
            for tensor in network.inputs:
                dynamic = -1 in tensor.shape
                if tensor.name not in shapes:
                    if dynamic:
                        return (
                            "4: [network.cpp::validate::2917] Error Code 4: Internal Error (Network has "
                            "dynamic or shape inputs, but no optimization profile has been defined.)"
                        )
                    continue
                for shape in shapes[tensor.name]:
                    fits = len(shape) == len(tensor.shape) and all(
                        d == s if d >= 0 else s > 0 for d, s in zip(tensor.shape, shape, strict=True)
                    )
                    if not fits:
                        return (
                            f"4: [network.cpp::validate::3063] Error Code 4: Internal Error ({tensor.name}: "
                            f"profile shape {list(shape)} does not match the input {list(tensor.shape)})"
                        )
            return None

    return SimpleNamespace(
        Builder=Builder,
        OnnxParser=OnnxParser,
        BuilderFlag=builder_flag,
        NetworkDefinitionCreationFlag=creation_flag,
        MemoryPoolType=memory_pool,
        Dims=Dims,
    )


# --- test models --------------------------------------------------------------------------------


def dynamic_onnx(source: Path, target: Path) -> Path:
    """``source`` with its input's batch, height and width made symbolic (as a ``dynamic=True`` export)."""
    model = onnx.load(str(source))
    initializers = {t.name for t in model.graph.initializer}
    image = next(v for v in model.graph.input if v.name not in initializers)
    for axis, name in ((0, "batch"), (2, "height"), (3, "width")):
        dim = image.type.tensor_type.shape.dim[axis]
        dim.Clear()
        dim.dim_param = name
    del model.graph.value_info[:]  # inferred for the fixed size
    for output in model.graph.output:
        for dim in output.type.tensor_type.shape.dim:
            if dim.HasField("dim_value"):
                value = dim.dim_value
                dim.Clear()
                dim.dim_param = f"d{value}"
    onnx.save(model, str(target))
    return target


def with_metadata(source: Path, target: Path, **entries: str) -> Path:
    """``source`` with metadata entries set (other bytes: another model sha256)."""
    model = onnx.load(str(source))
    for key, value in entries.items():
        entry = next((e for e in model.metadata_props if e.key == key), None) or model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(target))
    return target


def zero_points(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """The zero-point initializers of every Q/DQ node."""
    initializers = {t.name: t for t in model.graph.initializer}
    return [
        initializers[node.input[2]]
        for node in model.graph.node
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2
    ]
