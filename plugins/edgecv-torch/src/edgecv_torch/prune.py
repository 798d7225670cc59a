"""Structured L2-norm channel pruning of YOLOv8 that removes channels (smaller tensors, fewer FLOPs).

``torch.nn.utils.prune.ln_structured`` only zeroes channels: the tensors keep their shape and
nothing gets faster. Here torch-pruning's dependency graph (DepGraph) traces the model once and
removes each chosen channel everywhere it is used: the convolution that makes it, every
convolution that reads it, both sides of a residual add and the right slice of each concat. The
channels with the smallest L2 norm of their weights go first.

The detection head keeps its output layout: the last convolution of each head branch
(``model.22.cv2.*.2`` box distribution, ``model.22.cv3.*.2`` class logits) and the DFL are left
whole, so the output is still ``[N, 4 + classes, anchors]`` and decodes as before. The result is
rebuilt from its own state dict (``YOLOv8.from_state_dict``): what ``checkpoint.save``/``load``
round-trips is exactly what this returns.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from edgecv.backend import ConfigError, ModelError, one_line
from edgecv_torch.yolov8 import DETECT, Detect, YOLOv8

PRUNING_KEY = "edgecv_pruning"
"""Metadata key that records how a model was pruned (carried into checkpoints and ONNX exports)."""


def prune(
    model: YOLOv8,
    ratio: float | Mapping[str, float],
    *,
    example: Tensor,
    global_pruning: bool = False,
    round_to: int | None = None,
) -> YOLOv8:
    """A copy of ``model`` with a fraction ``ratio`` of its channels removed (``model`` is unchanged).

    ``ratio``: one fraction in [0, 1) for every prunable layer, or ``{layer-name prefix: fraction}``
    (``{"model.9": 0.5, "model.22": 0.2}``; a prefix matches whole dotted names, so ``model.2``
    is not ``model.22``; the prefix ``""`` sets the ratio of every other layer); layers no prefix
    names keep their channels. ``global_pruning`` ranks
    channels across layers (within one ratio's layers) instead of within each layer, so layers
    whose channels matter less lose more; it can leave very few in some (YOLOv8n at 0.3: the class
    branch's convolutions keep 4 to 21 of 80), so per-layer ratios are the safer default.
    ``round_to`` keeps channel counts multiples of it (rounding down: slightly more is pruned),
    which some runtimes' kernels prefer.
    ``example``: an input batch to trace the model with, e.g. ``torch.zeros(1, 3, 320, 320)``.

    Measured on YOLOv8n (BN folded): uniform L2 pruning of even 5 % of the channels leaves the
    model detecting almost nothing until it is distilled or fine-tuned (see ``distill``); folding
    the removed channels' mean activations into the consumers' biases did not change that.
    """
    ratios = check_ratios(ratio)
    if round_to is not None and round_to < 1:
        raise ConfigError(f"round_to must be at least 1, got {round_to}", "Pass e.g. round_to=8, or None.")
    import torch_pruning as tp  # type: ignore[import-untyped]

    work = copy.deepcopy(model).eval()
    detect = work.model[DETECT]
    assert isinstance(detect, Detect)
    ignored: list[nn.Module] = [detect.dfl]
    for branches in (detect.cv2, detect.cv3):
        ignored.extend(branch[-1] for branch in branches if isinstance(branch, nn.Sequential))
    uniform = ratios.get("")
    per_layer = {_modules(work, prefix): value for prefix, value in ratios.items() if prefix}
    before = _parameters(work)
    try:
        with torch.enable_grad():  # DepGraph traces through autograd
            pruner = tp.pruner.MagnitudePruner(
                work,
                example,
                importance=tp.importance.MagnitudeImportance(p=2),
                pruning_ratio=uniform or 0.0,
                pruning_ratio_dict=per_layer or None,
                global_pruning=global_pruning,
                ignored_layers=ignored,
                round_to=round_to,
            )
            pruner.step()
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ModelError(
            f"Cannot prune the model: {type(exc).__name__}: {one_line(exc)}",
            "Pass an example input the model accepts, e.g. torch.zeros(1, 3, 320, 320).",
        ) from exc
    after = _parameters(work)
    scope = "global" if global_pruning else "per layer"
    described = f"{uniform}" if not per_layer else ", ".join(f"{k}={v}" for k, v in ratios.items())
    metadata = {
        **work.metadata,
        PRUNING_KEY: f"L2 channel pruning ({scope}) ratio {described}; parameters {before} -> {after}",
    }
    return YOLOv8.from_state_dict(work.state_dict(), metadata, source="the pruned model")


def check_ratios(ratio: float | Mapping[str, float]) -> dict[str, float]:
    """``{prefix: ratio}`` with ``""`` for a single ratio; ConfigError for any ratio outside [0, 1)."""
    if isinstance(ratio, (int, float, str)):
        ratios: dict[str, object] = {"": ratio}
    elif isinstance(ratio, Mapping):
        ratios = dict(ratio)
    else:
        raise ConfigError(f"Pruning ratio must be a number or a mapping, got {ratio!r}", "Pass e.g. 0.3.")
    if not ratios:
        raise ConfigError("No pruning ratio given (an empty mapping)", "Pass e.g. 0.3, or {'model.9': 0.5}.")
    for prefix, value in ratios.items():
        where = f" for {prefix!r}" if prefix else ""
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not 0 <= value < 1
        ):
            raise ConfigError(
                f"Pruning ratio{where} must be in [0, 1) (the share of channels removed), got {value!r}",
                "Pass e.g. 0.3 to remove 30 % of the channels.",
            )
    return {prefix: float(value) for prefix, value in ratios.items()}  # type: ignore[arg-type]


def _modules(model: YOLOv8, prefix: str) -> tuple[nn.Module, ...]:
    """The modules whose names are ``prefix`` or start with ``prefix.``; ConfigError when none."""
    stem = prefix.rstrip(".")
    found = tuple(
        module
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d) and (name == stem or name.startswith(f"{stem}."))
    )
    if not found:
        raise ConfigError(
            f"No convolution of the model is named {prefix!r} or below it",
            "Pass layer-name prefixes such as 'model.9' or 'model.22.cv3' (see model.named_modules()).",
        )
    return found


def _parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
