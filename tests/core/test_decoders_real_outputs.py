"""The decoders and NMS on real model outputs against an oracle: same boxes (to float32 rounding),
scores, classes and order, for every option that changes the path (low and default ``conf``,
multi-label, agnostic, class filter, ``max_det``), on the outputs of real models on real images.

``reference_*`` below: the decoding is each layout's formulas as edgecv's postprocessing computed
them before issue 17 (the fixed point later speed work must keep); the NMS is written from its
definition, independently of ``edgecv.decoders.nms``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edgecv
from edgecv.images import read_image
from edgecv.postprocess import PostprocessOptions
from edgecv.preprocess import LetterboxInfo

# --- the oracle ----------------------------------------------------------------------------------


def reference_xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


def reference_select_scores(class_scores: np.ndarray, conf: float, multi_label: bool, cap: int = 30000):
    if multi_label:
        rows, cols = np.nonzero(class_scores > conf)
        scores = class_scores[rows, cols]
        class_ids = cols.astype(np.int64)
    else:
        best = class_scores.max(axis=1)
        rows = np.flatnonzero(best > conf)
        scores = best[rows]
        class_ids = class_scores[rows].argmax(axis=1).astype(np.int64)
    if len(rows) > cap:
        top = np.argsort(-scores, kind="stable")[:cap]
        rows, scores, class_ids = rows[top], scores[top], class_ids[top]
    return rows, scores.astype(np.float32, copy=False), class_ids


def reference_yolov8(raw: np.ndarray, conf: float, multi_label: bool, num_classes: int):
    raw = raw[0]
    if raw.shape[0] != 4 + num_classes:
        raw = raw.T
    rows, scores, class_ids = reference_select_scores(raw[4:].T, conf, multi_label)
    boxes = reference_xywh_to_xyxy(np.ascontiguousarray(raw[:4, rows].T, dtype=np.float32))
    return boxes, scores, class_ids


def reference_yolox(raw: np.ndarray, conf: float, multi_label: bool, size: tuple[int, int]):
    raw = raw[0]
    cells, strides = [], []
    for stride in (8, 16, 32):
        ys, xs = np.meshgrid(np.arange(size[0] // stride), np.arange(size[1] // stride), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full((cells[-1].shape[0], 1), stride))
    grid, stride_of = np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)
    objectness = raw[:, 4]
    likely = np.flatnonzero(objectness > conf)
    rows, scores, class_ids = reference_select_scores(
        raw[likely, 5:] * objectness[likely, None], conf, multi_label
    )
    picked = likely[rows]
    stride = stride_of[picked]
    centres = (raw[picked, :2] + grid[picked]) * stride
    sizes = np.exp(raw[picked, 2:4]) * stride
    boxes = reference_xywh_to_xyxy(np.concatenate([centres, sizes], axis=1).astype(np.float32))
    return boxes, scores, class_ids


def reference_batched_nms(boxes, scores, class_ids, iou_threshold: float, max_det: int) -> np.ndarray:
    """Greedy NMS by its definition, written independently of ``edgecv.decoders.nms`` (which shifts
    each class into its own range and prunes the remaining boxes each round): in score order, a box
    is kept unless its IoU with a kept box of its class is above ``iou_threshold``."""
    kept: dict[int, list[int]] = {}
    keep: list[int] = []
    for index in np.argsort(-scores, kind="stable"):
        if len(keep) == max_det:
            break
        same_class = kept.setdefault(int(class_ids[index]), [])
        if same_class:
            x1, y1, x2, y2 = boxes[index].astype(np.float64)
            others = boxes[same_class].astype(np.float64)
            width = (np.minimum(x2, others[:, 2]) - np.maximum(x1, others[:, 0])).clip(0)
            height = (np.minimum(y2, others[:, 3]) - np.maximum(y1, others[:, 1])).clip(0)
            inter = width * height
            area = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
            areas = (others[:, 2] - others[:, 0]).clip(0) * (others[:, 3] - others[:, 1]).clip(0)
            if (inter / np.maximum(area + areas - inter, 1e-9) > iou_threshold).any():
                continue
        same_class.append(int(index))
        keep.append(int(index))
    return np.asarray(keep, dtype=np.intp)


def reference_postprocess(
    outputs: Sequence[np.ndarray], arch: str, letterbox: LetterboxInfo, options: PostprocessOptions
):
    if arch == "yolov8":
        num_classes = min(outputs[0].shape[1:]) - 4
        boxes, scores, class_ids = reference_yolov8(
            outputs[0], options.conf, options.multi_label, num_classes
        )
    else:
        boxes, scores, class_ids = reference_yolox(
            outputs[0], options.conf, options.multi_label, letterbox.input_shape
        )
    if options.classes is not None:
        wanted = np.isin(class_ids, options.classes)
        boxes, scores, class_ids = boxes[wanted], scores[wanted], class_ids[wanted]
    groups = np.zeros_like(class_ids) if options.agnostic else class_ids
    keep = reference_batched_nms(boxes, scores, groups, options.iou, options.max_det)
    left, top = letterbox.pad
    height, width = letterbox.image_shape
    out = (boxes[keep] - np.array([left, top, left, top], np.float32)) / np.float32(letterbox.gain)
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    return out, scores[keep], class_ids[keep]


# --- real outputs -------------------------------------------------------------------------------

MODELS = {
    "yolov8n_fp32_dequant.onnx": "yolov8",
    "yolo11n_320_fp32_dequant.onnx": "yolov8",
    "yolox_nano.onnx": "yolox",
}
OPTIONS = {
    "default": PostprocessOptions(),
    "low conf": PostprocessOptions(conf=0.001, iou=0.7),  # what mAP evaluation uses: thousands of boxes
    "multi-label": PostprocessOptions(conf=0.001, iou=0.7, multi_label=True),
    "agnostic": PostprocessOptions(conf=0.05, agnostic=True),
    "classes": PostprocessOptions(conf=0.05, classes=(0, 5)),
    "max_det": PostprocessOptions(conf=0.01, max_det=7),
    "strict iou": PostprocessOptions(conf=0.01, iou=0.1),
}

_outputs: dict[tuple[str, str], tuple[Any, list[np.ndarray], LetterboxInfo]] = {}


def real_outputs(models: Path, image: Path, name: str) -> tuple[Any, list[np.ndarray], LetterboxInfo]:
    """(model, raw outputs, letterbox) of one model on one image, computed once per test session."""
    key = (name, image.name)
    if key not in _outputs:
        model = edgecv.load(models / name, backend="onnx", threads=1)
        tensor, letterbox = model.preprocess(read_image(image))
        _outputs[key] = (model, [o.copy() for o in model.infer(tensor)], letterbox)
    return _outputs[key]


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("image", ["bus", "zidane"])
def test_postprocess_equals_the_reference_on_real_outputs(
    models: Path, bus_path: Path, zidane_path: Path, name: str, option: str, image: str
) -> None:
    model, outputs, letterbox = real_outputs(models, bus_path if image == "bus" else zidane_path, name)
    options = OPTIONS[option]
    found = model.postprocess(outputs, letterbox, options)
    boxes, scores, class_ids = reference_postprocess(outputs, MODELS[name], letterbox, options)
    assert len(scores) > 0  # every case has detections to compare
    np.testing.assert_array_equal(found.class_ids, class_ids)
    np.testing.assert_allclose(found.scores, scores, rtol=0, atol=1e-6)
    np.testing.assert_allclose(found.boxes, boxes, rtol=0, atol=1e-3)


@pytest.mark.parametrize("name", [name for name, arch in MODELS.items() if arch == "yolov8"])
def test_transposed_yolov8_output_decodes_the_same(models: Path, bus_path: Path, name: str) -> None:
    """Some exports emit [1, N, 4 + C]; the decoder reads both layouts alike."""
    model, outputs, letterbox = real_outputs(models, bus_path, name)
    options = OPTIONS["low conf"]
    straight = model.postprocess(outputs, letterbox, options)
    transposed = model.postprocess([np.ascontiguousarray(outputs[0].transpose(0, 2, 1))], letterbox, options)
    np.testing.assert_array_equal(transposed.class_ids, straight.class_ids)
    np.testing.assert_allclose(transposed.boxes, straight.boxes, rtol=0, atol=1e-3)
