"""The output of a HEF compiled with on-chip NMS, and the decoder that reads it.

HailoRT hands NMS results over per class: for each class a list of ``[y_min, x_min, y_max, x_max,
score]`` rows normalized to the network input. ``HailoSession`` packs them into one dense float32
tensor ``[1, classes, max_boxes, 5]`` (unused rows all zero), the ``Outputs`` every session returns;
``HAILO_NMS`` decodes that tensor. The boxes are final (the device ran NMS), so the core's NMS is
skipped (``needs_nms=False``); the core still applies ``conf``, ``classes`` and ``max_det`` and maps
the normalized boxes back through the letterbox to the image's pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edgecv.backend import Candidates, DecodeContext, Decoder

NAME = "hailo-nms"
ROW = 5
"""y_min, x_min, y_max, x_max, score."""
_XYXY = [1, 0, 3, 2]  # HailoRT's y-first corners, reordered to x1, y1, x2, y2


def dense_nms(per_class: Sequence[npt.NDArray[Any]], max_boxes: int) -> npt.NDArray[np.float32]:
    """HailoRT's per-class lists as one ``[1, classes, max_boxes, 5]`` float32 tensor.

    A class with more rows than ``max_boxes`` keeps its first ``max_boxes`` (HailoRT never gives
    more than the HEF's maximum per class; a longer list is not trusted to be sorted either way).
    """
    dense = np.zeros((1, len(per_class), max_boxes, ROW), np.float32)
    for index, rows in enumerate(per_class):
        found = np.asarray(rows, dtype=np.float32).reshape(-1, ROW)[:max_boxes]
        dense[0, index, : len(found)] = found
    return dense


def decode_hailo_nms(outputs: Sequence[npt.NDArray[Any]], context: DecodeContext) -> Candidates:
    per_class = outputs[0][0]
    class_ids, slots = np.nonzero(per_class[..., 4] > context.conf)
    rows = per_class[class_ids, slots]
    if len(rows) > context.max_candidates:
        top = np.argsort(-rows[:, 4], kind="stable")[: context.max_candidates]
        rows, class_ids = rows[top], class_ids[top]
    return Candidates(
        np.ascontiguousarray(rows[:, _XYXY], dtype=np.float32),
        rows[:, 4].astype(np.float32),
        class_ids.astype(np.int64),
    )


def _matches(
    shapes: Sequence[tuple[int | None, ...]], num_classes: int | None, input_size: tuple[int, int]
) -> bool:
    if len(shapes) != 1 or len(shapes[0]) != 4:
        return False
    batch, classes, _, row = shapes[0]
    return batch in (1, None) and row == ROW and (num_classes is None or classes == num_classes)


def _class_count(shapes: Sequence[tuple[int | None, ...]]) -> int | None:
    return shapes[0][1] if shapes and len(shapes[0]) == 4 else None


HAILO_NMS = Decoder(
    name=NAME,
    layout="[1, classes, max_boxes, 5]: y_min, x_min, y_max, x_max, score, normalized (Hailo on-chip NMS)",
    decode=decode_hailo_nms,
    matches=_matches,
    needs_nms=False,
    class_count=_class_count,
    # What Hailo's YOLO HEFs are compiled for: RGB, letterboxed; the uint8 input takes pixels as they are.
    preprocessing={"color": "RGB", "letterbox": "center"},
)
