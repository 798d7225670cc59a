"""NCNN exports of both reference models against ONNX Runtime: raw outputs and bus.jpg detections.

fp32 storage and arithmetic (``fp16=False``, the default) must match ONNX Runtime within
``RAW_ATOL + RAW_RTOL * |onnxruntime|`` and give the SOURCES.md detections; fp16 (storage +
arithmetic, where the CPU has them) within looser bounds and the same labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ncnn_helpers import RAW_ATOL, RAW_RTOL, YOLO11, YOLOV8, expected_from_sources, exported, model_path

import edgecv
from edgecv.backend import read_image
from edgecv.testing.reference import asset, onnxruntime_outputs, raw_diff

MODELS = [YOLOV8, YOLO11]


@pytest.fixture(scope="module")
def bus() -> np.ndarray:
    return read_image(asset("images", "bus.jpg"))


@pytest.mark.parametrize("model_file", MODELS)
def test_raw_outputs_match_onnxruntime(
    tmp_path_factory: pytest.TempPathFactory, bus: np.ndarray, model_file: str
) -> None:
    model = edgecv.load(exported(tmp_path_factory, model_file), backend="ncnn", fp16=False)
    tensor, _ = model.preprocess(bus)
    ours = model.infer(tensor)
    theirs = onnxruntime_outputs(model_path(model_file), tensor)
    assert [o.shape for o in ours] == [o.shape for o in theirs]
    assert [o.shape for o in model.spec.outputs] == [o.shape for o in theirs]  # batch dim reported
    diff = raw_diff(ours[0], theirs[0], RAW_ATOL, RAW_RTOL)
    assert diff.outside == 0, (
        f"max abs diff {diff.max_abs:.3g} at {diff.where} (ncnn {diff.got:.6g}, onnxruntime "
        f"{diff.expected:.6g}); {diff.outside} of {diff.size} values outside {RAW_ATOL} + {RAW_RTOL}*|x|"
    )
    scores = np.abs(ours[0][:, 4:] - theirs[0][:, 4:]).max()
    assert scores < 1e-3, f"class scores differ by up to {scores:.3g}"


@pytest.mark.parametrize("model_file", MODELS)
def test_detections_match_sources(
    tmp_path_factory: pytest.TempPathFactory, bus: np.ndarray, model_file: str
) -> None:
    folder = exported(tmp_path_factory, model_file)
    model = edgecv.load(folder, conf=0.25, iou=0.45)  # backend="auto" picks ncnn for a model folder
    assert model.backend == "ncnn"
    detections = model(bus)
    expected = expected_from_sources(model_file)
    assert detections.labels == [label for label, _ in expected]
    np.testing.assert_allclose(detections.scores, [s for _, s in expected], atol=0.01)
    reference = edgecv.load(model_path(model_file), backend="onnx", conf=0.25, iou=0.45)(bus)
    np.testing.assert_allclose(detections.boxes, reference.boxes, atol=1.0)


@pytest.mark.parametrize("model_file", MODELS)
def test_fp16_storage_and_arithmetic_stay_close(
    tmp_path_factory: pytest.TempPathFactory, bus: np.ndarray, model_file: str
) -> None:
    model = edgecv.load(exported(tmp_path_factory, model_file, "fp16"), backend="ncnn", fp16=True)
    assert model.spec.metadata["edgecv_precision"] == "fp16"
    tensor, _ = model.preprocess(bus)
    ours = model.infer(tensor)[0]
    theirs = onnxruntime_outputs(model_path(model_file), tensor)[0]
    # fp16 weights and activations: boxes within a few pixels, scores within 0.02.
    assert np.abs(ours[:, 4:] - theirs[:, 4:]).max() < 0.02
    assert np.abs(ours[:, :4] - theirs[:, :4]).max() < 3.0
    assert model(bus).labels == [label for label, _ in expected_from_sources(model_file)]


def test_fp16_export_halves_the_weights(tmp_path_factory: pytest.TempPathFactory) -> None:
    fp32 = exported(tmp_path_factory, YOLOV8) / "model.ncnn.bin"
    fp16 = exported(tmp_path_factory, YOLOV8, "fp16") / "model.ncnn.bin"
    assert 0.45 < fp16.stat().st_size / fp32.stat().st_size < 0.55


def test_bare_infer_is_the_same_computation(
    tmp_path_factory: pytest.TempPathFactory, bus: np.ndarray
) -> None:
    model = edgecv.load(exported(tmp_path_factory, YOLO11), backend="ncnn")
    tensor, _ = model.preprocess(bus)
    bare = model.bare_infer()(tensor)
    assert isinstance(bare, list) and len(bare) == 1
    np.testing.assert_array_equal(np.array(bare[0])[None], model.infer(tensor)[0])
    again = model.session.bare(tensor)  # the same call, straight from the session
    assert isinstance(again, list) and len(again) == 1
    np.testing.assert_array_equal(np.array(again[0]), np.array(bare[0]))


def test_threads_do_not_change_results(tmp_path_factory: pytest.TempPathFactory, bus: np.ndarray) -> None:
    folder: Path = exported(tmp_path_factory, YOLO11)
    one = edgecv.load(folder, backend="ncnn", threads=1)(bus)
    two = edgecv.load(folder, backend="ncnn", threads=2)(bus)
    assert one.labels == two.labels
    np.testing.assert_allclose(one.boxes, two.boxes, atol=1e-3)
