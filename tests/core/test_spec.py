"""ModelSpec decisions: metadata parsing, class names, input size for static and dynamic models.

The dynamic model is built in tmp_path from yolov8n_fp32_dequant.onnx with the ``onnx`` package:
symbolic input H/W and output N, the DFL reshapes made size-free, and the baked-in anchor/stride
constants replaced by a subgraph computed from the feature-map shapes, so it really runs at any
multiple of 32 (at 640 it is bit-identical to the static file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgecv
from edgecv.errors import ConfigError, ModelError
from edgecv.names import COCO80
from edgecv.spec import (
    MAX_METADATA_VALUE,
    MetadataWarning,
    imgsz_from_metadata,
    infer_layout,
    load_names,
    names_from_metadata,
    normalize_imgsz,
    parse_metadata_value,
    resolve_input_size,
)

# --- metadata parsing ---------------------------------------------------------------------------


def test_ultralytics_names_dict_string_is_ordered_by_class_id() -> None:
    raw = "{1: 'bicycle', 0: 'person', 10: 'fire hydrant', 2: 'car'}"
    assert names_from_metadata({"names": raw}) == ("person", "bicycle", "car", "fire hydrant")


def test_names_list_string_and_missing_or_unparsable_names() -> None:
    assert names_from_metadata({"names": "['cat', 'dog']"}) == ("cat", "dog")
    assert names_from_metadata({}) is None
    assert names_from_metadata({"names": "just some text"}) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[640, 640]", (640, 640)),
        ("[320, 480]", (320, 480)),
        ("416", (416, 416)),
        ("[1, 2, 3]", None),
        ("big", None),
    ],
)
def test_imgsz_metadata(raw: str, expected) -> None:
    assert imgsz_from_metadata({"imgsz": raw}) == expected


def test_parse_metadata_value_keeps_plain_strings() -> None:
    assert parse_metadata_value("Ultralytics") == "Ultralytics"
    assert parse_metadata_value("32") == 32
    assert parse_metadata_value("False") is False


# Metadata is untrusted: 200,000 characters of nesting made Python's parser raise MemoryError
# (RecursionError on other versions), which surfaced as a catch-all error.
HOSTILE = {
    "unary minus": "-" * 200_000 + "1",
    "lists": "[1," * 66_667,
    "brackets": "[" * 200_000,
    "braces": "{" * 200_000,
}


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_metadata_is_ignored_with_a_warning(value: str) -> None:
    with pytest.warns(MetadataWarning, match=r"model metadata 'names' is 200,00\d characters long.*ignored"):
        assert names_from_metadata({"names": value}) is None
    with pytest.warns(MetadataWarning, match="'imgsz' .*ignored .*--imgsz"):
        assert imgsz_from_metadata({"imgsz": value}) is None
    with pytest.warns(MetadataWarning, match="'imgsz'"):
        assert resolve_input_size((1, 3, None, None), "NCHW", {"imgsz": value}, None) == (640, 640)


def test_deeply_nested_metadata_under_the_size_limit_is_ignored_with_a_warning() -> None:
    for value in ("-" * 60_000 + "1", "1+" * 30_000 + "1"):
        assert len(value) <= MAX_METADATA_VALUE
        with pytest.warns(MetadataWarning, match="'names' is nested too deeply to read; it is ignored"):
            assert parse_metadata_value(value, "names") == value


@pytest.mark.parametrize(
    ("metadata", "warning"),
    [
        ({"names": "{'a': 'person'}"}, "keys are not all distinct class ids"),
        ({"imgsz": "[100000, 640]"}, "not two sizes from 1 to 8192"),
        ({"imgsz": "[0, 640]"}, "not two sizes"),
        ({"imgsz": "[1e400, 640]"}, "not two sizes"),
    ],
)
def test_malformed_names_and_sizes_are_ignored_with_a_warning(metadata: dict, warning: str) -> None:
    with pytest.warns(MetadataWarning, match=warning):
        assert names_from_metadata(metadata) is None and imgsz_from_metadata(metadata) is None


def test_model_with_hostile_names_metadata_loads_with_default_names(tmp_path: Path, models: Path) -> None:
    proto = onnx.load(str(models / "yolo11n_320_fp32_dequant.onnx"))
    for entry in proto.metadata_props:
        if entry.key == "names":
            entry.value = HOSTILE["unary minus"]
    onnx.save(proto, str(tmp_path / "hostile.onnx"))
    with pytest.warns(MetadataWarning, match="'names'.*pass --names"):
        model = edgecv.load(tmp_path / "hostile.onnx")
    assert model.names == COCO80  # 80 classes in the outputs: the COCO names, as for no metadata


def test_real_model_names_come_from_its_metadata(models: Path) -> None:
    model = edgecv.load(models / "yolov8n_fp32_dequant.onnx")
    assert model.names == COCO80
    assert model.spec.metadata["author"] == "Ultralytics"
    assert model.spec.task == "detect"


def test_model_without_names_metadata_gets_coco_names(models: Path) -> None:
    model = edgecv.load(models / "yolox_nano.onnx")
    assert model.names == COCO80


# --- names override -----------------------------------------------------------------------------


def test_names_file_override_relabels_detections(tmp_path: Path, models: Path, bus_path: Path) -> None:
    names_file = tmp_path / "names.txt"
    names_file.write_text("\n".join(f"thing{i}" for i in range(80)) + "\n\n")
    model = edgecv.load(models / "yolo11n_320_fp32_dequant.onnx", names=names_file)
    assert model.names[:2] == ("thing0", "thing1") and len(model.names) == 80
    assert model(bus_path).labels == ["thing0", "thing0", "thing5", "thing0", "thing0"]


def test_coco_labels_file_equals_metadata_names(models: Path) -> None:
    assert load_names(models / "coco80_labels.txt") == COCO80
    model = edgecv.load(models / "yolox_nano.onnx", names=str(models / "coco80_labels.txt"))
    assert model.names == COCO80


def test_names_list_override(models: Path) -> None:
    names = [f"n{i}" for i in range(80)]
    assert edgecv.load(models / "yolo11n_320_fp32_dequant.onnx", names=names).names == tuple(names)


def test_missing_names_file_is_a_config_error(tmp_path: Path, models: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        edgecv.load(models / "yolo11n_320_fp32_dequant.onnx", names=tmp_path / "nope.txt")


# --- layout and size ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "layout"),
    [
        ((1, 3, 640, 640), "NCHW"),
        ((1, 640, 640, 3), "NHWC"),
        ((1, 3, None, None), "NCHW"),
        ((None, None, None, 3), "NHWC"),
        ((1, 1, 64, 64), "NCHW"),
    ],
)
def test_infer_layout(shape, layout) -> None:
    assert infer_layout(shape) == layout


@pytest.mark.parametrize("shape", [(1, 640, 640), (1, 4, 64, 64, 2), (1, 5, 64, 64)])
def test_infer_layout_rejects_non_image_inputs(shape) -> None:
    with pytest.raises(ModelError, match="layout"):
        infer_layout(shape)


@pytest.mark.parametrize(
    ("value", "expected"), [(320, (320, 320)), ([416], (416, 416)), ((320, 480), (320, 480))]
)
def test_normalize_imgsz(value, expected) -> None:
    assert normalize_imgsz(value) == expected


@pytest.mark.parametrize("value", [0, 100, (320, 500), -32])
def test_imgsz_must_be_a_positive_multiple_of_32(value) -> None:
    with pytest.raises(ConfigError, match="multiple of 32"):
        normalize_imgsz(value)


def test_static_input_fixes_the_size() -> None:
    assert resolve_input_size((1, 3, 320, 320), "NCHW", {"imgsz": "[640, 640]"}, None) == (320, 320)
    assert resolve_input_size((1, 320, 320, 3), "NHWC", {}, 320) == (320, 320)


def test_imgsz_conflicting_with_static_input_is_a_config_error(models: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        edgecv.load(models / "yolov8n_fp32_dequant.onnx", imgsz=320)
    text = str(caught.value)
    assert "fixed at 640x640" in text and "320x320" in text
    assert "--imgsz" in text


def test_imgsz_equal_to_static_input_is_accepted(models: Path) -> None:
    assert edgecv.load(models / "yolo11n_320_fp32_dequant.onnx", imgsz=320).spec.imgsz == (320, 320)


def test_dynamic_size_priority_option_then_metadata_then_640() -> None:
    dynamic = (1, 3, None, None)
    assert resolve_input_size(dynamic, "NCHW", {"imgsz": "[320, 320]"}, 480) == (480, 480)
    assert resolve_input_size(dynamic, "NCHW", {"imgsz": "[320, 320]"}, None) == (320, 320)
    assert resolve_input_size(dynamic, "NCHW", {}, None) == (640, 640)


# --- a really dynamic ONNX model ----------------------------------------------------------------


def make_dynamic_yolov8(source: Path, target: Path, imgsz_metadata: str | None = "keep") -> Path:
    """Copy of an Ultralytics static YOLOv8 export that runs at any input size.

    ``imgsz_metadata``: "keep", None (drop the key), or a replacement value.
    """
    model = onnx.load(str(source))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}

    def constant(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(inits[name]) if name in inits else None

    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    graph.output[0].type.tensor_type.shape.dim[2].dim_param = "anchors"
    del graph.value_info[:]

    anchor_users, stride_user, dfl_reshape, baked = [], None, None, set()
    for node in graph.node:
        arrays = [constant(i) for i in node.input]
        if node.op_type == "Reshape" and arrays[1] is not None and arrays[1][-1] > 1000:  # [..., 8400]
            fixed = arrays[1].copy()
            fixed[-1] = -1
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(fixed, node.input[1]))
            if len(fixed) == 4:
                dfl_reshape = node
        for slot, arr in enumerate(arrays):
            if arr is not None and arr.shape[:2] == (1, 2) and arr.ndim == 3 and arr.shape[2] > 1000:
                anchor_users.append((node, slot))
                baked.add(node.input[slot])
            if node.op_type == "Mul" and arr is not None and arr.ndim == 2 and arr.shape[1] > 1000:
                stride_user = (node, slot)
                baked.add(node.input[slot])
    assert dfl_reshape is not None and len(anchor_users) == 2 and stride_user is not None
    producers = {out: n for n in graph.node for out in n.output}
    features = [producers[r].input[0] for r in producers[dfl_reshape.input[0]].input]  # [1, 64, H, W]

    new_nodes, new_inits = [], []

    def const(name: str, value, dtype) -> str:
        new_inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), f"dyn/{name}"))
        return f"dyn/{name}"

    def op(kind: str, inputs: list[str], name: str, **attrs) -> str:
        new_nodes.append(helper.make_node(kind, inputs, [f"dyn/{name}"], name=f"dyn/{name}", **attrs))
        return f"dyn/{name}"

    zero, one = const("zero", 0, np.int64), const("one", 1, np.int64)
    half, zero_f = const("half", 0.5, np.float32), const("zero_f", 0.0, np.float32)
    i2, i3 = const("i2", 2, np.int64), const("i3", 3, np.int64)
    starts, ends = const("s2", [2], np.int64), const("s4", [4], np.int64)
    col, row, flat = (
        const("col", [-1, 1], np.int64),
        const("row", [1, -1], np.int64),
        const("flat", [1, 1, -1], np.int64),
    )
    anchors, strides = [], []
    for level, (feature, stride) in enumerate(zip(features, (8, 16, 32), strict=True)):
        p = f"l{level}"
        shape = op("Shape", [feature], f"{p}/shape")
        hw = op("Slice", [shape, starts, ends], f"{p}/hw")
        height = op("Gather", [shape, i2], f"{p}/h", axis=0)
        width = op("Gather", [shape, i3], f"{p}/w", axis=0)
        ry = op("Range", [zero, height, one], f"{p}/ry")
        rx = op("Range", [zero, width, one], f"{p}/rx")
        ys = op("Add", [op("Cast", [ry], f"{p}/fy", to=TensorProto.FLOAT), half], f"{p}/cy")  # cell centres
        xs = op("Add", [op("Cast", [rx], f"{p}/fx", to=TensorProto.FLOAT), half], f"{p}/cx")
        gy = op("Expand", [op("Reshape", [ys, col], f"{p}/ycol"), hw], f"{p}/gy")
        gx = op("Expand", [op("Reshape", [xs, row], f"{p}/xrow"), hw], f"{p}/gx")
        gxf, gyf = op("Reshape", [gx, flat], f"{p}/gxf"), op("Reshape", [gy, flat], f"{p}/gyf")
        anchors.append(op("Concat", [gxf, gyf], f"{p}/anchors", axis=1))  # x first, row-major
        zeros = op("Mul", [op("Reshape", [gx, row], f"{p}/gxr"), zero_f], f"{p}/zeros")
        strides.append(op("Add", [zeros, const(f"{p}/stride", float(stride), np.float32)], f"{p}/strides"))
    all_anchors = op("Concat", anchors, "anchors", axis=2)
    all_strides = op("Concat", strides, "strides", axis=1)
    for user, slot in anchor_users:
        user.input[slot] = all_anchors
    stride_user[0].input[stride_user[1]] = all_strides

    nodes = list(graph.node)
    first_user = min(nodes.index(u) for u, _ in anchor_users)
    del graph.node[:]
    graph.node.extend(nodes[:first_user] + new_nodes + nodes[first_user:])
    kept = [t for t in graph.initializer if t.name not in baked]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)

    if imgsz_metadata != "keep":
        props = [p for p in model.metadata_props if p.key != "imgsz"]
        del model.metadata_props[:]
        model.metadata_props.extend(props)
        if imgsz_metadata is not None:
            model.metadata_props.add(key="imgsz", value=imgsz_metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return target


@pytest.fixture(scope="module")
def dynamic_dir(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dynamic")
    source = models / "yolov8n_fp32_dequant.onnx"
    make_dynamic_yolov8(source, folder / "dyn.onnx")
    make_dynamic_yolov8(source, folder / "dyn_meta320.onnx", imgsz_metadata="[320, 320]")
    make_dynamic_yolov8(source, folder / "dyn_nometa.onnx", imgsz_metadata=None)
    return folder


@pytest.fixture(scope="module")
def static_640(models: Path, bus_path: Path):
    return edgecv.load(models / "yolov8n_fp32_dequant.onnx")(bus_path)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def assert_finds_the_bus_scene(detections, reference) -> None:
    """Bus and the three clear people of the 640 run are each found again (same class, IoU >= 0.75)."""
    for box, class_id, score in zip(reference.boxes, reference.class_ids, reference.scores, strict=True):
        if score < 0.5:
            continue
        same_class = detections.boxes[detections.class_ids == class_id]
        assert same_class.size, f"class {class_id} lost"
        assert max(iou(box, other) for other in same_class) >= 0.75, (box, same_class)


def test_dynamic_model_declares_symbolic_dims(dynamic_dir: Path) -> None:
    model = edgecv.load(dynamic_dir / "dyn.onnx")
    assert model.spec.input.shape == (1, 3, None, None)
    assert model.spec.outputs[0].shape == (1, 84, None)
    assert model.spec.arch == "yolov8" and model.names == COCO80


def test_dynamic_model_at_640_equals_the_static_model(dynamic_dir: Path, bus_path: Path, static_640) -> None:
    model = edgecv.load(dynamic_dir / "dyn.onnx", imgsz=640)
    assert model.spec.imgsz == (640, 640)
    detections = model(bus_path)
    assert detections.labels == static_640.labels
    np.testing.assert_allclose(detections.boxes, static_640.boxes, atol=1e-3)
    np.testing.assert_allclose(detections.scores, static_640.scores, atol=1e-5)


@pytest.mark.parametrize("imgsz", [320, (320, 480), (480, 320)])
def test_dynamic_model_runs_at_the_requested_size(
    dynamic_dir: Path, bus_path: Path, static_640, imgsz
) -> None:
    model = edgecv.load(dynamic_dir / "dyn.onnx", imgsz=imgsz)
    expected = normalize_imgsz(imgsz)
    assert model.spec.imgsz == expected
    tensor, letterbox = model.preprocess(np.zeros((1080, 810, 3), np.uint8))
    assert tensor.shape == (1, 3, *expected)
    assert letterbox.input_shape == expected
    detections = model(bus_path)
    assert_finds_the_bus_scene(detections, static_640)
    assert detections.boxes[:, 2].max() <= 810 and detections.boxes[:, 3].max() <= 1080


def test_dynamic_model_size_from_metadata(dynamic_dir: Path, bus_path: Path, static_640) -> None:
    assert edgecv.load(dynamic_dir / "dyn.onnx").spec.imgsz == (640, 640)  # metadata imgsz [640, 640]
    model = edgecv.load(dynamic_dir / "dyn_meta320.onnx")
    assert model.spec.imgsz == (320, 320)
    assert_finds_the_bus_scene(model(bus_path), static_640)


def test_dynamic_model_without_size_metadata_defaults_to_640(
    dynamic_dir: Path, bus_path: Path, static_640
) -> None:
    model = edgecv.load(dynamic_dir / "dyn_nometa.onnx")
    assert "imgsz" not in model.spec.metadata
    assert model.spec.imgsz == (640, 640)
    np.testing.assert_allclose(model(bus_path).boxes, static_640.boxes, atol=1e-3)
    assert edgecv.load(dynamic_dir / "dyn_nometa.onnx", imgsz=320).spec.imgsz == (320, 320)


def test_dynamic_model_rejects_bad_imgsz(dynamic_dir: Path) -> None:
    with pytest.raises(ConfigError, match="multiple of 32"):
        edgecv.load(dynamic_dir / "dyn.onnx", imgsz=300)
