"""What a decoder is: raw outputs in, candidate boxes (before NMS) out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

Shape = tuple[int | None, ...]


@attrs.frozen
class Candidates:
    """Boxes xyxy in model-input pixels (or 0..1 when the model emits normalized boxes)."""

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    class_ids: npt.NDArray[np.int64]

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


DecodeFn = Callable[[Sequence[npt.NDArray[Any]], "DecodeContext"], Candidates]


@attrs.frozen
class DecodeContext:
    """What a decoder needs besides the outputs; built once per frame from the options."""

    conf: float
    multi_label: bool
    num_classes: int
    input_size: tuple[int, int]
    max_candidates: int = 30000


@attrs.frozen
class Decoder:
    """A named output layout.

    ``matches(shapes, num_classes, input_size)`` says whether the model's output shapes have
    this layout (``num_classes`` is ``None`` when the model carries no names); ``class_count``
    reads the number of classes off the output shapes (``None`` when the layout does not say:
    the user must then pass names); ``preprocessing`` holds the input recipe the architecture was
    trained with (colour, scale, letterbox).
    """

    name: str
    layout: str
    decode: DecodeFn
    matches: Callable[[Sequence[Shape], int | None, tuple[int, int]], bool]
    needs_nms: bool = True
    preprocessing: Mapping[str, Any] = attrs.field(factory=dict)
    class_count: Callable[[Sequence[Shape]], int | None] = lambda shapes: None


def xywh_to_xyxy(xywh: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


def select_scores(
    class_scores: npt.NDArray[np.float32], context: DecodeContext
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Candidates from an [N, C] score matrix: (row index, score, class id) above ``conf``.

    Single-label keeps each row's best class; multi-label keeps every (row, class) pair above
    ``conf`` (what COCO evaluation uses). Capped at ``max_candidates`` by score.
    """
    if context.multi_label:
        rows, cols = np.nonzero(class_scores > context.conf)
        scores = class_scores[rows, cols]
        class_ids = cols.astype(np.int64)
    else:
        best = class_scores.max(axis=1)
        rows = np.flatnonzero(best > context.conf)
        scores = best[rows]
        class_ids = class_scores[rows].argmax(axis=1).astype(np.int64)
    if len(rows) > context.max_candidates:
        top = np.argsort(-scores, kind="stable")[: context.max_candidates]
        rows, scores, class_ids = rows[top], scores[top], class_ids[top]
    return rows, scores.astype(np.float32, copy=False), class_ids
