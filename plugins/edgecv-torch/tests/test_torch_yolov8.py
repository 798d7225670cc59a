"""YOLOv8 rebuilt from the shipped ONNX file's weights: the same outputs as ONNX Runtime, and
checkpoints that load without running code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgecv.backend import ModelError
from edgecv.images import read_image
from edgecv.testing.reference import reference_model
from edgecv_torch import checkpoint
from edgecv_torch.yolov8 import YOLOv8


def test_same_raw_outputs_as_onnxruntime_on_bus(yolov8: YOLOv8, bus_path: Path) -> None:
    import edgecv

    onnx = edgecv.load(reference_model(), backend="onnx")
    tensor, _ = onnx.preprocess(read_image(bus_path))
    session = ort.InferenceSession(str(reference_model()))
    (expected,) = session.run(None, {session.get_inputs()[0].name: tensor})
    with torch.inference_mode():
        got = yolov8(torch.from_numpy(tensor)).numpy()
    assert got.shape == expected.shape == (1, 84, 8400)
    np.testing.assert_allclose(got, expected, atol=2e-3, rtol=1e-4)  # float rounding; boxes are in pixels
    assert yolov8.names == onnx.names and yolov8.imgsz == (640, 640) and yolov8.strides == (8, 16, 32)


def test_head_outputs_are_the_undecoded_maps(yolov8: YOLOv8) -> None:
    with torch.inference_mode():
        maps = yolov8.head_outputs(torch.zeros(1, 3, 320, 320))
    assert [tuple(m.shape) for m in maps] == [(1, 144, 40, 40), (1, 144, 20, 20), (1, 144, 10, 10)]


def test_checkpoint_round_trip_and_refusals(yolov8: YOLOv8, tmp_path: Path) -> None:
    path = checkpoint.save(yolov8, tmp_path / "y.pt", {"note": "test"})
    again = checkpoint.load(path)
    x = torch.rand(1, 3, 160, 160)
    with torch.inference_mode():
        assert torch.equal(yolov8(x), again(x))
    assert again.metadata["note"] == "test" and again.names == yolov8.names
    torch.save(yolov8, tmp_path / "pickled.pt")  # a whole pickled module: would run code on load
    with pytest.raises(ModelError, match="pickled Python objects"):
        checkpoint.load(tmp_path / "pickled.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not an edgecv-torch checkpoint"):
        checkpoint.load(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("not torch")
    with pytest.raises(ModelError, match="not a readable torch checkpoint"):
        checkpoint.load(tmp_path / "text.pt")


def test_another_architecture_is_a_model_error(models: Path) -> None:
    with pytest.raises(ModelError, match="does not hold YOLOv8 detection weights"):
        YOLOv8.from_onnx(models / "yolox_nano.onnx")
