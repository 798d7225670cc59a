"""Non-maximum suppression: the one implementation every decoder and backend uses."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

OPENCV_MAX_BOXES = 2000
"""Up to this many boxes OpenCV's NMS (C++) runs, 2-2.5x faster than the numpy loop with the same
result (yolo11n at 320, the 41 candidates of bus.jpg: 18.5 against 46 µs; yolov8n on coco128 at val
settings: 169 against 391 ms for the 128 images, identical indices). It compares every box with
every kept one and cannot stop at ``max_det``: n boxes that all survive cost n²/2 overlaps. Above
this count the numpy loop runs, whose work ``max_det`` bounds."""


def nms(
    boxes: npt.NDArray[np.floating],
    scores: npt.NDArray[np.floating],
    iou_threshold: float,
    max_det: int = 300,
) -> npt.NDArray[np.intp]:
    """Greedy NMS on xyxy ``boxes``; returns kept indices, highest score first (ties: lower index).

    A box is dropped when its IoU with a kept, higher-scoring box is above ``iou_threshold``
    (the torchvision convention). Boxes without area never suppress anything.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.intp)
    corners: npt.NDArray[np.float64] = np.asarray(boxes, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    sizes = corners[:, 2:] - corners[:, :2]
    if len(corners) <= OPENCV_MAX_BOXES and bool((sizes > 0).all()):
        return _opencv_nms(corners[:, :2], sizes, order, iou_threshold, max_det)
    return _numpy_nms(corners, order, iou_threshold, max_det)


def _opencv_nms(
    corners: npt.NDArray[np.float64],
    sizes: npt.NDArray[np.float64],
    order: npt.NDArray[np.intp],
    iou_threshold: float,
    max_det: int,
) -> npt.NDArray[np.intp]:
    """``cv2.dnn.NMSBoxes`` on x, y, w, h (float64: its ``Rect2d`` overload, no rounding to pixels).

    It is given each box's rank as its score (n for the best, down to 1), so that its order, ties
    included, is ``order``, and any score (negative, NaN) is accepted. Boxes must have area: two
    empty boxes count as identical there (IoU 1), not as disjoint.
    """
    import cv2  # here, not at the top: a plugin that imports the decoders need not load OpenCV

    count = len(order)
    ranks = np.empty(count, np.float32)
    ranks[order] = np.arange(count, 0, -1, dtype=np.float32)
    # An n x 4 float64 array is what the binding converts to ``std::vector<Rect2d>`` (its stubs
    # declare only nested sequences, which would cost a conversion to lists).
    rects: Any = np.hstack([corners, sizes])
    scores: Any = ranks
    kept = cv2.dnn.NMSBoxes(rects, scores, 0.0, float(iou_threshold))
    return np.asarray(kept, dtype=np.intp).reshape(-1)[:max_det]


def _numpy_nms(
    boxes: npt.NDArray[np.float64], order: npt.NDArray[np.intp], iou_threshold: float, max_det: int
) -> npt.NDArray[np.intp]:
    """The same NMS as a loop of vectorized IoUs against the survivors, at most ``max_det`` rounds."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    keep: list[int] = []
    while order.size and len(keep) < max_det:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        width = (np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])).clip(0)
        height = (np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])).clip(0)
        inter = width * height
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


def batched_nms(
    boxes: npt.NDArray[np.floating],
    scores: npt.NDArray[np.floating],
    class_ids: npt.NDArray[np.integer],
    iou_threshold: float,
    max_det: int = 300,
) -> npt.NDArray[np.intp]:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Shifts each class into its own coordinate range (offset larger than the span of all boxes,
    which may be negative before clipping), so a single ``nms`` pass does all classes at once.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.intp)
    boxes = boxes.astype(np.float64, copy=False)
    offset = class_ids.astype(np.float64)[:, None] * (float(boxes.max() - boxes.min()) + 1.0)
    return nms(boxes + offset, scores, iou_threshold, max_det)
