"""Just enough of the ONNX file format to describe a model, without depending on ``onnx``.

OpenCV's ``Net`` does not expose the graph's input shape, output shapes or metadata, and edgecv
needs all three (``metadata_props`` is where Ultralytics stores ``names`` and ``imgsz``). An
``.onnx`` file is a single protobuf ``ModelProto`` whose wire format is easy to walk: every
field is a varint key (``field_number << 3 | wire_type``) followed by its value, and the large
parts (weights) are length-prefixed, so skipping them costs nothing. Field numbers below are
from ``onnx/onnx.proto``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs

# ModelProto, GraphProto, ValueInfoProto, TypeProto(.Tensor), TensorShapeProto(.Dimension) fields.
_MODEL_GRAPH, _MODEL_METADATA = 7, 14
_GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 5, 11, 12
_TENSOR_NAME = 8  # TensorProto.name, to tell weights listed as graph inputs (IR < 4) apart
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR = 1
_TENSOR_ELEM_TYPE, _TENSOR_SHAPE = 1, 2
_SHAPE_DIM = 1
_DIM_VALUE = 1
_ENTRY_KEY, _ENTRY_VALUE = 1, 2

# TensorProto.DataType -> numpy dtype name, for the types a detector's I/O uses.
_ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 10: "float16", 11: "float64"}


class OnnxFormatError(ValueError):
    """The bytes are not a well-formed ONNX protobuf (truncated or not ONNX at all)."""


@attrs.frozen
class ValueInfo:
    """A graph input or output: ``None`` in ``shape`` marks a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


@attrs.frozen
class OnnxHeader:
    inputs: tuple[ValueInfo, ...]
    """Real inputs only: weights that old exporters also listed as inputs are left out."""
    outputs: tuple[ValueInfo, ...]
    metadata: dict[str, str]


def read_header(path: Path) -> OnnxHeader:
    """The inputs, outputs and metadata of the ONNX model at ``path``."""
    model = memoryview(path.read_bytes())
    metadata: dict[str, str] = {}
    inputs: list[ValueInfo] = []
    outputs: list[ValueInfo] = []
    weights: set[str] = set()
    for number, value in _fields(model):
        if number == _MODEL_METADATA:
            entry = dict(_fields(_message(value)))
            metadata[_text(entry.get(_ENTRY_KEY))] = _text(entry.get(_ENTRY_VALUE))
        elif number == _MODEL_GRAPH:
            for graph_number, item in _fields(_message(value)):
                if graph_number == _GRAPH_INPUT:
                    inputs.append(_value_info(_message(item)))
                elif graph_number == _GRAPH_OUTPUT:
                    outputs.append(_value_info(_message(item)))
                elif graph_number == _GRAPH_INITIALIZER:
                    weights.add(_text(dict(_fields(_message(item))).get(_TENSOR_NAME)))
    if not outputs:
        raise OnnxFormatError("the file has no graph outputs")
    return OnnxHeader(tuple(i for i in inputs if i.name not in weights), tuple(outputs), metadata)


def _value_info(data: memoryview) -> ValueInfo:
    fields = dict(_fields(data))
    tensor = dict(_fields(_message(dict(_fields(_message(fields.get(_VALUE_TYPE)))).get(_TYPE_TENSOR))))
    dims: list[int | None] = []
    for number, dim in _fields(_message(tensor.get(_TENSOR_SHAPE))):
        if number == _SHAPE_DIM:
            value = dict(_fields(_message(dim))).get(_DIM_VALUE)
            # A named (dim_param) or missing dimension is dynamic.
            dims.append(value if isinstance(value, int) and value > 0 else None)
    elem_type = tensor.get(_TENSOR_ELEM_TYPE)
    dtype = _ELEM_TYPES.get(elem_type, f"onnx-type-{elem_type}") if isinstance(elem_type, int) else "float32"
    return ValueInfo(_text(fields.get(_VALUE_NAME)), tuple(dims), dtype)


def _fields(data: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """``(field_number, value)`` for each field: varints as ``int``, everything else as bytes."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
            yield number, value
            continue
        if wire_type == 2:
            size, pos = _varint(data, pos)
        elif wire_type in (1, 5):  # fixed64, fixed32
            size = 8 if wire_type == 1 else 4
        else:
            raise OnnxFormatError(f"unexpected protobuf wire type {wire_type} at byte {pos}")
        if pos + size > end:
            raise OnnxFormatError(f"a field of {size} bytes runs past the end of its message at byte {pos}")
        yield number, data[pos : pos + size]
        pos += size


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise OnnxFormatError(f"truncated or malformed varint at byte {pos}")


def _message(value: int | memoryview | None) -> memoryview:
    """A nested message's bytes; an absent field reads as an empty message, as in protobuf."""
    if value is None:
        return memoryview(b"")
    if isinstance(value, int):
        raise OnnxFormatError("expected a nested message, found a number")
    return value


def _text(value: int | memoryview | None) -> str:
    try:
        return bytes(_message(value)).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OnnxFormatError(f"a name is not valid UTF-8 ({exc.reason})") from exc
