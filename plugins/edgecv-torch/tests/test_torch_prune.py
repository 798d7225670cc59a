"""Structured pruning of the real YOLOv8n: channels are removed (not zeroed), shapes stay
consistent through concats and residual adds, the head's output layout is kept, the result
round-trips through a checkpoint and exports to an ONNX file edgecv runs; bad ratios are one-line
errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import edgecv
from edgecv.backend import ConfigError, read_image
from edgecv_torch import checkpoint
from edgecv_torch.onnx_export import export_onnx
from edgecv_torch.prune import PRUNING_KEY, prune
from edgecv_torch.yolov8 import YOLOv8

EXAMPLE = torch.zeros(1, 3, 128, 128)


@pytest.fixture(scope="module")
def original(yolov8: YOLOv8) -> YOLOv8:
    return yolov8


@pytest.fixture(scope="module")
def pruned(original: YOLOv8) -> YOLOv8:
    return prune(original, 0.3, example=EXAMPLE)


def convs(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {name: module for name, module in model.named_modules() if isinstance(module, nn.Conv2d)}


def parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def test_channels_are_removed_not_zeroed(original: YOLOv8, pruned: YOLOv8) -> None:
    before, after = convs(original), convs(pruned)
    assert before.keys() == after.keys()
    # 30 % of each layer's output channels gone (kept = floor(0.7 * n)), wherever it is not the head's output.
    assert after["model.0.conv"].out_channels == int(16 * 0.7) == 11
    assert after["model.9.cv2.conv"].out_channels == int(256 * 0.7)
    # Both sides of a consumer shrink: the next layer reads only the kept channels.
    assert after["model.1.conv"].in_channels == 11
    # In and out channels both shrink, so parameters drop to about 0.7**2 of the original.
    assert parameters(pruned) < 0.55 * parameters(original)
    # No kept filter is all zeros (ln_structured's zeroing would leave them in place).
    for name, conv in after.items():
        norms = conv.weight.detach().flatten(1).norm(dim=1)
        assert bool((norms > 0).all()), name
    # The kept filters of the first conv are the original's (some of its 16 rows, unchanged).
    kept = after["model.0.conv"].weight.detach().flatten(1)
    rows = before["model.0.conv"].weight.detach().flatten(1)
    matches = [int((rows == row).all(dim=1).nonzero()[0]) for row in kept]
    assert len(set(matches)) == 11
    # The original is left as it was.
    assert convs(original)["model.0.conv"].out_channels == 16


def test_head_layout_is_kept(original: YOLOv8, pruned: YOLOv8) -> None:
    after = convs(pruned)
    for level in range(3):
        assert after[f"model.22.cv2.{level}.2"].out_channels == 64
        assert after[f"model.22.cv3.{level}.2"].out_channels == 80
    x = torch.rand(1, 3, 160, 224)
    with torch.no_grad():
        assert pruned(x).shape == original(x).shape == (1, 84, 20 * 28 + 10 * 14 + 5 * 7)
        maps = pruned.head_outputs(x)
    assert [tuple(m.shape) for m in maps] == [(1, 144, 20, 28), (1, 144, 10, 14), (1, 144, 5, 7)]
    assert pruned.names == original.names and pruned.imgsz == original.imgsz
    assert "0.3" in pruned.metadata[PRUNING_KEY]


def test_ratio_zero_changes_nothing(original: YOLOv8) -> None:
    same = prune(original, 0.0, example=EXAMPLE)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(same(x), original(x))
    assert parameters(same) == parameters(original)


def test_checkpoint_round_trip(tmp_path: Path, pruned: YOLOv8) -> None:
    loaded = checkpoint.load(checkpoint.save(pruned, tmp_path / "pruned.pt"))
    assert {n: c.weight.shape for n, c in convs(loaded).items()} == {
        n: c.weight.shape for n, c in convs(pruned).items()
    }
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), pruned(x))


def test_exported_pruned_model_is_smaller_and_runs_in_edgecv(
    tmp_path: Path, original: YOLOv8, pruned: YOLOv8, bus_path: Path
) -> None:
    small = export_onnx(pruned, tmp_path / "pruned.onnx", imgsz=320)
    full = export_onnx(original, tmp_path / "original.onnx", imgsz=320)
    assert small.stat().st_size < 0.55 * full.stat().st_size
    model = edgecv.load(small, backend="onnx")
    assert model.spec.imgsz == (320, 320)
    detections = model.predict(read_image(bus_path))
    assert len(detections) >= 0  # decodes as YOLOv8: 84 channels (pruning alone costs accuracy)
    assert model.spec.outputs[0].shape[-2:] == (84, 2100)


def test_per_layer_ratios_by_name_prefix(original: YOLOv8) -> None:
    before = convs(original)
    after = convs(prune(original, {"model.2": 0.5}, example=EXAMPLE))
    assert after["model.2.m.0.cv1.conv"].out_channels == 8
    # "model.2" names model.2 and what is below it, not model.22 (the head) nor model.9.
    assert after["model.22.cv2.0.0.conv"].out_channels == before["model.22.cv2.0.0.conv"].out_channels
    assert after["model.9.cv1.conv"].out_channels == before["model.9.cv1.conv"].out_channels


def test_a_default_ratio_with_exceptions(original: YOLOv8) -> None:
    after = convs(prune(original, {"": 0.25, "model.9": 0.5}, example=EXAMPLE))
    assert after["model.0.conv"].out_channels == 12
    assert after["model.9.cv1.conv"].out_channels == 64


def test_global_pruning_ranks_across_layers(original: YOLOv8) -> None:
    pruned = prune(original, 0.3, example=EXAMPLE, global_pruning=True)
    before, after = convs(original), convs(pruned)
    shares = [
        after[n].out_channels / before[n].out_channels for n in before if not n.endswith((".2", "dfl.conv"))
    ]
    assert parameters(pruned) < 0.9 * parameters(original)
    assert len({round(share, 2) for share in shares}) > 3  # layers lose different shares
    assert min(after[n].out_channels for n in after) >= 1
    with torch.no_grad():
        assert pruned(EXAMPLE).shape == (1, 84, 16 * 16 + 8 * 8 + 4 * 4)


def test_round_to_keeps_multiples(original: YOLOv8) -> None:
    after = convs(prune(original, 0.3, example=EXAMPLE, round_to=8))
    assert after["model.0.conv"].out_channels == 8
    assert all(c.out_channels % 8 == 0 for n, c in after.items() if not n.endswith((".2", "dfl.conv")))


@pytest.mark.parametrize("ratio", [1.0, 1.5, -0.1, math.nan, math.inf, True, "0.3", {"model.9": 1.0}, {}])
def test_bad_ratio_is_a_one_line_error(original: YOLOv8, ratio: object) -> None:
    with pytest.raises(ConfigError) as error:
        prune(original, ratio, example=EXAMPLE)  # type: ignore[arg-type]
    text = str(error.value)
    assert "\n" not in text
    assert "ratio" in text.lower()


def test_unknown_layer_prefix_is_a_one_line_error(original: YOLOv8) -> None:
    with pytest.raises(ConfigError, match=r"model\.99") as error:
        prune(original, {"model.99": 0.3}, example=EXAMPLE)
    assert "\n" not in str(error.value)
