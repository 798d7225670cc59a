"""edgecv + ONNX Runtime on bus.jpg against SOURCES.md and an independent reference implementation.

Labels (in score order) and scores come from the "Check results" table of shared/assets/SOURCES.md;
boxes must agree within 1 px with ``onnx_reference_impl.py``, which shares no code with edgecv.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import onnx_reference_impl as reference_impl
import pytest

import edgecv

# model file, arch passed to edgecv.load (None: auto-detect), confidence threshold
CASES = [
    ("yolov8n_fp32_dequant.onnx", None, 0.25),
    ("yolo11n_320_fp32_dequant.onnx", None, 0.25),
    ("yolov8n_int8.onnx", None, 0.25),
    ("yolo11n_320_int8.onnx", None, 0.25),
    ("yolox_nano.onnx", "yolox", 0.3),
]


def expected_from_sources(sources: Path, model_file: str) -> list[tuple[str, float]]:
    """Parse 'person 0.907, 0.901; bus 0.832' from the bus.jpg column of the check-results table."""
    for line in sources.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(rf"{re.escape(model_file)}( \(conf >= [0-9.]+\))?", cells[0]):
            expected = []
            for group in cells[1].split(";"):
                match = re.fullmatch(r"\s*([a-z ]+?) ([0-9., ]+)\s*", group)
                assert match, f"cannot parse {group!r} in SOURCES.md"
                label = match.group(1)
                expected += [(label, float(s)) for s in match.group(2).split(",")]
            return expected
    raise AssertionError(f"{model_file} has no bus.jpg row in {sources}")


@pytest.fixture(scope="module")
def sources(assets: Path) -> Path:
    return assets / "SOURCES.md"


def test_sources_table_is_parsed(sources: Path) -> None:
    assert expected_from_sources(sources, "yolov8n_fp32_dequant.onnx") == [
        ("person", 0.907),
        ("person", 0.901),
        ("person", 0.900),
        ("bus", 0.832),
        ("person", 0.374),
    ]
    assert expected_from_sources(sources, "yolox_nano.onnx")[0] == ("bus", 0.909)


@pytest.mark.parametrize(("model_file", "arch", "conf"), CASES, ids=[c[0] for c in CASES])
def test_reference_impl_reproduces_sources_table(
    models: Path, bus_path: Path, sources: Path, model_file: str, arch: str | None, conf: float
) -> None:
    """The reference is only a reference if it reproduces the published numbers itself."""
    expected = expected_from_sources(sources, model_file)
    ref = reference_impl.detect(models / model_file, bus_path, arch or "yolov8", conf=conf)
    names = (models / "coco80_labels.txt").read_text().splitlines()
    assert [names[b.class_id] for b in ref] == [label for label, _ in expected]
    np.testing.assert_allclose([b.score for b in ref], [s for _, s in expected], atol=0.01)


@pytest.mark.parametrize(("model_file", "arch", "conf"), CASES, ids=[c[0] for c in CASES])
def test_edgecv_detections_match_sources_and_reference(
    models: Path, bus_path: Path, sources: Path, model_file: str, arch: str | None, conf: float
) -> None:
    model = edgecv.load(models / model_file, backend="onnx", arch=arch, conf=conf)
    assert model.backend == "onnx"
    detections = model(bus_path)

    expected = expected_from_sources(sources, model_file)
    assert detections.labels == [label for label, _ in expected]
    np.testing.assert_allclose(detections.scores, [s for _, s in expected], atol=0.01)
    assert list(detections.scores) == sorted(detections.scores, reverse=True)
    assert detections.image_shape == (1080, 810)
    assert detections.source == str(bus_path)

    ref = reference_impl.detect(models / model_file, bus_path, arch or "yolov8", conf=conf)
    assert [int(c) for c in detections.class_ids] == [b.class_id for b in ref]
    np.testing.assert_allclose(detections.scores, [b.score for b in ref], atol=1e-4)
    np.testing.assert_allclose(detections.boxes, [b.xyxy for b in ref], atol=1.0)


def test_yolox_nano_is_auto_detected_with_its_own_preprocessing(models: Path, bus_path: Path) -> None:
    model = edgecv.load(models / "yolox_nano.onnx", backend="onnx", conf=0.3)
    assert model.spec.arch == "yolox"
    assert (model.spec.input.color, model.spec.input.scale, model.spec.input.letterbox) == (
        "BGR",
        1.0,
        "topleft",
    )
    assert model(bus_path).labels == ["bus", "person", "person", "person"]


def test_bgr_array_input_gives_the_same_detections_as_the_path(models: Path, bus_path: Path) -> None:
    model = edgecv.load(models / "yolo11n_320_fp32_dequant.onnx", backend="onnx")
    from_path = model(bus_path)
    from_array = model(cv2.imread(str(bus_path)))
    assert from_array.source is None
    np.testing.assert_array_equal(from_array.boxes, from_path.boxes)
    np.testing.assert_array_equal(from_array.scores, from_path.scores)
