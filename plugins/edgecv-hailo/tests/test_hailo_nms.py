"""The NMS-by-class layout: packing HailoRT's per-class lists, and the ``hailo-nms`` decoder."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.backend import DecodeContext
from edgecv.decoders import BUILTIN_DECODERS, choose_decoder
from edgecv_hailo.nms import HAILO_NMS, dense_nms

CONTEXT = DecodeContext(conf=0.25, multi_label=False, num_classes=3, input_size=(640, 640))


def per_class() -> list[np.ndarray]:
    return [
        np.array([[0.1, 0.2, 0.5, 0.6, 0.9], [0.0, 0.0, 0.1, 0.1, 0.2]], np.float32),  # one below conf
        np.zeros((0, 5), np.float32),
        np.array([[0.3, 0.4, 0.7, 0.8, 0.5]], np.float32),
    ]


def test_dense_pads_each_class_and_keeps_the_rows() -> None:
    dense = dense_nms(per_class(), max_boxes=4)
    assert dense.shape == (1, 3, 4, 5) and dense.dtype == np.float32
    np.testing.assert_array_equal(dense[0, 0, :2], per_class()[0])
    assert not dense[0, 1].any() and not dense[0, 0, 2:].any()


def test_dense_never_holds_more_than_max_boxes_per_class() -> None:
    many = [np.tile(np.array([[0.1, 0.1, 0.2, 0.2, 0.9]], np.float32), (7, 1))]
    assert dense_nms(many, max_boxes=5).shape == (1, 1, 5, 5)


def test_decode_reorders_corners_and_filters_by_conf() -> None:
    found = HAILO_NMS.decode([dense_nms(per_class(), 4)], CONTEXT)
    order = np.argsort(-found.scores)
    np.testing.assert_allclose(found.boxes[order], [[0.2, 0.1, 0.6, 0.5], [0.4, 0.3, 0.8, 0.7]])
    np.testing.assert_allclose(found.scores[order], [0.9, 0.5])
    assert found.class_ids[order].tolist() == [0, 2]


def test_decode_caps_candidates_by_score() -> None:
    capped = DecodeContext(
        conf=0.1, multi_label=False, num_classes=3, input_size=(640, 640), max_candidates=1
    )
    found = HAILO_NMS.decode([dense_nms(per_class(), 4)], capped)
    assert found.scores.tolist() == pytest.approx([0.9])


def test_layout_is_chosen_for_the_dense_nms_shape_only() -> None:
    decoders = (HAILO_NMS, *BUILTIN_DECODERS)
    assert choose_decoder([(1, 80, 100, 5)], None, (640, 640), {}, decoders=decoders) is HAILO_NMS
    assert HAILO_NMS.class_count([(1, 80, 100, 5)]) == 80
    assert not HAILO_NMS.matches([(1, 80, 100, 5)], 3, (640, 640))  # names say another class count
    # Ultralytics' and end-to-end layouts stay with the core's decoders when the plugin is installed.
    assert choose_decoder([(1, 84, 8400)], 80, (640, 640), {}, decoders=decoders).name == "yolov8"
    assert choose_decoder([(1, 300, 6)], 80, (640, 640), {}, decoders=decoders).name == "end2end"
