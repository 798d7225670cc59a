"""ONNX -> serialized TensorRT engine through the builder API, for TensorRT 8.6, 10 and 11.

``build_engine`` makes the calls a hand-written TensorRT build script makes: ``Builder``,
``create_network`` (``EXPLICIT_BATCH`` on 8.x; strongly typed by default on 11), ``OnnxParser``,
``create_builder_config``, the workspace limit, the precision flags (8.6/10 only: 11 has none),
an optimization profile for dynamic inputs, the timing cache, ``build_serialized_network``.

Every call is typed by ``tensorrt-stubs`` (10.13); the 11.x branch uses no name those stubs lack
(it leaves out names 11 removed: ``BuilderFlag.FP16``/``INT8``, ``EXPLICIT_BATCH``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from edgecv.backend import BackendError, ConfigError, ModelError, Progress, atomic_target, one_line
from edgecv_tensorrt.runtime import TensorRTModule, make_logger, tensorrt_version
from edgecv_tensorrt.versions import TensorRTVersion

if TYPE_CHECKING:
    import tensorrt

PRECISIONS = ("fp32", "fp16", "int8")
MAX_TIMING_CACHE_BYTES = 256 << 20
"""A timing cache holds a few kB per tactic timed; one this large is not one TensorRT wrote."""
MIN_DYNAMIC_SIDE = 32
"""Smallest image side of a ``--dynamic`` profile: YOLO's largest stride."""


@attrs.frozen
class Profile:
    """Shapes of the one optimization profile: TensorRT tunes for ``opt`` and runs ``min``..``max``."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_json(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@attrs.frozen
class BuildConfig:
    precision: str
    """fp32, fp16 or int8: the builder flags on 8.6/10; on 11 the ONNX's own types decide."""
    input_name: str
    input_shape: tuple[int, ...]
    """The shape to build for: the ONNX's static one, or its dynamic one filled in (``opt``)."""
    workspace: int | None = None
    """Bytes of GPU memory TensorRT's tactics may use; ``None``: TensorRT's default (all of it)."""
    profile: Profile | None = None
    """Set for an ONNX with dynamic input dimensions (a fixed one when not built ``--dynamic``)."""
    timing_cache: Path | None = None
    """Read before the build (when there) and written after it: later builds time fewer tactics."""


def profile_for(dims: tuple[int | None, ...], shape: tuple[int, ...], dynamic: bool) -> Profile | None:
    """The profile for an input of ``dims`` (``None``: dynamic) built for ``shape``.

    ``dynamic``: the dynamic image sides run from ``MIN_DYNAMIC_SIDE`` up to ``shape``'s (TensorRT
    tunes for ``shape``); the batch stays 1, as edgecv runs one frame at a time. Otherwise a
    dynamic input gets the one shape ``shape``.
    """
    if all(d is not None for d in dims):
        return None
    if not dynamic:
        return Profile(shape, shape, shape)
    low = tuple(
        min(MIN_DYNAMIC_SIDE, side) if axis >= 2 and dims[axis] is None else side
        for axis, side in enumerate(shape)
    )
    return Profile(low, shape, shape)


def network_flags(trt: TensorRTModule, version: TensorRTVersion) -> int:
    """8.x parses ONNX only into explicit-batch networks; 10 implies it; 11 is strongly typed by default."""
    if version.explicit_batch_flag:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def precision_flags(
    trt: TensorRTModule, version: TensorRTVersion, precision: str
) -> list[tensorrt.BuilderFlag]:
    """8.6/10: FP16 lets TensorRT pick half-precision kernels; INT8 runs the Q/DQ nodes in int8 (the
    float head stays float32). 11 has neither flag: the FP16 or Q/DQ ONNX itself says it."""
    if version.strongly_typed or precision == "fp32":
        return []
    return [trt.BuilderFlag.FP16 if precision == "fp16" else trt.BuilderFlag.INT8]


def build_engine(trt: TensorRTModule, onnx_path: Path, config: BuildConfig, progress: Progress) -> bytes:
    """Parse ``onnx_path`` and build it with ``config``; the serialized engine (plan) it returns is
    bound to this TensorRT version and GPU."""
    version = TensorRTVersion.parse(tensorrt_version(trt))
    errors: list[str] = []
    logger = make_logger(trt, errors)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, version))
    parser = trt.OnnxParser(network, logger)
    with progress("parsing the ONNX", 1) as advance:
        if not parser.parse_from_file(str(onnx_path)):
            said = [one_line(str(parser.get_error(index)), None) for index in range(parser.num_errors)]
            raise ModelError(
                f"TensorRT {version} cannot parse {onnx_path.name}: "
                f"{'; '.join(said or errors) or 'no reason given'}",
                "Check that the ONNX opset and operators are ones this TensorRT supports "
                "(or build from the float32 model).",
            )
        advance(1)
    _check_input(network, config, onnx_path)
    settings = builder.create_builder_config()
    if config.workspace is not None:
        settings.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace)
    for flag in precision_flags(trt, version, config.precision):
        settings.set_flag(flag)
    if config.profile is not None:
        profile = builder.create_optimization_profile()
        profile.set_shape(
            config.input_name,
            trt.Dims(list(config.profile.min)),
            trt.Dims(list(config.profile.opt)),
            trt.Dims(list(config.profile.max)),
        )
        settings.add_optimization_profile(profile)
    if config.timing_cache is not None:
        cache = settings.create_timing_cache(_read_timing_cache(config.timing_cache))
        settings.set_timing_cache(cache, False)  # a mismatched cache is ignored, never wrongly used
    with progress(f"building the TensorRT {version} engine ({config.precision})", None) as advance:
        started = time.perf_counter()
        serialized: tensorrt.IHostMemory | None = builder.build_serialized_network(network, settings)
        advance(1)
    if serialized is None:
        said = f": {'; '.join(errors[-3:])}" if errors else ""
        raise BackendError(
            f"TensorRT {version} could not build an engine from {onnx_path.name}{said}",
            "Free GPU memory or raise --workspace; build from the float32 ONNX if a converted one fails.",
        )
    data = bytes(serialized)
    if config.timing_cache is not None:
        _write_timing_cache(config.timing_cache, bytes(settings.get_timing_cache().serialize()))
    with progress(f"engine built in {time.perf_counter() - started:.1f} s", 1) as advance:
        advance(1)
    return data


def _check_input(network: tensorrt.INetworkDefinition, config: BuildConfig, onnx_path: Path) -> None:
    """The parsed network has the one input the plan was made for (it read the same ONNX)."""
    names = [network.get_input(index).name for index in range(network.num_inputs)]
    if names != [config.input_name]:
        raise ModelError(
            f"TensorRT reads the inputs {names} from {onnx_path.name}; edgecv expected {config.input_name!r}",
            "Export the detector with a single image input.",
        )
    dims = network.get_input(0).shape
    shape = tuple(int(dims[axis]) for axis in range(len(dims)))
    if config.profile is None and -1 not in shape and shape != config.input_shape:
        raise ConfigError(
            f"{onnx_path.name} has the fixed input shape {list(shape)}, not {list(config.input_shape)}",
            "Drop --imgsz, or export the ONNX with dynamic axes.",
        )


def _read_timing_cache(path: Path) -> bytes:
    """The cache's bytes, or empty (a fresh cache) when there is none or it cannot be read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TIMING_CACHE_BYTES + 1)
    except OSError:
        return b""
    return b"" if len(data) > MAX_TIMING_CACHE_BYTES else data


def _write_timing_cache(path: Path, data: bytes) -> None:
    try:
        with atomic_target(path) as partial:
            partial.write_bytes(data)
    except OSError:
        pass  # only a speed-up for the next build; the engine itself is fine
