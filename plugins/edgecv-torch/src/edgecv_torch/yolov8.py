"""YOLOv8 detection as a plain ``nn.Module``, rebuilt from an ONNX file's weights (no Ultralytics).

Ultralytics exports YOLOv8 with its module paths as initializer names (``model.2.cv1.conv.weight``)
and BatchNorm folded into each convolution's bias, so the network can be rebuilt exactly: the
layer graph is YOLOv8's (fixed), and every channel count is read off the weights. That also rebuilds
a *pruned* model (fewer channels in some layers) from its own state dict.

One change from Ultralytics' layout makes the model prunable: C2f's first 1x1 convolution, whose
output Ultralytics splits in two halves, is stored as two convolutions (``cv1a``, ``cv1b``). The
output is the same; channel pruning can then shrink each half on its own (a split of a tensor
whose size changes is what dependency-graph pruners cannot follow).

``forward`` returns what the ONNX model returns: ``[N, 4 + classes, anchors]``, boxes as cx, cy, w,
h in input pixels and class scores after the sigmoid. ``head_outputs`` gives the raw per-stride
maps before decoding (box-distribution logits and class logits), which distillation matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from edgecv.backend import ModelError, default_names, imgsz_from_metadata, names_from_metadata

REG_MAX = 16
"""Bins of the box-side distribution (DFL)."""
BACKBONE_C2F = (2, 4, 6, 8)
"""C2f blocks with residual bottlenecks; the neck's (12, 15, 18, 21) have none."""
NECK_C2F = (12, 15, 18, 21)
STRIDE_2_CONVS = (0, 1, 3, 5, 7, 16, 19)
SPPF_LAYER = 9
DETECT = 22
FEATURES = (15, 18, 21)
"""The neck outputs the head reads (strides 8, 16, 32)."""


class Conv(nn.Module):
    """Convolution (BatchNorm folded into its bias) + SiLU."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, bias=True)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.act(self.conv(x))
        return out


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, hidden: int, c_out: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1 = Conv(c_in, hidden, 3)
        self.cv2 = Conv(hidden, c_out, 3)
        self.add = shortcut and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """Ultralytics' C2f, its first convolution's two output halves as two convolutions."""

    def __init__(self, cv1a: Conv, cv1b: Conv, blocks: Sequence[Bottleneck], cv2: Conv) -> None:
        super().__init__()
        self.cv1a = cv1a
        self.cv1b = cv1b
        self.m = nn.ModuleList(blocks)
        self.cv2 = cv2

    def forward(self, x: Tensor) -> Tensor:
        outputs: list[Tensor] = [self.cv1a(x), self.cv1b(x)]
        for block in self.m:
            outputs.append(block(outputs[-1]))
        merged: Tensor = self.cv2(torch.cat(outputs, 1))
        return merged


class SPPF(nn.Module):
    def __init__(self, cv1: Conv, cv2: Conv) -> None:
        super().__init__()
        self.cv1 = cv1
        self.cv2 = cv2
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        y: list[Tensor] = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        merged: Tensor = self.cv2(torch.cat(y, 1))
        return merged


class DFL(nn.Module):
    """Expected value of each box side's distribution over ``REG_MAX`` bins (a fixed 1x1 conv)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(REG_MAX, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(REG_MAX, dtype=torch.float32).view(1, REG_MAX, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        batch, _, anchors = x.shape
        expected: Tensor = self.conv(x.view(batch, 4, REG_MAX, anchors).transpose(2, 1).softmax(1))
        return expected.view(batch, 4, anchors)


class Detect(nn.Module):
    def __init__(
        self, box: Sequence[nn.Sequential], cls: Sequence[nn.Sequential], strides: Sequence[int]
    ) -> None:
        super().__init__()
        self.cv2 = nn.ModuleList(box)
        self.cv3 = nn.ModuleList(cls)
        self.dfl = DFL()
        self.strides = tuple(strides)

    @property
    def num_classes(self) -> int:
        branch = self.cv3[0]
        assert isinstance(branch, nn.Sequential)
        last = branch[-1]
        assert isinstance(last, nn.Conv2d)
        return int(last.out_channels)

    def raw(self, features: Sequence[Tensor]) -> list[Tensor]:
        return [
            torch.cat((box(x), cls(x)), 1) for x, box, cls in zip(features, self.cv2, self.cv3, strict=True)
        ]

    def decode(self, maps: Sequence[Tensor]) -> Tensor:
        batch = maps[0].shape[0]
        points, strides = _anchors(maps, self.strides)
        flat = torch.cat([m.view(batch, m.shape[1], -1) for m in maps], 2)
        box, cls = torch.split(flat, [4 * REG_MAX, self.num_classes], 1)
        left_top, right_bottom = self.dfl(box).chunk(2, 1)
        x1y1 = points - left_top
        x2y2 = points + right_bottom
        xywh = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides
        return torch.cat((xywh, cls.sigmoid()), 1)


def _anchors(maps: Sequence[Tensor], strides: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Cell centres ``[2, anchors]`` (in cells) and each anchor's stride ``[1, anchors]``."""
    points, scales = [], []
    for feature, stride in zip(maps, strides, strict=True):
        height, width = feature.shape[2:]
        ys = torch.arange(height, dtype=feature.dtype, device=feature.device) + 0.5
        xs = torch.arange(width, dtype=feature.dtype, device=feature.device) + 0.5
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((grid_x, grid_y), -1).view(-1, 2))
        scales.append(
            torch.full((height * width, 1), float(stride), dtype=feature.dtype, device=feature.device)
        )
    return torch.cat(points).T, torch.cat(scales).T


class YOLOv8(nn.Module):
    """YOLOv8 detection; ``metadata`` holds the ONNX-style strings (names, imgsz, stride, task)."""

    def __init__(self, layers: Sequence[nn.Module], metadata: Mapping[str, str]) -> None:
        super().__init__()
        self.model = nn.ModuleList(layers)
        self.metadata = dict(metadata)
        detect = self.model[DETECT]
        assert isinstance(detect, Detect)
        self.num_classes = detect.num_classes
        self.strides = detect.strides
        names = _names(metadata, self.num_classes)
        self.names = names
        size = imgsz_from_metadata(self.metadata)
        self.imgsz: tuple[int, int] = (int(size[0]), int(size[1])) if size else (640, 640)

    def features(self, x: Tensor) -> list[Tensor]:
        saved: dict[int, Tensor] = {}
        concat_with = {11: 6, 14: 4, 17: 12, 20: 9}
        for index in range(DETECT):
            layer = self.model[index]
            x = torch.cat((x, saved[concat_with[index]]), 1) if index in concat_with else layer(x)
            if index in (4, 6, 9, 12, *FEATURES):
                saved[index] = x
        return [saved[index] for index in FEATURES]

    def head_outputs(self, x: Tensor) -> list[Tensor]:
        """Per stride ``[N, 4 * 16 + classes, H, W]``: box-distribution and class logits, undecoded."""
        detect = self.model[DETECT]
        assert isinstance(detect, Detect)
        return detect.raw(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        detect = self.model[DETECT]
        assert isinstance(detect, Detect)
        return detect.decode(detect.raw(self.features(x)))

    @classmethod
    def from_onnx(cls, path: Path) -> YOLOv8:
        """The YOLOv8 detector in an Ultralytics ONNX export (weights by module path, BN folded)."""
        import onnx
        from onnx import numpy_helper

        try:
            graph = onnx.load(str(path))
        except Exception as exc:
            raise ModelError(f"Cannot read {path.name} as ONNX: {exc}", "Pass a YOLOv8 ONNX file.") from exc
        state = {
            init.name: torch.from_numpy(numpy_helper.to_array(init).copy())
            for init in graph.graph.initializer
            if init.name.startswith("model.")
        }
        metadata = {prop.key: prop.value for prop in graph.metadata_props}
        return cls.from_state_dict(state, metadata, source=path.name)

    @classmethod
    def from_state_dict(
        cls, state: Mapping[str, Tensor], metadata: Mapping[str, str], source: str = "the checkpoint"
    ) -> YOLOv8:
        """Rebuild from weights; each layer's channels come from its tensors (pruned models too)."""
        try:
            layers = _build(state)
        except (KeyError, ValueError, IndexError) as exc:
            raise ModelError(
                f"{source} does not hold YOLOv8 detection weights ({exc})",
                "Pass an Ultralytics YOLOv8 detect export (ONNX) or an edgecv-torch checkpoint of one.",
            ) from exc
        model = cls(layers, metadata)
        missing, unexpected = model.load_state_dict(_edgecv_names(state), strict=False)
        missing = [name for name in missing if not name.endswith("dfl.conv.weight")]
        if missing or unexpected:
            raise ModelError(
                f"{source}: weights do not fit YOLOv8 (missing {missing[:3]}, unexpected {unexpected[:3]})",
                "Pass an Ultralytics YOLOv8 detect export (ONNX) or an edgecv-torch checkpoint of one.",
            )
        return model.eval()


def _names(metadata: Mapping[str, str], count: int) -> tuple[str, ...]:
    names = names_from_metadata(metadata)
    return names if names is not None and len(names) == count else default_names(count)


def _conv(state: Mapping[str, Tensor], prefix: str, stride: int = 1) -> Conv:
    weight = state[f"{prefix}.conv.weight"]
    c_out, c_in, k, _ = weight.shape
    return Conv(int(c_in), int(c_out), int(k), stride)


def _c2f_first(state: Mapping[str, Tensor], prefix: str) -> tuple[Conv, Conv]:
    """C2f's two first convolutions: stored as such (edgecv), or one to split in halves (Ultralytics)."""
    if f"{prefix}.cv1a.conv.weight" in state:
        return _conv(state, f"{prefix}.cv1a"), _conv(state, f"{prefix}.cv1b")
    c_out, c_in, _, _ = state[f"{prefix}.cv1.conv.weight"].shape
    half = int(c_out) // 2
    return Conv(int(c_in), half, 1), Conv(int(c_in), int(c_out) - half, 1)


def _blocks(state: Mapping[str, Tensor], prefix: str) -> int:
    found = {int(m.group(1)) for key in state if (m := re.match(rf"{re.escape(prefix)}\.m\.(\d+)\.", key))}
    return max(found) + 1 if found else 0


def _build(state: Mapping[str, Tensor]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for index in range(DETECT):
        prefix = f"model.{index}"
        if index in STRIDE_2_CONVS:
            layers.append(_conv(state, prefix, 2))
        elif index in BACKBONE_C2F or index in NECK_C2F:
            first_a, first_b = _c2f_first(state, prefix)
            blocks = [
                Bottleneck(
                    int(state[f"{prefix}.m.{j}.cv1.conv.weight"].shape[1]),
                    int(state[f"{prefix}.m.{j}.cv1.conv.weight"].shape[0]),
                    int(state[f"{prefix}.m.{j}.cv2.conv.weight"].shape[0]),
                    shortcut=index in BACKBONE_C2F,
                )
                for j in range(_blocks(state, prefix))
            ]
            layers.append(C2f(first_a, first_b, blocks, _conv(state, f"{prefix}.cv2")))
        elif index == SPPF_LAYER:
            layers.append(SPPF(_conv(state, f"{prefix}.cv1"), _conv(state, f"{prefix}.cv2")))
        elif index in (10, 13):
            layers.append(nn.Upsample(scale_factor=2.0, mode="nearest"))
        else:
            layers.append(nn.Identity())  # a concat, done in YOLOv8.features: keeps the indices
    levels = len(FEATURES)
    box = [_branch(state, f"model.{DETECT}.cv2.{level}") for level in range(levels)]
    cls = [_branch(state, f"model.{DETECT}.cv3.{level}") for level in range(levels)]
    layers.append(Detect(box, cls, [2 ** (3 + level) for level in range(levels)]))
    return layers


def _branch(state: Mapping[str, Tensor], prefix: str) -> nn.Sequential:
    last = state[f"{prefix}.2.weight"]
    c_out, c_in, _, _ = last.shape
    return nn.Sequential(
        _conv(state, f"{prefix}.0"),
        _conv(state, f"{prefix}.1"),
        nn.Conv2d(int(c_in), int(c_out), 1, bias=True),
    )


def _edgecv_names(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Ultralytics' ``cvN.cv1`` tensors split into edgecv's ``cv1a``/``cv1b`` halves; others as they are."""
    renamed: dict[str, Tensor] = {}
    for key, value in state.items():
        match = re.fullmatch(r"(model\.\d+)\.cv1\.conv\.(weight|bias)", key)
        layer = int(key.split(".")[1]) if key.startswith("model.") and key.split(".")[1].isdigit() else -1
        if match and layer in BACKBONE_C2F + NECK_C2F:
            half = value.shape[0] // 2
            renamed[f"{match.group(1)}.cv1a.conv.{match.group(2)}"] = value[:half].clone()
            renamed[f"{match.group(1)}.cv1b.conv.{match.group(2)}"] = value[half:].clone()
        elif key.endswith("dfl.conv.weight"):
            continue  # fixed: arange(16)
        else:
            renamed[key] = value
    return renamed
