"""``edgecv export --to tflite``: option errors, the metadata file, and a real full-integer export.

The conversion tests need the ``export`` extra (tensorflow-cpu, onnx2tf, ~1.7 GB) and skip, saying so,
where it is not installed; everything else runs everywhere.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import edgecv
from edgecv import BackendError, ConfigError, Detections, ModelError
from edgecv.images import read_image
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv.testing.progress import RecordedProgress
from edgecv_tflite import export
from edgecv_tflite.metadata import read_metadata

SOURCE = "yolov8n_fp32_dequant.onnx"
MISSING = [name for name in export.EXPORT_MODULES if importlib.util.find_spec(name) is None]
needs_extra = pytest.mark.skipif(
    bool(MISSING),
    reason=f"edgecv-tflite[export] is not installed (missing {', '.join(MISSING)})",
)
# Images the calibration does not see (with calib_size 8 it takes every 16th of coco128, from the first).
CHECK_IMAGES = (
    "images/bus.jpg",
    "images/zidane.jpg",
    "coco128/images/train2017/000000000025.jpg",
    "coco128/images/train2017/000000000036.jpg",
    "coco128/images/train2017/000000000049.jpg",
    "coco128/images/train2017/000000000064.jpg",
)


@pytest.fixture
def source(models: Path) -> Path:
    return models / SOURCE


@pytest.fixture
def calib(assets: Path) -> Path:
    return assets / "coco128" / "images" / "train2017"


def test_unknown_precision(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Unknown precision 'int4' for TFLite export") as info:
        export.export(source, tmp_path, {"precision": "int4"})
    assert info.value.hint == "Pass --precision fp32, fp16, dynamic, int8."


def test_int8_needs_calibration_images(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="INT8 export needs calibration images"):
        export.export(source, tmp_path, {"precision": "int8"})


def test_unknown_input_type(source: Path, calib: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Unknown TFLite input type 'int16'") as info:
        export.export(source, tmp_path, {"precision": "int8", "calib": calib, "io": "int16"})
    assert info.value.hint == "Pass io as int8 or uint8."


def test_source_must_be_onnx(models: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"is not an \.onnx file"):
        export.export(models / "yolov8n_int8.tflite", tmp_path, {"precision": "fp32"})


def test_output_must_be_tflite(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not a \.tflite file"):
        export.export(source, tmp_path / "model.onnx", {"precision": "fp32"})


def test_missing_extra_names_the_install(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("onnx2tf", "sng4onnx"):
        monkeypatch.setitem(sys.modules, name, None)  # ``import NAME`` now raises ImportError
    with pytest.raises(
        BackendError, match=r"Exporting TFLite models needs .*onnx2tf.*sng4onnx.*, which are not installed"
    ) as info:
        export.export(source, tmp_path, {"precision": "fp32"})
    assert "pip install --find-links dist 'edgecv-tflite[export]'" in info.value.hint
    assert not list(tmp_path.iterdir())


def test_cli_error_is_one_line(source: Path, tmp_path: Path) -> None:
    result = run_edgecv(
        "export", "--model", source, "--to", "tflite", "--precision", "int4", "-o", tmp_path / "m.tflite"
    )
    assert_one_line_error(result, "Unknown precision 'int4' for TFLite export")


def test_metadata_file_reads_back(tmp_path: Path) -> None:
    names = ("person", "traffic light", "it's", "a: b")
    text = export.metadata_text(
        {"task": "detect", "stride": "32", "note": 'say "hi" # not a comment'}, names, (480, 640)
    )
    model = tmp_path / "m_int8.tflite"
    (tmp_path / "m_int8_metadata.yaml").write_text(text)
    metadata = read_metadata(model)
    assert metadata["task"] == "detect"
    assert metadata["stride"] == "32"
    assert metadata["imgsz"] == "[480, 640]"
    assert metadata["note"] == 'say "hi" not a comment'
    assert metadata["names"] == repr(dict(enumerate(names)))


def _matched(reference: Detections, candidate: Detections, min_iou: float) -> int:
    """How many reference boxes have a same-class candidate box overlapping by ``min_iou`` or more."""
    found = 0
    for box, class_id in zip(reference.boxes, reference.class_ids, strict=True):
        same = candidate.boxes[candidate.class_ids == class_id]
        if len(same) == 0:
            continue
        x1 = np.maximum(box[0], same[:, 0])
        y1 = np.maximum(box[1], same[:, 1])
        x2 = np.minimum(box[2], same[:, 2])
        y2 = np.minimum(box[3], same[:, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        areas = (box[2] - box[0]) * (box[3] - box[1]) + (same[:, 2] - same[:, 0]) * (same[:, 3] - same[:, 1])
        found += int((inter / (areas - inter)).max() >= min_iou)
    return found


INT8_PROGRESS = RecordedProgress()


RECURSION_LIMITS: list[int] = []
"""The process's recursion limit before and after the INT8 export (onnx2tf raises it on import)."""


@pytest.fixture(scope="module")
def int8_model(assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if MISSING:
        pytest.skip(f"edgecv-tflite[export] is not installed (missing {', '.join(MISSING)})")
    folder = tmp_path_factory.mktemp("tflite-export")
    RECURSION_LIMITS.append(sys.getrecursionlimit())
    try:
        return export.export(
            assets / "models" / SOURCE,
            folder,
            {
                "precision": "int8",
                "calib": assets / "coco128" / "images" / "train2017",
                "calib_size": 8,
                "progress": INT8_PROGRESS,
            },
        )
    finally:
        RECURSION_LIMITS.append(sys.getrecursionlimit())


@needs_extra
def test_export_leaves_the_recursion_limit_as_it_was(int8_model: Path) -> None:
    """Left at onnx2tf's 2**31 - 1, any later deep recursion in the process segfaults (a deeply
    nested JSON sidecar did, in the same pytest process) instead of raising RecursionError."""
    before, after = RECURSION_LIMITS
    assert after == before


@needs_extra
def test_int8_export_reports_each_stage(int8_model: Path) -> None:
    assert INT8_PROGRESS.stages == [
        ("reading calibration images", 8, 8),
        ("converting ONNX to TensorFlow", 1, 1),
        ("calibrating", 8, 8),
        ("averaging ranges", 8, 8),
        ("quantizing", 1, 1),
    ]


@needs_extra
def test_full_integer_model_is_int8_in_float_out(int8_model: Path) -> None:
    assert int8_model.name == "yolov8n_fp32_dequant_int8.tflite"
    assert int8_model.with_name("yolov8n_fp32_dequant_int8_metadata.yaml").is_file()
    model = edgecv.load(int8_model)
    assert model.spec.backend == "tflite"
    assert model.spec.input.dtype == "int8"
    assert model.spec.input.quantization is not None
    assert model.spec.outputs[0].dtype == "float32"  # the decode stayed float
    assert model.spec.names[0] == "person" and len(model.spec.names) == 80
    assert model.spec.imgsz == (640, 640)


@needs_extra
def test_full_integer_detections_match_float32_onnx(int8_model: Path, models: Path, assets: Path) -> None:
    reference = edgecv.load(models / SOURCE, backend="onnx", conf=0.4)
    quantized = edgecv.load(int8_model, conf=0.25)  # a lower bar: scores may move a little
    total = found = 0
    for name in CHECK_IMAGES:
        image = read_image(assets / name)
        expected = reference(image)
        total += len(expected)
        found += _matched(expected, quantized(image), min_iou=0.8)
    assert total >= 15
    assert found >= 0.9 * total, (found, total)
