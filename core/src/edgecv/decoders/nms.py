"""Non-maximum suppression: the one implementation every decoder and backend uses."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def nms(
    boxes: npt.NDArray[np.floating],
    scores: npt.NDArray[np.floating],
    iou_threshold: float,
    max_det: int = 300,
) -> npt.NDArray[np.intp]:
    """Greedy NMS on xyxy ``boxes``; returns kept indices, highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box is above ``iou_threshold``
    (the torchvision convention). Each round is one vectorized IoU against the survivors.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.intp)
    boxes = boxes.astype(np.float64, copy=False)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    order = np.argsort(-scores, kind="stable")
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
