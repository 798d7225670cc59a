"""Accuracy evaluation: ``validate(model, data)`` scores a model with COCO mAP on a labelled dataset.

``data`` is a YOLO folder (images/ + labels/) or a COCO instances JSON; see ``datasets`` for the
layouts read and ``metrics`` for how the numbers are computed (equal to pycocotools').
"""

from __future__ import annotations

from edgecv.evaluation.datasets import Dataset, DatasetError, Sample, load_dataset
from edgecv.evaluation.metrics import APResult, accumulate, box_iou, evaluate, match_image
from edgecv.evaluation.validate import ClassResult, DatasetWarning, Skipped, ValResult, validate

__all__ = [
    "APResult",
    "ClassResult",
    "Dataset",
    "DatasetError",
    "DatasetWarning",
    "Sample",
    "Skipped",
    "ValResult",
    "accumulate",
    "box_iou",
    "evaluate",
    "load_dataset",
    "match_image",
    "validate",
]
