"""YOLOv8 / YOLO11 (Ultralytics, anchor-free, no objectness): output [1, 4 + C, N].

Rows 0-3 are cx, cy, w, h in input pixels, rows 4.. are class scores already through sigmoid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv.decoders.base import Candidates, DecodeContext, Decoder, Shape, select_scores, xywh_to_xyxy


def decode_yolov8(outputs: Sequence[npt.NDArray[Any]], context: DecodeContext) -> Candidates:
    raw = outputs[0][0]
    channels = 4 + context.num_classes
    if raw.shape[0] != channels and (raw.shape[1] == channels or raw.shape[0] > raw.shape[1]):
        raw = raw.T  # some exports emit [1, N, 4 + C]
    # The transposed view makes each row one anchor without copying the 84 x N block.
    class_scores = raw[4:].T
    rows, scores, class_ids = select_scores(class_scores, context)
    boxes = xywh_to_xyxy(np.ascontiguousarray(raw[:4, rows].T, dtype=np.float32))
    return Candidates(boxes, scores, class_ids)


def matches_yolov8(shapes: Sequence[Shape], num_classes: int | None, input_size: tuple[int, int]) -> bool:
    if len(shapes) != 1 or len(shapes[0]) != 3:
        return False
    _, channels, anchors = shapes[0]
    if num_classes is not None:
        if channels == 4 + num_classes:
            return True
        # Transposed export [1, N, 4 + C]: only recognisable when the class count is known.
        return anchors == 4 + num_classes and (channels is None or channels > anchors)
    return channels is not None and channels > 4 and (anchors is None or anchors > channels)


def yolov8_class_count(shapes: Sequence[Shape]) -> int | None:
    dims = [d for d in shapes[0][1:] if d is not None]
    return min(dims) - 4 if dims else None  # [1, 4+C, N] or [1, N, 4+C]: C+4 is the smaller


YOLOV8 = Decoder(
    name="yolov8",
    layout="[1, 4+C, N]: cx, cy, w, h, C class scores (YOLOv8, YOLO11)",
    decode=decode_yolov8,
    matches=matches_yolov8,
    class_count=yolov8_class_count,
    preprocessing={"color": "RGB", "scale": 1 / 255, "letterbox": "center"},
)
