"""The YOLOv8 head in an ONNX graph, and the Dataflow Compiler's model script that runs its NMS on chip.

A Hailo HEF with on-chip NMS is compiled from the graph *cut before the box decoding*: for each
stride, the box-regression convolution (4 x 16 DFL bins = 64 channels) and the class convolution
(one channel per class) become the network's outputs, and the compiler's ``nms_postprocess(...,
meta_arch=yolov8)`` decodes them with a JSON config that names those layers in *its* graph (the
HN). This is what Hailo's model zoo does for yolov8n with fixed node names; here the head is found
from the structure, which also covers YOLO11 and renamed exports:

- the convs that end the network's image grids (``edgecv_onnx.graph.float_head``: grid convs that
  feed no other grid conv), grouped by stride;
- per stride exactly one 64-channel conv (boxes) and one conv with a channel per class;
- and edgecv decodes the ONNX's output as ``yolov8``.

Anything else (YOLOX, YOLOv5, end-to-end heads, segmentation) compiles as the whole graph without
on-chip NMS; ``find_head`` says why.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from edgecv.backend import BackendError

if TYPE_CHECKING:
    import onnx

REG_MAX = 16
"""Ultralytics' DFL bins per box side: the box conv has ``4 * REG_MAX`` channels."""
BOX_CHANNELS = 4 * REG_MAX
SKIPPED_LAYER_TYPES = ("input_layer", "output_layer")
"""HN layers that only carry a tensor in or out; the convs are the layers named in the config."""


@attrs.frozen
class Level:
    """One stride of the head: the ONNX nodes of its box and class convolutions."""

    stride: int
    box: str
    cls: str


@attrs.frozen
class YoloV8Head:
    levels: tuple[Level, ...]
    """By stride, smallest first (8, 16, 32 for the usual P3-P5 head)."""
    classes: int

    @property
    def end_nodes(self) -> list[str]:
        """Where the Dataflow Compiler cuts the graph: box and class conv of each stride."""
        return [name for level in self.levels for name in (level.box, level.cls)]


@attrs.frozen
class NmsSettings:
    """What the HEF's NMS keeps: fixed at compile time, unlike edgecv's own ``conf``/``iou``."""

    scores_th: float
    iou_th: float
    max_per_class: int
    engine: str


def find_head(
    model: onnx.ModelProto, input_size: tuple[int, int], classes: int, arch: str
) -> tuple[YoloV8Head | None, str]:
    """The YOLOv8 head of ``model`` (its input fixed at ``input_size``), or ``None`` and why not."""
    if arch != "yolov8":
        return None, f"its output is decoded as {arch}, not yolov8"
    if classes == BOX_CHANNELS:
        return None, f"with {classes} classes its box and class convolutions cannot be told apart"
    from edgecv_onnx import graph

    _, last = graph.float_head(model, input_size)
    if not last or not all(last):
        return None, "its last grid convolutions were not found (or are unnamed)"
    shapes = _output_shapes(model)
    by_stride: dict[int, list[tuple[str, int]]] = defaultdict(list)
    nodes = {node.name: node for node in model.graph.node}
    for name in last:
        shape = shapes.get(nodes[name].output[0])
        if shape is None or len(shape) != 4 or not shape[1] or not shape[2]:
            return None, f"the output shape of {name} is unknown"
        by_stride[input_size[0] // shape[2]].append((name, shape[1]))
    levels = []
    for stride in sorted(by_stride):
        convs = by_stride[stride]
        boxes = [name for name, channels in convs if channels == BOX_CHANNELS]
        scores = [name for name, channels in convs if channels == classes]
        if len(convs) != 2 or len(boxes) != 1 or len(scores) != 1:
            found = ", ".join(f"{channels}" for _, channels in convs)
            return None, (
                f"at stride {stride} it ends in convolutions of {found} channels, not one of "
                f"{BOX_CHANNELS} (boxes) and one of {classes} (classes)"
            )
        levels.append(Level(stride, boxes[0], scores[0]))
    return YoloV8Head(tuple(levels), classes), ""


def _output_shapes(model: onnx.ModelProto) -> dict[str, tuple[int | None, ...]]:
    import onnx

    from edgecv_onnx import graph

    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.output]
    return {value.name: graph.dims(value) for value in values}


def hn_layers(hn: Mapping[str, Any], nodes: Sequence[str]) -> dict[str, str]:
    """ONNX node -> the name (``net/layer``) of the HN layer the compiler made from it.

    The HN records each layer's ONNX nodes in ``original_names`` (an activation fused into a conv
    lists both); layer keys may or may not carry the network name.
    """
    net = hn.get("name")
    layers = hn.get("layers")
    if not isinstance(net, str) or not isinstance(layers, Mapping):
        raise BackendError(
            "The Dataflow Compiler's translated network has no name or layers",
            "This edgecv-hailo follows the Dataflow Compiler 3.x API; report the compiler version.",
        )
    wanted = set(nodes)
    found: dict[str, str] = {}
    for key, layer in layers.items():
        if not isinstance(layer, Mapping) or layer.get("type") in SKIPPED_LAYER_TYPES:
            continue
        for original in layer.get("original_names") or ():
            if original in wanted:
                found.setdefault(original, str(key) if "/" in str(key) else f"{net}/{key}")
    missing = [name for name in nodes if name not in found]
    if missing:
        raise BackendError(
            f"The Dataflow Compiler's network has no layer made from {missing[0]} (a head convolution)",
            "Report the compiler version; edgecv-hailo finds the head layers by their ONNX node names.",
        )
    return {name: found[name] for name in nodes}


def short_name(layer: str) -> str:
    """``net/conv42`` -> ``conv42``: how model-script commands name a layer."""
    return layer.rsplit("/", 1)[-1]


def nms_config(
    head: YoloV8Head, layers: Mapping[str, str], input_size: tuple[int, int], settings: NmsSettings
) -> dict[str, Any]:
    """The JSON config of ``nms_postprocess(meta_arch=yolov8)``, in the layout of Hailo's model zoo."""
    return {
        "nms_scores_th": settings.scores_th,
        "nms_iou_th": settings.iou_th,
        "image_dims": list(input_size),
        "max_proposals_per_class": settings.max_per_class,
        "classes": head.classes,
        "regression_length": REG_MAX,
        "background_removal": False,
        "bbox_decoders": [
            {
                "name": f"{layers[level.box].rsplit('/', 1)[0]}/bbox_decoder{level.stride}",
                "stride": level.stride,
                "reg_layer": layers[level.box],
                "cls_layer": layers[level.cls],
            }
            for level in head.levels
        ],
    }


def model_script(
    *,
    scale: float,
    calib_count: int,
    class_layers: Sequence[str] = (),
    config: Path | None = None,
    engine: str = "cpu",
) -> str:
    """The model script (``.alls``) for the compile.

    - ``normalization``: the HEF takes uint8 pixels and scales them itself (``scale``: edgecv's
      0..255 -> model-input multiplier; none for a model that takes raw pixels);
    - ``calibset_size``: every calibration image (the compiler's default uses 64);
    - with a head: a sigmoid on each class conv (the ONNX applies it after the cut) and the NMS.
    """
    lines = []
    if scale != 1.0:
        std = round(1.0 / scale, 6)
        lines.append(f"normalization1 = normalization([0.0, 0.0, 0.0], [{std}, {std}, {std}])")
    lines.append(f"model_optimization_config(calibration, calibset_size={calib_count})")
    lines += [f"change_output_activation({short_name(layer)}, sigmoid)" for layer in class_layers]
    if config is not None:
        lines.append(f"nms_postprocess({json.dumps(str(config))}, meta_arch=yolov8, engine={engine})")
    return "\n".join(lines) + "\n"
