"""Ultralytics ``.pt`` files: converted once, on request, by ``edgecv compress from-ultralytics``
(Ultralytics installed) into a weights-only checkpoint that gives the ONNX model's detections;
without Ultralytics, or where a command meets such a pickle, one error line says what to do."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv.testing.reference import reference_model
from edgecv_torch import checkpoint
from edgecv_torch.yolov8 import YOLOv8

ULTRALYTICS = importlib.util.find_spec("ultralytics") is not None


def ultralytics_checkpoint(path: Path) -> Path:
    """An Ultralytics yolov8n checkpoint holding the reference ONNX model's weights: Ultralytics'
    own ``DetectionModel`` (BatchNorm unfused), each BatchNorm set to add the ONNX bias."""
    import onnx
    from onnx import numpy_helper
    from ultralytics import YOLO
    from ultralytics.nn.modules import Conv

    graph = onnx.load(str(reference_model())).graph
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    model = YOLO("yolov8n.yaml").model
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, Conv):
                module.conv.weight.copy_(weights[f"{name}.conv.weight"])
                module.bn.weight.fill_(1.0)
                module.bn.bias.copy_(weights[f"{name}.conv.bias"])
                module.bn.running_mean.zero_()
                module.bn.running_var.fill_(1.0 - module.bn.eps)
            elif isinstance(module, nn.Conv2d) and module.bias is not None:  # the head's last convolutions
                module.weight.copy_(weights[f"{name}.weight"])
                module.bias.copy_(weights[f"{name}.bias"])
    model.names = dict(enumerate(YOLOv8.from_onnx(reference_model()).names))
    torch.save({"model": model, "train_args": {"imgsz": 640, "task": "detect"}}, path)
    return path


@pytest.mark.skipif(not ULTRALYTICS, reason="Ultralytics (AGPL-3.0, optional) is not installed")
def test_an_ultralytics_checkpoint_converts_to_the_onnx_models_detections(tmp_path: Path) -> None:
    from edgecv_torch.ultralytics_pt import from_ultralytics

    source = ultralytics_checkpoint(tmp_path / "yolov8n.pt")
    converted = from_ultralytics(source)
    reference = YOLOv8.from_onnx(reference_model())
    assert converted.names == reference.names and converted.imgsz == (640, 640)
    x = torch.rand(1, 3, 640, 640, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(converted(x), reference(x), atol=2e-3, rtol=1e-4)

    result = run_edgecv("compress", "from-ultralytics", "-m", source, "-o", tmp_path / "edgecv.pt")
    assert result.returncode == 0, result.stderr
    assert "80 classes" in result.stdout
    with torch.no_grad():
        torch.testing.assert_close(checkpoint.load(tmp_path / "edgecv.pt")(x), converted(x))


@pytest.mark.skipif(ULTRALYTICS, reason="checks the message shown where Ultralytics is not installed")
def test_without_ultralytics_the_conversion_says_how_to_get_it(tmp_path: Path) -> None:
    source = tmp_path / "yolov8n.pt"
    torch.save({"model": nn.Linear(1, 1)}, source)
    result = run_edgecv("compress", "from-ultralytics", "-m", source, "-o", tmp_path / "out.pt")
    assert_one_line_error(result, "needs the ultralytics package", "pip install")
    assert not (tmp_path / "out.pt").exists()


def test_a_command_given_an_ultralytics_pickle_points_to_the_conversion(tmp_path: Path) -> None:
    source = tmp_path / "yolov8n.pt"
    torch.save({"model": nn.Linear(1, 1)}, source)  # a pickled module, as Ultralytics saves
    result = run_edgecv("compress", "export", "-m", source, "-o", tmp_path / "out.onnx")
    line = assert_one_line_error(result, "pickled Python objects", "edgecv compress from-ultralytics -m")
    assert str(source) in line
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.skipif(not ULTRALYTICS, reason="Ultralytics (AGPL-3.0, optional) is not installed")
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("yolo11n.yaml", "does not hold YOLOv8 detection weights"),
        ("yolov8n-seg.yaml", "is an Ultralytics segment model"),
    ],
)
def test_other_ultralytics_models_are_one_line_errors(tmp_path: Path, config: str, message: str) -> None:
    from ultralytics import YOLO

    source = tmp_path / "other.pt"
    torch.save({"model": YOLO(config).model}, source)
    result = run_edgecv("compress", "from-ultralytics", "-m", source, "-o", tmp_path / "out.pt")
    assert_one_line_error(result, "other.pt", message)
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.skipif(not ULTRALYTICS, reason="Ultralytics (AGPL-3.0, optional) is not installed")
def test_unreadable_metadata_in_an_ultralytics_file_is_one_error_line(tmp_path: Path) -> None:
    from ultralytics import YOLO

    model = YOLO("yolov8n.yaml").model
    model.names = {"person": "not an id"}
    source = tmp_path / "odd.pt"
    torch.save({"model": model}, source)
    result = run_edgecv("compress", "from-ultralytics", "-m", source, "-o", tmp_path / "out.pt")
    assert_one_line_error(result, "odd.pt: cannot read its class names")
    assert not (tmp_path / "out.pt").exists()
