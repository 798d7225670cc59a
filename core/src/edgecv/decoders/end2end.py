"""End-to-end (NMS-free) heads: output [1, K, 6] of x1, y1, x2, y2, score, class (YOLOv10, YOLO26)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv.decoders.base import Candidates, DecodeContext, Decoder, Shape


def decode_end2end(outputs: Sequence[npt.NDArray[Any]], context: DecodeContext) -> Candidates:
    raw = outputs[0][0]
    keep = np.flatnonzero(raw[:, 4] > context.conf)
    return Candidates(
        np.ascontiguousarray(raw[keep, :4], dtype=np.float32),
        raw[keep, 4].astype(np.float32),
        raw[keep, 5].astype(np.int64),
    )


def matches_end2end(shapes: Sequence[Shape], num_classes: int | None, input_size: tuple[int, int]) -> bool:
    return len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][2] == 6


END2END = Decoder(
    name="end2end",
    layout="[1, K, 6]: x1, y1, x2, y2, score, class (NMS-free: YOLOv10, YOLO26)",
    decode=decode_end2end,
    matches=matches_end2end,
    needs_nms=False,
    preprocessing={"color": "RGB", "scale": 1 / 255, "letterbox": "center"},
)
