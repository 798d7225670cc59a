"""YOLOX (Megvii): output [1, N, 5 + C] of grid offsets, N = sum over strides 8/16/32 of cells.

Per row: dx, dy, log w, log h, objectness, C class scores (sigmoid applied). Decode:
cx = (dx + gx) * s, cy = (dy + gy) * s, w = exp(log w) * s, h = exp(log h) * s.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv.decoders.base import Candidates, DecodeContext, Decoder, Shape, select_scores, xywh_to_xyxy
from edgecv.decoders.yolov5 import grid_points, matches_objectness_layout, objectness_class_count

STRIDES = (8, 16, 32)


@functools.lru_cache(maxsize=8)
def grid(input_size: tuple[int, int]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Cell offsets (N, 2) and strides (N, 1) for an input size, built once per size."""
    height, width = input_size
    cells, strides = [], []
    for stride in STRIDES:
        ys, xs = np.meshgrid(np.arange(height // stride), np.arange(width // stride), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full((cells[-1].shape[0], 1), stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def decode_yolox(outputs: Sequence[npt.NDArray[Any]], context: DecodeContext) -> Candidates:
    raw = outputs[0][0]
    cells, strides = grid(context.input_size)
    if len(cells) != len(raw):
        return Candidates.empty()  # guarded at load time by matches_yolox
    objectness = raw[:, 4]
    likely = np.flatnonzero(objectness > context.conf)
    rows, scores, class_ids = select_scores(raw[likely, 5:] * objectness[likely, None], context)
    picked = likely[rows]
    stride = strides[picked]
    centres = (raw[picked, :2] + cells[picked]) * stride
    sizes = np.exp(raw[picked, 2:4]) * stride
    boxes = xywh_to_xyxy(np.concatenate([centres, sizes], axis=1).astype(np.float32))
    return Candidates(boxes, scores, class_ids)


def matches_yolox(shapes: Sequence[Shape], num_classes: int | None, input_size: tuple[int, int]) -> bool:
    return matches_objectness_layout(shapes, num_classes) and shapes[0][1] in (None, grid_points(input_size))


YOLOX = Decoder(
    name="yolox",
    layout="[1, N, 5+C]: dx, dy, log w, log h, objectness, C class scores on the stride 8/16/32 grid (YOLOX)",
    decode=decode_yolox,
    matches=matches_yolox,
    class_count=objectness_class_count,
    preprocessing={"color": "BGR", "scale": 1.0, "letterbox": "topleft"},
)
