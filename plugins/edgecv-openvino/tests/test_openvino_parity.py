"""OpenVINO (f32, the default) against ONNX Runtime on the same files: the same detections with
boxes within 1 px, the same metadata; results that later calls never overwrite."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import openvino as ov
import pytest
from openvino_helpers import YOLO11, YOLOV8, exported, model_path

import edgecv
from edgecv.backend import read_image
from edgecv.testing.reference import match_boxes
from edgecv_openvino.session import PrecisionWarning

BOX_TOL_PX = 1.0
SCORE_TOL = 1e-3


def _pairs(detections: edgecv.Detections) -> list[tuple[str, list[float]]]:
    return [(d.label, list(d.box)) for d in detections]


@pytest.mark.parametrize("form", ["onnx", "ir"])
@pytest.mark.parametrize("model_file", [YOLOV8, YOLO11])
@pytest.mark.parametrize("image", ["bus.jpg", "zidane.jpg"])
def test_detections_match_onnxruntime_within_one_pixel(
    tmp_path_factory: pytest.TempPathFactory, assets: Path, model_file: str, form: str, image: str
) -> None:
    path = model_path(model_file) if form == "onnx" else exported(tmp_path_factory, model_file)
    picture = assets / "images" / image
    ours = edgecv.load(path, backend="openvino")(picture)
    theirs = edgecv.load(model_path(model_file), backend="onnx")(picture)
    assert len(ours) == len(theirs) > 0, (_pairs(ours), _pairs(theirs))
    pairs = match_boxes(_pairs(theirs), _pairs(ours))
    worst = max(distance for _, _, distance in pairs)
    assert worst <= BOX_TOL_PX, f"largest box difference {worst:.3f} px"
    for index, match, _ in pairs:
        assert match is not None
        assert abs(ours[match].score - theirs[index].score) <= SCORE_TOL


def test_default_precision_is_f32(models: Path) -> None:
    """OpenVINO's own default on CPUs with bf16 (this AMD EPYC, Intel AMX) is bf16: edgecv asks for f32."""
    session = edgecv.load(models / YOLOV8, backend="openvino").session
    assert session.precision == "f32"
    assert session.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32


def test_a_precision_the_device_lacks_is_reported(models: Path) -> None:
    """This AMD EPYC runs f16 as bf16; a CPU without bf16 runs it as f32; either way the load says so."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = edgecv.load(models / YOLO11, backend="openvino", precision="f16").session
    chosen = session.compiled.get_property("INFERENCE_PRECISION_HINT")
    assert session.precision == {ov.Type.f16: "f16", ov.Type.bf16: "bf16", ov.Type.f32: "f32"}[chosen]
    reported = [str(w.message) for w in caught if issubclass(w.category, PrecisionWarning)]
    if session.precision == "f16":
        assert reported == []
    else:
        expected = f"OpenVINO runs {YOLO11} in {session.precision} on CPU, not f16"
        assert reported == [f"{expected} (the device has no such arithmetic)"]


def test_onnx_metadata_is_what_onnxruntime_reads(models: Path) -> None:
    path = models / YOLOV8
    ours = edgecv.load(path, backend="openvino").session.spec.metadata
    theirs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert dict(ours) == dict(theirs.custom_metadata_map)


def test_results_survive_the_next_call_and_the_bare_call(
    models: Path, bus_path: Path, zidane_path: Path
) -> None:
    model = edgecv.load(models / YOLO11, backend="openvino")
    first_tensor, _ = model.preprocess(read_image(bus_path))
    second_tensor, _ = model.preprocess(read_image(zidane_path))
    first = model.infer(first_tensor)
    kept = [o.copy() for o in first]
    second = model.infer(second_tensor)
    model.bare_infer()(second_tensor)
    assert not np.array_equal(kept[0], second[0])  # two images, two results
    for got, expected in zip(first, kept, strict=True):
        np.testing.assert_array_equal(got, expected)
    again = model.infer(first_tensor)
    np.testing.assert_array_equal(again[0], kept[0])


def test_a_non_contiguous_tensor_runs(models: Path, bus_path: Path) -> None:
    model = edgecv.load(models / YOLO11, backend="openvino")
    tensor, _ = model.preprocess(read_image(bus_path))
    strided = np.asfortranarray(tensor)
    np.testing.assert_array_equal(model.infer(strided)[0], model.infer(tensor)[0])
