"""`edgecv export --to onnx --option uint8_input=true`: the graph takes the decoded BGR frame as uint8
NHWC and does layout, cast, channel order and scaling itself, so preprocessing is a resize.

Parity is checked against the float model on real images (same detections within 1 px), and the
prefix on small graphs for both of its forms (folded into the stem convolution, or Gather + Mul).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import edgecv
from edgecv.images import read_image
from edgecv.preprocess import letterbox
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv_onnx import graph


def assert_same_detections(a: edgecv.Detections, b: edgecv.Detections) -> None:
    assert a.labels == b.labels and len(a) > 0
    np.testing.assert_allclose(a.boxes, b.boxes, rtol=0, atol=1.0)
    np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-3)


def test_uint8_input_export_of_yolo11n(tmp_path: Path, assets: Path, models: Path) -> None:
    source = models / "yolo11n_320_fp32_dequant.onnx"
    output = tmp_path / "yolo11n_u8.onnx"
    result = run_edgecv(
        "export", "-m", source, "--to", "onnx", "--option", "uint8_input=true", "-o", output, assets=assets
    )
    assert result.returncode == 0, result.stderr
    saved = onnx.load(str(output))
    image = graph.graph_inputs(saved)[0]
    assert image.type.tensor_type.elem_type == TensorProto.UINT8 and graph.dims(image) == (1, 320, 320, 3)
    # YOLO11's stem is a plain Conv: channel order and 1/255 go into its weights, no Gather/Mul pass.
    assert [node.op_type for node in saved.graph.node[:3]] == ["Transpose", "Cast", "Conv"]
    metadata = {p.key: p.value for p in saved.metadata_props}
    recipe = json.loads(metadata["edgecv_input"])
    assert (recipe["dtype"], recipe["layout"], recipe["color"], recipe["scale"]) == (
        "uint8",
        "NHWC",
        "BGR",
        1.0,
    )
    assert "folded" in metadata["edgecv_uint8_input"]
    model = edgecv.load(output)
    spec = model.spec.input
    assert (spec.dtype, spec.layout, spec.color, spec.size) == ("uint8", "NHWC", "BGR", (320, 320))
    reference = edgecv.load(source)
    for name in ("bus.jpg", "zidane.jpg"):
        assert_same_detections(model(assets / "images" / name), reference(assets / "images" / name))
    # Preprocessing is the letterbox alone: the tensor is the letterboxed BGR frame.
    frame = read_image(assets / "images" / "bus.jpg")
    tensor, _ = model.preprocess(frame)
    canvas, _ = letterbox(frame, (320, 320))
    np.testing.assert_array_equal(tensor[0], canvas)


def test_uint8_input_export_of_yolox_keeps_its_bgr_topleft_recipe(
    tmp_path: Path, assets: Path, models: Path
) -> None:
    from edgecv_onnx.export import export

    source = models / "yolox_nano.onnx"
    output = export(source, tmp_path / "yolox_u8.onnx", {"uint8_input": True})
    saved = onnx.load(str(output))
    assert [node.op_type for node in saved.graph.node[:2]] == ["Transpose", "Cast"]  # BGR, scale 1: no more
    model = edgecv.load(output)
    assert (model.spec.input.color, model.spec.input.letterbox) == ("BGR", "topleft")
    assert_same_detections(
        model(assets / "images" / "bus.jpg"), edgecv.load(source)(assets / "images" / "bus.jpg")
    )


def stem_model(shared_weight: bool) -> onnx.ModelProto:
    """images [1,3,8,8] -> Conv (3 -> 4 channels) -> out; with ``shared_weight`` the weight also
    feeds a second node, so it cannot be folded (the Gather + Mul form is used instead)."""
    rng = np.random.default_rng(0)
    weight = onnx.numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["images", "w"], ["out"], pads=[1, 1, 1, 1])]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 8, 8])]
    if shared_weight:
        nodes.append(helper.make_node("Identity", ["w"], ["w_copy"]))
        outputs.append(helper.make_tensor_value_info("w_copy", TensorProto.FLOAT, [4, 3, 3, 3]))
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])
    built = helper.make_graph(nodes, "stem", [images], outputs, [weight])
    return helper.make_model(built, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, tensor: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["out"], {"images": tensor})[0])


@pytest.mark.parametrize("shared_weight", [False, True], ids=["folded", "gather-mul"])
@pytest.mark.parametrize("color", ["RGB", "BGR"])
def test_prefix_equals_the_float_recipe(shared_weight: bool, color: str) -> None:
    bgr = np.random.default_rng(1).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    pixels = bgr[..., ::-1] if color == "RGB" else bgr
    expected = run(
        stem_model(shared_weight), np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)) / np.float32(255)
    )
    model = stem_model(shared_weight)
    steps = graph.take_uint8_input(model, "NCHW", color, 1 / 255)
    onnx.checker.check_model(model)
    ops = [node.op_type for node in model.graph.node]
    if shared_weight:
        assert "Mul" in ops and ("Gather" in ops) == (color == "RGB") and "folded" not in steps
    else:
        assert ops == ["Transpose", "Cast", "Conv"] and "folded" in steps
    np.testing.assert_allclose(run(model, bgr), expected, rtol=1e-5, atol=1e-4)


def test_uint8_input_option_must_be_a_boolean(tmp_path: Path, assets: Path, models: Path) -> None:
    result = run_edgecv(
        "export", "-m", models / "yolo11n_320_fp32_dequant.onnx", "--to", "onnx",
        "--option", "uint8_input=yes please", "-o", tmp_path / "o.onnx", assets=assets,
    )  # fmt: skip
    assert_one_line_error(result, "uint8_input must be true or false", "uint8_input=true")
    assert not (tmp_path / "o.onnx").exists()


def test_a_uint8_input_model_is_not_converted_again(tmp_path: Path, assets: Path, models: Path) -> None:
    first = tmp_path / "u8.onnx"
    argv = ("export", "-m", models / "yolo11n_320_fp32_dequant.onnx", "--to", "onnx")
    assert run_edgecv(*argv, "--option", "uint8_input=true", "-o", first, assets=assets).returncode == 0
    again = run_edgecv(
        "export", "-m", first, "--to", "onnx", "--option", "uint8_input=true", "-o", tmp_path / "again.onnx",
        assets=assets,
    )  # fmt: skip
    assert_one_line_error(again, "u8.onnx takes uint8 input already", "float32 model")
