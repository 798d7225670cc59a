"""The Hailo backend against the conformance kit, on the fake HailoRT (tests/hailo_fakes.py).

The fake HEF carries the reference ONNX model and the fake device computes with ONNX Runtime, so
the kit checks everything of the plugin but the chip: HailoRT's call order, the uint8 NHWC input,
the NMS-by-class buffers and their decoding, dequantization of raw outputs, the spec, errors.
Two HEFs: one compiled with on-chip NMS (what Hailo's YOLO HEFs are), one with raw outputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import hailo_fakes
import numpy as np
import numpy.typing as npt
import pytest

from edgecv import Model
from edgecv.decoders import batched_nms
from edgecv.testing import BackendConformance
from edgecv.testing.reference import REFERENCE_IOU, onnxruntime_outputs, reference_model


class _OnFakeHailo(BackendConformance):
    backend = "hailo"
    # The fake runs the same float32 ONNX model as the onnx backend.
    box_tol_px: ClassVar[float] = 1.0

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def fake_hailo(cls) -> Iterator[None]:
        with pytest.MonkeyPatch.context() as patch:
            hailo_fakes.install_fake(patch)
            yield


class TestHailoNmsConformance(_OnFakeHailo):
    """A HEF with on-chip NMS (by class, thresholds as the reference's): decoded by ``hailo-nms``."""

    expected_arch: ClassVar[str] = "hailo-nms"

    def prepare_model(self, reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
        folder = tmp_path_factory.mktemp("hef-nms")
        return hailo_fakes.write_fake_hef(
            folder / "yolov8n.hef", reference, nms=True, score_threshold=0.2, iou_threshold=REFERENCE_IOU
        )

    def test_raw_outputs_match_onnxruntime(
        self, conformance_model: Model, conformance_image: npt.NDArray[np.uint8], record_property: Any
    ) -> None:
        """The device's NMS output holds what ONNX Runtime + edgecv's per-class NMS find (normalized).

        Replaces the kit's raw comparison: an NMS output cannot be compared value by value with
        the model's raw head.
        """
        spec = conformance_model.spec
        tensor, _ = conformance_model.preprocess(conformance_image)
        (dense,) = conformance_model.infer(tensor)
        assert dense.shape == (1, 80, 100, 5) and dense.dtype == np.float32
        raw = onnxruntime_outputs(reference_model(), self.reference_tensor(tensor, spec))[0][0]
        height, width = spec.input.size
        scores = raw[4:].T
        anchors, classes = np.nonzero(scores > 0.2)
        cx, cy, w, h = raw[:4, anchors]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
        keep = batched_nms(boxes, scores[anchors, classes].astype(np.float32), classes, REFERENCE_IOU, 10_000)
        size = np.array([width, height, width, height], np.float32)
        expected = np.concatenate(
            [classes[keep, None], boxes[keep] / size, scores[anchors, classes][keep, None]], axis=1
        )
        class_ids, slots = np.nonzero(dense[0, :, :, 4] > 0)
        rows = dense[0, class_ids, slots]
        got = np.concatenate([class_ids[:, None], rows[:, [1, 0, 3, 2, 4]]], axis=1)
        record_property("nms_boxes", len(got))
        assert len(got) == len(expected) > 0
        # Same boxes per class (to ~0.01 px at 640), in score order within each class.
        order = lambda rows: rows[np.lexsort((-rows[:, 5], rows[:, 0]))]  # noqa: E731
        np.testing.assert_allclose(order(got), order(expected), atol=2e-5)


class TestHailoRawConformance(_OnFakeHailo):
    """A HEF without NMS: uint16 outputs dequantized on the host, decoded by the core's yolov8."""

    # One uint16 step of the fake's quantization of the [1, 84, 8400] head (range ~0..650).
    raw_atol: ClassVar[float] = 0.02

    def prepare_model(self, reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
        folder = tmp_path_factory.mktemp("hef-raw")
        return hailo_fakes.write_fake_hef(folder / "yolov8n.hef", reference, nms=False, output_dtype="uint16")
