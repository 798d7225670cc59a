"""INT8 post-training quantization for torch deployments: torchao's PT2E flow.

``torch.export`` captures the model as an ATen graph; ``prepare_pt2e`` inserts observers where a
quantizer says (torchao's ``X86InductorQuantizer`` on x86: uint8 activations per tensor, int8
weights per channel; on ARM ExecuTorch's ``XNNPACKQuantizer`` where it is installed, else
torchao's ``ArmInductorQuantizer``); calibration runs images through it, preprocessed as edgecv
preprocesses them at inference (letterbox, RGB, 0..1); ``convert_pt2e`` replaces the observers
with quantize/dequantize operators and stores the weights as int8. The result is saved as a
``torch.export`` program (``.pt2``) that the torch backend loads.

Speed: the converted graph run eagerly is *slower* than FP32 (each quantize/dequantize is a
separate reference operator and convolutions still run in float). INT8 pays off once
``torch.compile`` (Inductor, with ``freezing``) fuses the dequantize-conv-quantize patterns into
oneDNN int8 kernels on x86 (or the program is lowered to ExecuTorch/XNNPACK on ARM);
``compare_speed`` measures both ways.

The eager flow of the seed (``torch.ao.quantization``: QuantStub, qconfig, ``prepare``, calibrate,
``convert``) still runs in torch 2.13.0, checked on a Conv-ReLU model: ``prepare`` and
``convert`` work, and every call warns ``DeprecationWarning: torch.ao.quantization is deprecated
and will be removed in 2.10`` (sic), pointing eager users to torchao's ``quantize_`` and graph
users to PT2E; creating its quantized tensors (``torch.quint8``/``qint8``) warns that they will be
removed too. It also needs QuantStub/DeQuantStub and module fusion written into the model, which
PT2E does not. edgecv therefore uses PT2E only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from edgecv.backend import (
    ConfigError,
    ModelError,
    Progress,
    atomic_target,
    calibration_files,
    one_line,
    terminal_progress,
)

if TYPE_CHECKING:
    from torch.fx import GraphModule

    from edgecv.summary import Summary

QUANTIZERS = ("auto", "x86", "xnnpack", "arm")
"""``auto``: ``xnnpack`` (or ``arm`` without ExecuTorch) on ARM machines, ``x86`` elsewhere."""
METADATA_FILE = "config.txt"
"""Extra file of the ``.pt2`` holding the model's metadata as JSON (what the torch backend reads)."""
DEFAULT_CALIB_SIZE = 32
_NOT_TRACEABLE = (
    "PT2E quantization needs a model torch.export can capture as one graph (static shapes, no "
    "Python control flow on tensor values): pass an edgecv-torch checkpoint or a YOLOv8 ONNX model."
)


@contextlib.contextmanager
def _quiet_torchao() -> Iterator[None]:
    """torchao's import logs a warning per optional CUDA kernel library it cannot load on a
    CPU-only machine, and torch one about an Enum it registers: noise, not problems."""
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def resolve_quantizer(kind: str = "auto") -> str:
    """The quantizer ``kind`` names on this machine: ``auto`` by CPU, ``xnnpack`` without
    ExecuTorch installed falls back to ``arm``."""
    if kind not in QUANTIZERS:
        raise ConfigError(f"Unknown quantizer {kind!r}", f"Pass one of {', '.join(QUANTIZERS)}.")
    if kind == "auto":
        kind = "xnnpack" if platform.machine().lower() in ("aarch64", "arm64") else "x86"
    if kind == "xnnpack" and importlib.util.find_spec("executorch") is None:
        kind = "arm"
    return kind


def make_quantizer(kind: str = "auto") -> Any:
    """The PT2E quantizer for ``kind`` (see ``resolve_quantizer``) with its default static INT8
    config (ARM paths: written to torchao's and ExecuTorch's APIs, not run here: no ARM machine)."""
    kind = resolve_quantizer(kind)
    with _quiet_torchao():
        if kind == "xnnpack":
            from executorch.backends.xnnpack.quantizer import (  # type: ignore[import-not-found]
                xnnpack_quantizer as xnnpack,
            )

            quantizer = xnnpack.XNNPACKQuantizer()
            return quantizer.set_global(xnnpack.get_symmetric_quantization_config(is_per_channel=True))
        if kind == "arm":
            from torchao.quantization.pt2e.quantizer import (  # type: ignore[import-untyped]
                arm_inductor_quantizer as arm,
            )

            return arm.ArmInductorQuantizer().set_global(arm.get_default_arm_inductor_quantization_config())
        from torchao.quantization.pt2e.quantizer import (
            x86_inductor_quantizer as x86,
        )

        return x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())


def input_spec(imgsz: tuple[int, int]) -> Any:
    """edgecv's input recipe for a YOLOv8 at ``imgsz``: centred letterbox, RGB, 0..1, NCHW."""
    from edgecv import InputSpec

    return InputSpec("images", (1, 3, *imgsz), "NCHW", "float32", imgsz)


def calibration_batches(
    folder: Path, imgsz: tuple[int, int], count: int = DEFAULT_CALIB_SIZE, subset: str = "even"
) -> list[Callable[[], Tensor]]:
    """One loader per calibration image of ``folder`` (``count`` spread over the ``subset`` half:
    ``edgecv.calibration``); each reads and preprocesses its image when called, so calibration
    holds one image at a time. ``ConfigError`` for a missing or empty folder."""
    from edgecv.backend import read_image
    from edgecv.preprocess import preprocess

    spec = input_spec(imgsz)
    files = calibration_files(folder, count, subset)

    def loader(file: Path) -> Callable[[], Tensor]:
        return lambda: torch.from_numpy(preprocess(read_image(file), spec)[0])

    return [loader(file) for file in files]


def quantize(
    model: nn.Module,
    example: Tensor,
    batches: Iterable[Callable[[], Tensor]],
    *,
    quantizer: str = "auto",
    progress: Progress | None = None,
) -> GraphModule:
    """``model`` quantized to INT8 with PT2E, calibrated on ``batches`` (callables returning an
    input batch, e.g. ``calibration_batches``); ``example`` fixes the input shape.

    ``ModelError`` when ``torch.export`` cannot capture the model; ``ConfigError`` without batches.
    """
    loaders = list(batches)
    if not loaders:
        raise ConfigError("No calibration images", "Pass a folder of 32-128 representative images.")
    chosen = make_quantizer(quantizer)
    with _quiet_torchao():
        from torchao.quantization.pt2e.quantize_pt2e import (  # type: ignore[import-untyped]
            convert_pt2e,
            prepare_pt2e,
        )
    model = model.eval()
    try:
        program = torch.export.export(model, (example,))
    except Exception as exc:  # torch raises many types (UserError, GuardOnDataDependent, ...)
        raise ModelError(
            f"Cannot trace {type(model).__name__} for quantization: "
            f"torch.export failed: {one_line(exc, 300)}",
            _NOT_TRACEABLE,
        ) from exc
    prepared = prepare_pt2e(program.module(), chosen)
    with (
        torch.no_grad(),
        (progress or terminal_progress(enabled=False))("calibrating", len(loaders)) as advance,
    ):
        for load in loaders:
            prepared(load())
            advance(1)
    converted: GraphModule = convert_pt2e(prepared)
    _drop_unused_weights(converted)
    return converted


def _drop_unused_weights(module: GraphModule) -> None:
    """``convert_pt2e`` folds each weight into an int8 constant but leaves the float original
    registered: a saved program would carry both (larger than the FP32 one)."""
    used = {str(node.target) for node in module.graph.nodes if node.op == "get_attr"}
    for name in [n for n, _ in (*module.named_parameters(), *module.named_buffers()) if n not in used]:
        owner, _, attribute = name.rpartition(".")
        parent = module.get_submodule(owner) if owner else module
        delattr(parent, attribute)


def export_program(module: nn.Module, example: Tensor) -> torch.export.ExportedProgram:
    with torch.no_grad():
        return torch.export.export(module, (example,))


def program_bytes(program: torch.export.ExportedProgram, metadata: Mapping[str, str] | None = None) -> bytes:
    """``program`` serialized as ``torch.export.save`` writes it, with ``metadata`` as JSON."""
    # The sample input torch.export keeps would be stored too (4.9 MB at 640x640): not needed to run.
    program.example_inputs = None
    buffer = io.BytesIO()
    extra = {METADATA_FILE: json.dumps(dict(metadata or {}))}
    torch.export.save(program, buffer, extra_files=extra)
    return buffer.getvalue()


def save_program(module: nn.Module, example: Tensor, path: Path, metadata: Mapping[str, str]) -> Path:
    """Write ``module`` as a ``torch.export`` program (``.pt2``) to ``path`` atomically."""
    if path.suffix.lower() != ".pt2" or path.is_dir():
        raise ConfigError(f"The output {path} is not a .pt2 file name", "Pass e.g. -o model_int8.pt2.")
    data = program_bytes(export_program(module, example), metadata)
    with atomic_target(path) as partial:
        partial.write_bytes(data)
    return path


def compare_speed(
    models: Mapping[str, Callable[[Tensor], Any]],
    example: Tensor,
    *,
    runs: int = 20,
    warmup: int = 2,
    progress: Progress | None = None,
) -> dict[str, Summary]:
    """Latency of each model on ``example``: calls alternate model by model, so a noisy machine
    slows them alike; the first ``warmup`` rounds (compilation, caches) are not timed."""
    from edgecv.summary import summarize

    if runs < 1 or warmup < 0:
        raise ConfigError(f"runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
    times: dict[str, list[float]] = {name: [] for name in models}
    with (
        torch.no_grad(),
        (progress or terminal_progress(enabled=False))("timing", (runs + warmup) * len(models)) as advance,
    ):
        for round_ in range(warmup + runs):
            for name, model in models.items():
                start = time.perf_counter()
                model(example)
                elapsed = (time.perf_counter() - start) * 1000
                if round_ >= warmup:
                    times[name].append(elapsed)
                advance(1)
    return {name: summarize(values) for name, values in times.items()}


def compiled(model: Callable[[Tensor], Any]) -> Callable[[Tensor], Any]:
    """``model`` through ``torch.compile`` (Inductor) with constant folding of the weights
    (``freezing``), which x86 needs to run the quantized patterns as oneDNN int8 kernels.
    Compilation happens on the first call (tens of seconds for YOLOv8n on a small CPU)."""
    import torch._inductor.config as inductor

    inner = torch.compile(model)

    def call(x: Tensor) -> Any:
        with inductor.patch(freezing=True):
            return inner(x)

    return call
