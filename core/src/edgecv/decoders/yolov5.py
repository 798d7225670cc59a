"""YOLOv5-style anchor-based heads with objectness: output [1, N, 5 + C].

Per row: cx, cy, w, h in input pixels, objectness, C class scores (all through sigmoid);
the score of a class is objectness x class score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv.decoders.base import Candidates, DecodeContext, Decoder, Shape, select_scores, xywh_to_xyxy


def decode_yolov5(outputs: Sequence[npt.NDArray[Any]], context: DecodeContext) -> Candidates:
    raw = outputs[0][0]
    objectness = raw[:, 4]
    likely = np.flatnonzero(objectness > context.conf)  # cheap pre-filter: score <= objectness
    rows, scores, class_ids = select_scores(raw[likely, 5:] * objectness[likely, None], context)
    boxes = xywh_to_xyxy(np.ascontiguousarray(raw[likely[rows], :4], dtype=np.float32))
    return Candidates(boxes, scores, class_ids)


def matches_objectness_layout(shapes: Sequence[Shape], num_classes: int | None) -> bool:
    """[1, N, 5 + C] with N > 5 + C: shared by YOLOv5 and YOLOX."""
    if len(shapes) != 1 or len(shapes[0]) != 3:
        return False
    _, rows, channels = shapes[0]
    if channels is None or channels <= 5:
        return False
    if num_classes is not None and channels != 5 + num_classes:
        return False
    return rows is None or rows > channels


def grid_points(input_size: tuple[int, int], strides: Sequence[int] = (8, 16, 32)) -> int:
    height, width = input_size
    return sum((height // s) * (width // s) for s in strides)


def matches_yolov5(shapes: Sequence[Shape], num_classes: int | None, input_size: tuple[int, int]) -> bool:
    # Anchor-based heads have 3 anchors per grid point; one per point is YOLOX.
    rows = shapes[0][1] if shapes and len(shapes[0]) == 3 else None
    return matches_objectness_layout(shapes, num_classes) and rows != grid_points(input_size)


def objectness_class_count(shapes: Sequence[Shape]) -> int | None:
    """[1, N, 5 + C]: box, objectness, then C class scores."""
    channels = shapes[0][2] if len(shapes[0]) == 3 else None
    return channels - 5 if channels is not None else None


YOLOV5 = Decoder(
    name="yolov5",
    layout="[1, N, 5+C]: cx, cy, w, h, objectness, C class scores (YOLOv5/v7, 3 anchors per cell)",
    decode=decode_yolov5,
    matches=matches_yolov5,
    class_count=objectness_class_count,
    preprocessing={"color": "RGB", "scale": 1 / 255, "letterbox": "center"},
)
