"""Raw outputs -> Detections: decode, class-aware NMS, undo the letterbox, clip."""

from __future__ import annotations

import functools
import logging
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, TypeGuard

import attrs
import numpy as np
import numpy.typing as npt

from edgecv import validation
from edgecv.decoders import DecodeContext, batched_nms
from edgecv.detections import Detections
from edgecv.preprocess import LetterboxInfo
from edgecv.spec import ModelSpec

log = logging.getLogger(__name__)


def _as_class_ids(value: object) -> object:
    """``classes`` as a tuple (one id, a list or an array are accepted; numpy ints become ints).
    Anything else is kept as it is for the validator to refuse."""
    if _is_int(value):
        return (int(value),)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return tuple(int(v) if _is_int(v) else v for v in value)
    return value


def _is_int(value: object) -> TypeGuard[numbers.Integral]:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _conf(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    validation.fraction(value, "conf", "the minimum score", "0.25")


def _iou(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    validation.fraction(value, "iou", "the NMS overlap limit", "0.45")


def _max_det(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    validation.count(value, "max_det", "the detections kept per image", 300)


def _classes(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    validation.class_ids(value, None)  # the range is the model's: ``Model`` checks it


@attrs.frozen
class PostprocessOptions:
    """Thresholds for turning candidates into detections. Each value is checked when set
    (``ConfigError``), whether it comes from the CLI, ``edgecv.load`` or a ``model(...)`` call."""

    conf: float = attrs.field(default=0.25, validator=_conf)
    iou: float = attrs.field(default=0.45, validator=_iou)
    max_det: int = attrs.field(default=300, validator=_max_det)
    classes: tuple[int, ...] | None = attrs.field(default=None, converter=_as_class_ids, validator=_classes)
    """Keep only these class ids (applied before NMS)."""
    agnostic: bool = False
    """Suppress across classes (one NMS for all) instead of per class."""
    multi_label: bool = False
    """Let one box carry several classes above ``conf`` (used for mAP evaluation)."""


@functools.cache
def _warn_non_finite() -> None:
    log.warning(
        "the model output non-finite boxes or scores (NaN or infinity); those candidates are dropped. "
        "A damaged model file or a wrong input recipe can cause this: check with `edgecv val`."
    )


def scale_boxes(boxes: npt.NDArray[np.float32], letterbox: LetterboxInfo) -> npt.NDArray[np.float32]:
    """Model-input pixels -> original-image pixels, clipped to the image."""
    left, top = letterbox.pad
    height, width = letterbox.image_shape
    out = (boxes - np.array([left, top, left, top], np.float32)) / np.float32(letterbox.gain)
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    return out  # type: ignore[no-any-return]


def postprocess(
    outputs: Sequence[npt.NDArray[Any]],
    spec: ModelSpec,
    letterbox: LetterboxInfo,
    options: PostprocessOptions,
) -> Detections:
    decoder = spec.decoder
    context = DecodeContext(options.conf, options.multi_label, len(spec.names), letterbox.input_shape)
    found = decoder.decode(outputs, context)
    boxes, scores, class_ids = found.boxes, found.scores, found.class_ids
    if spec.boxes_normalized:
        height, width = letterbox.input_shape
        boxes = boxes * np.array([width, height, width, height], np.float32)
    # A NaN or infinite box would poison NMS (it spreads to every class offset and IoU) and wipe
    # out the frame's real detections: such candidates are dropped.
    finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
    if not finite.all():
        _warn_non_finite()
        boxes, scores, class_ids = boxes[finite], scores[finite], class_ids[finite]
    if options.classes is not None:
        wanted = np.isin(class_ids, options.classes)
        boxes, scores, class_ids = boxes[wanted], scores[wanted], class_ids[wanted]
    if decoder.needs_nms:
        groups = np.zeros_like(class_ids) if options.agnostic else class_ids
        keep = batched_nms(boxes, scores, groups, options.iou, options.max_det)
    else:
        keep = np.argsort(-scores, kind="stable")[: options.max_det]
    return Detections(
        scale_boxes(boxes[keep], letterbox),
        scores[keep],
        class_ids[keep],
        names=spec.names,
        image_shape=letterbox.image_shape,
    )
