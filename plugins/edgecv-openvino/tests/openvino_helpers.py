"""Shared by the edgecv-openvino tests: IR exports made once per test session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgecv.testing.progress import RecordedProgress
from edgecv.testing.reference import asset
from edgecv_openvino import export

YOLOV8 = "yolov8n_fp32_dequant.onnx"
YOLO11 = "yolo11n_320_fp32_dequant.onnx"

_exports: dict[tuple[str, str], Path] = {}
_progress: dict[tuple[str, str], RecordedProgress] = {}


def model_path(name: str) -> Path:
    return asset("models", name)


def exported(tmp_path_factory: pytest.TempPathFactory, model: str, precision: str = "fp32") -> Path:
    """``model`` (an asset ONNX file) exported to an IR folder once per test session.

    INT8 calibrates on 8 images of coco128's even half (scored on the odd half where a test scores it).
    """
    key = (model, precision)
    if key not in _exports:
        folder = tmp_path_factory.mktemp(f"openvino-{Path(model).stem}-{precision}") / "model"
        progress = _progress[key] = RecordedProgress()
        options: dict[str, Any] = {"precision": precision, "progress": progress}
        if precision == "int8":
            options.update(calib=asset("coco128", "images", "train2017"), calib_size=8, calib_subset="even")
        _exports[key] = export.export(model_path(model), folder, options)
    return _exports[key]


def export_stages(model: str, precision: str) -> list[tuple[str | int | None, ...]]:
    """The stages the export of ``model`` at ``precision`` reported (after ``exported``)."""
    return _progress[(model, precision)].stages
