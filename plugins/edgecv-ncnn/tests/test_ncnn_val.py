"""coco128 mAP of the NCNN exports against the ONNX models they came from (``edgecv.evaluation.validate``).

fp32 (fp16 off) must land within 0.5 mAP50-95 points (0.005) of ONNX Runtime on the same pipeline;
the fp16 export run with fp16 storage and arithmetic within 1.0 point (0.010).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from ncnn_helpers import YOLO11, YOLOV8, exported, model_path

import edgecv
from edgecv.evaluation import ValResult, validate
from edgecv.testing.reference import asset

TOLERANCE = {"fp32": 0.005, "fp16": 0.010}


@functools.cache
def onnx_result(model_file: str) -> ValResult:
    return validate(edgecv.load(model_path(model_file), backend="onnx"), asset("coco128"))


# SOURCES.md: labels 000000000656.txt and 000000000659.txt have no image, as in the upstream zip.
@pytest.mark.filterwarnings("ignore:2 label file.s. have no image:UserWarning")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("model_file", [YOLOV8, YOLO11])
def test_coco128_map_matches_onnx(
    tmp_path_factory: pytest.TempPathFactory,
    model_file: str,
    precision: str,
    record_property: Callable[[str, object], None],
) -> None:
    folder = exported(tmp_path_factory, model_file, precision)
    model = edgecv.load(folder, backend="ncnn", fp16=precision == "fp16")
    ours, theirs = validate(model, asset("coco128")), onnx_result(model_file)
    record_property("ncnn_map50_95", ours.map50_95)
    record_property("onnx_map50_95", theirs.map50_95)
    message = (
        f"{model_file} {precision}: ncnn mAP50-95 {ours.map50_95:.4f} / mAP50 {ours.map50:.4f}, "
        f"onnx {theirs.map50_95:.4f} / {theirs.map50:.4f}"
    )
    assert abs(ours.map50_95 - theirs.map50_95) <= TOLERANCE[precision], message
    assert abs(ours.map50 - theirs.map50) <= TOLERANCE[precision], message
