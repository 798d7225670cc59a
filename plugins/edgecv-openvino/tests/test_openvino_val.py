"""coco128 mAP with OpenVINO against ONNX Runtime on the same pipeline (``edgecv.evaluation.validate``).

The odd half of coco128 (64 images in name order, ``subset="odd"``) keeps the module near a minute on two
shared cores; the INT8 export calibrates on the even half, so its score is held out. f32 must equal
ONNX Runtime's mAP within 0.001; INT8 may lose at most 2 points (measured: see the README).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from openvino_helpers import YOLOV8, exported, model_path

import edgecv
from edgecv.evaluation import ValResult, validate
from edgecv.testing.reference import asset

# SOURCES.md: labels 000000000656.txt and 000000000659.txt have no image, as in the upstream zip.
pytestmark = pytest.mark.filterwarnings("ignore:2 label file.s. have no image:UserWarning")

SUBSET = "odd"
F32_TOLERANCE = 0.001
INT8_MAX_DROP = 0.02


@functools.cache
def onnx_result(model_file: str) -> ValResult:
    return validate(edgecv.load(model_path(model_file), backend="onnx"), asset("coco128"), subset=SUBSET)


def _score(path: Path) -> ValResult:
    return validate(edgecv.load(path, backend="openvino"), asset("coco128"), subset=SUBSET)


@pytest.mark.parametrize("form", ["onnx", "ir-fp32"])
def test_coco128_map_equals_onnxruntime(
    tmp_path_factory: pytest.TempPathFactory, form: str, record_property: Callable[[str, object], None]
) -> None:
    path = model_path(YOLOV8) if form == "onnx" else exported(tmp_path_factory, YOLOV8)
    ours, theirs = _score(path), onnx_result(YOLOV8)
    record_property("openvino_map50_95", ours.map50_95)
    record_property("onnx_map50_95", theirs.map50_95)
    message = (
        f"{form}: openvino {ours.map50_95:.4f}/{ours.map50:.4f}, "
        f"onnx {theirs.map50_95:.4f}/{theirs.map50:.4f}"
    )
    assert ours.images == theirs.images == 64, message
    assert abs(ours.map50_95 - theirs.map50_95) <= F32_TOLERANCE, message
    assert abs(ours.map50 - theirs.map50) <= F32_TOLERANCE, message


def test_int8_export_keeps_map_on_held_out_images(
    tmp_path_factory: pytest.TempPathFactory, record_property: Callable[[str, object], None]
) -> None:
    ours, theirs = _score(exported(tmp_path_factory, YOLOV8, "int8")), onnx_result(YOLOV8)
    record_property("openvino_int8_map50_95", ours.map50_95)
    drop = theirs.map50_95 - ours.map50_95
    assert drop <= INT8_MAX_DROP, f"int8 mAP50-95 {ours.map50_95:.4f} vs f32 {theirs.map50_95:.4f}"
