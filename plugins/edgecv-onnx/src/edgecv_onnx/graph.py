"""Graph surgery for export: static input shapes, node names, and the detection head's float part.

A YOLO graph ends with post-processing (reshape, DFL softmax, sigmoid, box decode, one concat of
pixel coordinates with 0..1 scores) after the last convolutions that still work on an image grid.
Quantizing that part with one scale per tensor collapses the scores, so the INT8 export keeps it in
float. It is found from the structure, never from node names: a *grid conv* is a ``Conv`` whose
output is a feature map ``[N, C, H/s, W/s]`` of the input (one integer stride ``s`` for both axes);
the float head is every node downstream of a grid conv that feeds no grid conv itself. YOLOv8's
DFL ``Conv`` works on ``[1, 16, 4, 8400]`` (not a grid), so it belongs to the head, as it should.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper

from edgecv.backend import ModelError, one_line

QUANTIZATION_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
INTEGER_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul"}
)


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Real inputs (old IRs also list initializers as inputs)."""
    initializers = {t.name for t in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def dims(value: onnx.ValueInfoProto) -> tuple[int | None, ...]:
    """The shape of a tensor value; ``None`` for a symbolic or unknown dimension."""
    shape = value.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in shape.dim)


def fix_input_size(model: onnx.ModelProto, size: tuple[int, int]) -> bool:
    """Give symbolic batch/height/width dimensions of an NCHW input fixed values; True when changed."""
    changed = False
    for value in graph_inputs(model):
        shape = value.type.tensor_type.shape.dim
        if len(shape) != 4:
            continue
        for index, fixed in ((0, 1), (2, size[0]), (3, size[1])):
            dim = shape[index]
            if not (dim.HasField("dim_value") and dim.dim_value > 0):
                dim.Clear()
                dim.dim_value = fixed
                changed = True
    return changed


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name (the quantizer selects nodes by name)."""
    taken = {node.name for node in model.graph.node if node.name}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            candidate = f"{node.op_type}_{index}"
            while candidate in taken:
                candidate += "_"
            node.name = candidate
            taken.add(candidate)


def opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def upgrade_opset(model: onnx.ModelProto, minimum: int) -> onnx.ModelProto:
    """``model`` converted to opset ``minimum`` when it is older (per-channel QDQ needs 13)."""
    current = opset(model)
    if current >= minimum:
        return model
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, minimum)
    except Exception as exc:  # the converter raises bare RuntimeErrors/ValueErrors per adapter
        raise ModelError(
            f"Cannot convert the model from opset {current} to {minimum}: {one_line(exc)}",
            f"Export it from its framework with opset {minimum} or newer.",
        ) from exc


def drop_unused_domains(model: onnx.ModelProto) -> None:
    """Forget operator-set imports no node uses (onnxruntime's optimizer declares every domain it knows)."""
    used = {node.domain for node in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def is_quantized(model: onnx.ModelProto) -> bool:
    return any(node.op_type in INTEGER_OPS for node in model.graph.node)


def _is_grid(shape: Sequence[int | None] | None, input_size: tuple[int, int]) -> bool:
    if shape is None or len(shape) != 4 or shape[2] is None or shape[3] is None:
        return False
    height, width = input_size
    grid_h, grid_w = shape[2], shape[3]
    if height % grid_h or width % grid_w:
        return False
    stride = height // grid_h
    return stride == width // grid_w and stride & (stride - 1) == 0


def _walk(starts: Iterable[int], edges: dict[int, list[int]]) -> set[int]:
    seen: set[int] = set()
    queue = deque(starts)
    while queue:
        index = queue.popleft()
        for nxt in edges[index]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def float_head(model: onnx.ModelProto, input_size: tuple[int, int]) -> tuple[list[str], list[str]]:
    """Names of ``(head_nodes, last_grid_convs)``: the post-processing kept in float, and the convs
    that feed it. Both are empty when the graph has no grid conv (not a conv detector)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    shapes = {value.name: dims(value) for value in values}
    nodes = list(model.graph.node)
    producer = {output: i for i, node in enumerate(nodes) for output in node.output if output}
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers[name].append(i)
    downstream = {i: [j for out in node.output for j in consumers[out]] for i, node in enumerate(nodes)}
    upstream = {i: [producer[x] for x in node.input if x in producer] for i, node in enumerate(nodes)}

    grid_convs = [
        i
        for i, node in enumerate(nodes)
        if node.op_type == "Conv" and _is_grid(shapes.get(node.output[0]), input_size)
    ]
    feeds_grid = _walk(grid_convs, upstream) | set(grid_convs)
    head = _walk(grid_convs, downstream) - feeds_grid
    feeding_others = _walk(grid_convs, upstream)
    last_convs = [i for i in grid_convs if i not in feeding_others]
    return [nodes[i].name for i in sorted(head)], [nodes[i].name for i in last_convs]


def count_ops(model: onnx.ModelProto, ops: Iterable[str]) -> int:
    wanted = set(ops)
    return sum(node.op_type in wanted for node in model.graph.node)


def take_uint8_input(model: onnx.ModelProto, layout: str, color: str, scale: float) -> str:
    """Make the image input uint8 NHWC in BGR order (a decoded OpenCV frame as it is) and do the
    rest inside the graph, ahead of the original input: layout, cast, channel order and scaling.

    The transpose works on bytes (a quarter of the data). The channel order and the scale are
    folded into the weights of the convolutions that read the input when they are plain constants
    (a YOLO stem: exact for the order, float rounding for the scale), else done by a ``Gather``
    on the channel axis and a ``Mul``. Returns what the prefix does, for the model's metadata.
    """
    value = graph_inputs(model)[0]
    shape = dims(value)
    if len(shape) != 4:
        raise ModelError(
            f"The input {value.name!r} has shape {list(shape)}, not an image batch",
            "Export a detector with one [1, 3, H, W] image input.",
        )
    height, width = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    if height is None or width is None:
        raise ModelError(f"The input {value.name!r} has no fixed size", "Pass --imgsz.")
    names = _Names(model)
    float_name = names.fresh(f"{value.name}_float")
    for node in model.graph.node:  # the original graph now reads the prefix's output
        for index, name in enumerate(node.input):
            if name == value.name:
                node.input[index] = float_name
    swap, axis = color == "RGB", 1 if layout == "NCHW" else 3
    folded = _fold_into_convs(model, float_name, swap, scale) if layout == "NCHW" else False
    steps: list[str] = []
    nodes: list[onnx.NodeProto] = []

    def add(op: str, inputs: list[str], output: str, step: str, **attributes: Any) -> None:
        nodes.append(
            onnx.helper.make_node(op, inputs, [output], names.fresh(f"edgecv_input_{op}"), **attributes)
        )
        steps.append(step)

    current = value.name
    if layout == "NCHW":
        add("Transpose", [current], names.fresh(f"{value.name}_nchw"), "NHWC->NCHW", perm=[0, 3, 1, 2])
        current = nodes[-1].output[0]
    if swap and not folded:
        order = names.fresh(f"{value.name}_rgb_order")
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([2, 1, 0], np.int64), order))
        add("Gather", [current, order], names.fresh(f"{value.name}_rgb"), "BGR->RGB", axis=axis)
        current = nodes[-1].output[0]
    scaled = scale != 1.0 and not folded
    add(
        "Cast",
        [current],
        names.fresh(f"{value.name}_cast") if scaled else float_name,
        "uint8->float32",
        to=onnx.TensorProto.FLOAT,
    )
    if scaled:
        factor = names.fresh(f"{value.name}_scale")
        model.graph.initializer.append(
            onnx.helper.make_tensor(factor, onnx.TensorProto.FLOAT, [], [float(scale)])
        )
        add("Mul", [nodes[-1].output[0], factor], float_name, f"x{scale:.6g}")
    if folded:
        steps.append(f"BGR->RGB and x{scale:.6g} folded into the first convolution's weights")
    for node in reversed(nodes):
        model.graph.node.insert(0, node)
    tensor_type = value.type.tensor_type
    tensor_type.elem_type = onnx.TensorProto.UINT8
    del tensor_type.shape.dim[:]
    for size in (1, height, width, 3):
        tensor_type.shape.dim.add().dim_value = size
    return ", ".join(steps)


class _Names:
    """Fresh tensor and node names for nodes added to ``model``."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.taken = {name for node in model.graph.node for name in (*node.output, node.name)}
        self.taken |= {t.name for t in model.graph.initializer} | {v.name for v in model.graph.input}

    def fresh(self, stem: str) -> str:
        name = stem
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name


def _fold_into_convs(model: onnx.ModelProto, image: str, swap: bool, scale: float) -> bool:
    """Reverse the input channels and multiply by ``scale`` inside the weights of the convolutions
    that read ``image``; ``False`` (nothing changed) unless every reader is a plain ``Conv``
    (group 1, three input channels) whose weight is a float32 constant it alone uses."""
    readers = [node for node in model.graph.node if image in node.input]
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    uses: dict[str, int] = defaultdict(int)
    for node in model.graph.node:
        for name in node.input:
            uses[name] += 1
    weights: list[onnx.TensorProto] = []
    for node in readers:
        weight = initializers.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        if (
            weight is None
            or node.input[0] != image
            or groups != 1
            or uses[weight.name] != 1
            or weight.data_type != onnx.TensorProto.FLOAT
            or len(weight.dims) != 4
            or weight.dims[1] != 3
        ):
            return False
        weights.append(weight)
    if not weights:
        return False
    for weight in weights:
        array = onnx.numpy_helper.to_array(weight)
        if swap:
            array = array[:, ::-1]
        folded = (array * np.float32(scale)).astype(np.float32)
        weight.CopyFrom(onnx.numpy_helper.from_array(np.ascontiguousarray(folded), weight.name))
    return True
