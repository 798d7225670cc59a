"""torch -> ONNX: the reference model rebuilt in torch and exported again gives the reference
detections on the onnx backend, with edgecv's metadata in the file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

import edgecv
from edgecv.backend import ConfigError, ModelError
from edgecv.images import read_image
from edgecv.names import COCO80
from edgecv.testing.reference import (
    REFERENCE_CONF,
    REFERENCE_DETECTIONS,
    REFERENCE_IOU,
    match_boxes,
    reference_model,
)
from edgecv_torch.onnx_export import OPSET, export_onnx
from edgecv_torch.yolov8 import YOLOv8


@pytest.fixture(scope="module")
def exported(yolov8: YOLOv8, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("export") / "yolov8n_torch.onnx"
    assert export_onnx(yolov8, output, source=reference_model()) == output
    return output


def test_export_gives_the_reference_detections_on_the_onnx_backend(exported: Path, bus_path: Path) -> None:
    image = read_image(bus_path)
    ours = edgecv.load(exported, backend="onnx", conf=REFERENCE_CONF, iou=REFERENCE_IOU)(image)
    theirs = edgecv.load(reference_model(), backend="onnx", conf=REFERENCE_CONF, iou=REFERENCE_IOU)(image)
    assert [(d.label, round(d.score, 2)) for d in ours] == [
        (label, round(s, 2)) for label, s in REFERENCE_DETECTIONS
    ]
    pairs = match_boxes([(d.label, d.box) for d in theirs], [(d.label, d.box) for d in ours])
    assert len(ours) == len(theirs) and max(distance for _, _, distance in pairs) <= 1.0


def test_metadata_is_embedded_and_read_back(exported: Path) -> None:
    proto = onnx.load(str(exported))
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    assert proto.opset_import[0].version == OPSET
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert proto.graph.input[0].name == "images" and dims == [1, 3, 640, 640]  # static
    assert metadata["imgsz"] == "[640, 640]" and metadata["stride"] == "32" and metadata["task"] == "detect"
    assert metadata["names"].startswith("{0: 'person', 1: 'bicycle'")  # Ultralytics' form
    assert metadata["edgecv_precision"] == "fp32" and metadata["edgecv_source"] == reference_model().name
    assert metadata["edgecv_source_sha256"] == hashlib.sha256(reference_model().read_bytes()).hexdigest()
    versions = json.loads(metadata["edgecv_versions"])
    assert versions["edgecv"] == edgecv.__version__ and versions["torch"] == torch.__version__
    spec = edgecv.load(exported, backend="onnx").spec
    assert spec.names == COCO80 and spec.imgsz == (640, 640) and spec.arch == "yolov8"


def test_onnxslim_folded_the_traced_graph(exported: Path) -> None:
    """The tracer's export has 309 nodes, among them Shape/Gather/Unsqueeze/Expand chains and
    Constant nodes; onnxslim folds them (249 nodes left, measured with torch 2.13, onnxslim 0.1.98)."""
    ops = {node.op_type for node in onnx.load(str(exported)).graph.node}
    assert not ops & {"Shape", "Gather", "Unsqueeze", "Expand", "Constant"}, sorted(ops)


def test_a_smaller_static_size(yolov8: YOLOv8, tmp_path: Path, bus_path: Path) -> None:
    output = export_onnx(yolov8, tmp_path / "y320.onnx", imgsz=320)
    model = edgecv.load(output, backend="onnx")
    assert model.spec.imgsz == (320, 320) and model.spec.outputs[0].shape == (1, 84, 2100)
    assert "person" in [d.label for d in model(read_image(bus_path))]


class _Untraceable(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, object]:
        return {"text": str(x.sum().item())}


def test_bad_requests_are_one_line_errors_and_leave_no_file(yolov8: YOLOv8, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--precision int8"):
        export_onnx(yolov8, tmp_path / "y.onnx", precision="int8")
    with pytest.raises(ConfigError, match=r"not an \.onnx file name"):
        export_onnx(yolov8, tmp_path / "y.txt")
    with pytest.raises(ConfigError, match="multiple of 32"):
        export_onnx(yolov8, tmp_path / "y.onnx", imgsz=(100, 64))
    with pytest.raises(ConfigError, match="input size"):
        export_onnx(_Untraceable(), tmp_path / "u.onnx")
    (tmp_path / "u.onnx").write_bytes(b"kept")
    with pytest.raises(ModelError, match="cannot be exported to ONNX") as caught:
        export_onnx(_Untraceable(), tmp_path / "u.onnx", imgsz=64)
    assert "\n" not in str(caught.value)
    assert (
        sorted(p.name for p in tmp_path.iterdir()) == ["u.onnx"]
        and (tmp_path / "u.onnx").read_bytes() == b"kept"
    )
