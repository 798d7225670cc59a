"""COCO-style box mAP in numpy: greedy matching per image and class, 101-point interpolated AP.

This reproduces ``pycocotools.COCOeval`` for ``iouType="bbox"``, area range "all" and one
``maxDets`` value, so numbers are comparable with published COCO results without depending on
pycocotools: detections of a class are matched to ground truth in score order, each taking the
unmatched ground-truth box it overlaps most (at least the IoU threshold); crowd boxes
(``iscrowd=1``) never count as misses and detections on them are ignored.

Precision and recall are reported at IoU 0.5 and at the single confidence threshold that
maximizes the F1 score averaged over classes (Ultralytics' choice, without its F1 smoothing),
because P and R at conf 0.001 would say nothing useful.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

IOU_THRESHOLDS: FloatArray = np.linspace(0.5, 0.95, 10)
"""0.50:0.05:0.95, exactly as COCOeval builds them."""
RECALL_POINTS: FloatArray = np.linspace(0.0, 1.0, 101)
CONF_GRID: FloatArray = np.linspace(0.0, 1.0, 1001)
"""Confidence thresholds searched for the best mean F1."""
_EPS = float(np.spacing(1))


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike, crowd: npt.ArrayLike | None = None) -> FloatArray:
    """IoU of xyxy boxes, [len(a), len(b)]. For crowd columns it is intersection / area(a) (COCO)."""
    boxes_a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    boxes_b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]).clip(0) * (boxes_a[:, 3] - boxes_a[:, 1]).clip(0)
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]).clip(0) * (boxes_b[:, 3] - boxes_b[:, 1]).clip(0)
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    size = (bottom_right - top_left).clip(0)
    inter = size[..., 0] * size[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    if crowd is not None:
        is_crowd = np.asarray(crowd, dtype=bool).reshape(-1)
        union = np.where(is_crowd[None, :], area_a[:, None], union)
    iou: FloatArray = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou


@attrs.frozen
class ImageMatches:
    """Matching results of one image: per detection, at each IoU threshold, TP or ignored."""

    scores: FloatArray
    class_ids: IntArray
    tp: BoolArray
    """[T, N]: matched a ground-truth box at threshold t."""
    ignored: BoolArray
    """[T, N]: unmatched but on a crowd box at threshold t (neither TP nor FP)."""
    gt_class_ids: IntArray
    """Classes of the non-crowd ground-truth boxes (what recall counts)."""


def match_image(
    det_boxes: npt.ArrayLike,
    det_scores: npt.ArrayLike,
    det_class_ids: npt.ArrayLike,
    gt_boxes: npt.ArrayLike,
    gt_class_ids: npt.ArrayLike,
    gt_crowd: npt.ArrayLike | None = None,
    *,
    max_det: int = 300,
    thresholds: FloatArray = IOU_THRESHOLDS,
) -> ImageMatches:
    """Greedy COCO matching of one image's xyxy detections to its xyxy ground truth.

    Keeps the ``max_det`` best detections per class (COCOeval's ``maxDets``). Only detections
    that overlap a same-class box by at least the lowest threshold enter the sequential loop;
    the rest are false positives at every threshold without one.
    """
    boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(det_class_ids, dtype=np.int64).reshape(-1)
    gts = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    gt_classes = np.asarray(gt_class_ids, dtype=np.int64).reshape(-1)
    crowd = (
        np.zeros(len(gts), dtype=bool) if gt_crowd is None else np.asarray(gt_crowd, dtype=bool).reshape(-1)
    )

    # Score order within each class (stable, as COCOeval), then the max_det cap per class.
    order = np.lexsort((-scores, classes))
    boxes, scores, classes = boxes[order], scores[order], classes[order]
    if len(classes):
        first = np.searchsorted(classes, classes, side="left")
        rank = np.arange(len(classes)) - first
        keep = rank < max_det
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]

    count = len(scores)
    steps = len(thresholds)
    tp = np.zeros((steps, count), dtype=bool)
    ignored = np.zeros((steps, count), dtype=bool)
    if count and len(gts):
        same = classes[:, None] == gt_classes[None, :]
        iou = np.where(same, box_iou(boxes, gts, crowd), -1.0)
        regular = np.where(crowd[None, :], -1.0, iou)
        crowd_iou = np.where(crowd[None, :], iou, -1.0).max(axis=1, initial=-1.0)
        # COCOeval accepts iou >= t, with t capped just below 1.
        limits = np.minimum(thresholds, 1 - 1e-10)
        candidates = np.flatnonzero(regular.max(axis=1, initial=-1.0) >= limits.min())
        matched = np.zeros((steps, len(gts)), dtype=bool)
        rows = np.arange(steps)
        last = len(gts) - 1
        for d in candidates:
            available = np.where(matched, -1.0, regular[d][None, :])
            # Ties go to the later box, as in COCOeval's loop.
            best = last - np.argmax(available[:, ::-1], axis=1)
            hit = available[rows, best] >= limits
            matched[rows[hit], best[hit]] = True
            tp[:, d] = hit
        ignored = ~tp & (crowd_iou[None, :] >= limits[:, None])
    return ImageMatches(scores, classes, tp, ignored, gt_classes[~crowd])


@attrs.frozen
class APResult:
    """Per-class AP at each IoU threshold plus P/R at the best-F1 confidence.

    Rows are the classes that have ground truth (``class_ids``), as COCO averages only those.
    """

    class_ids: IntArray
    instances: IntArray
    ap: FloatArray
    """[K, T]: AP of class k at IoU threshold t."""
    precision: FloatArray
    """[K]: precision at IoU 0.5 and confidence ``conf``."""
    recall: FloatArray
    conf: float
    """The confidence maximizing the mean F1 over classes (IoU 0.5)."""
    thresholds: FloatArray = IOU_THRESHOLDS

    @property
    def ap50(self) -> FloatArray:
        return self.ap[:, 0] if self.ap.size else np.zeros(0)

    @property
    def ap50_95(self) -> FloatArray:
        result: FloatArray = self.ap.mean(axis=1) if self.ap.size else np.zeros(0)
        return result

    @property
    def map50(self) -> float:
        return float(self.ap50.mean()) if len(self.class_ids) else 0.0

    @property
    def map50_95(self) -> float:
        return float(self.ap50_95.mean()) if len(self.class_ids) else 0.0

    @property
    def mean_precision(self) -> float:
        return float(self.precision.mean()) if len(self.class_ids) else 0.0

    @property
    def mean_recall(self) -> float:
        return float(self.recall.mean()) if len(self.class_ids) else 0.0


def _interpolated_ap(tp: BoolArray, fp: BoolArray, positives: int) -> FloatArray:
    """COCO 101-point AP for each threshold row of score-sorted TP/FP flags ([T, N] -> [T])."""
    steps, count = tp.shape
    if count == 0:
        return np.zeros(steps)
    tp_sum = np.cumsum(tp, axis=1, dtype=np.float64)
    fp_sum = np.cumsum(fp, axis=1, dtype=np.float64)
    recall = tp_sum / positives
    precision = tp_sum / (tp_sum + fp_sum + _EPS)
    # The precision envelope: best precision at this recall or beyond.
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    ap = np.empty(steps)
    for t in range(steps):
        index = np.searchsorted(recall[t], RECALL_POINTS, side="left")
        sampled = np.where(index < count, envelope[t, np.minimum(index, count - 1)], 0.0)
        ap[t] = sampled.mean()
    return ap


def accumulate(images: Iterable[ImageMatches], thresholds: FloatArray = IOU_THRESHOLDS) -> APResult:
    """Pool per-image matches into per-class AP (COCOeval.accumulate) and best-F1 P/R."""
    matches = list(images)
    steps = len(thresholds)
    scores = np.concatenate([m.scores for m in matches]) if matches else np.zeros(0)
    classes = np.concatenate([m.class_ids for m in matches]) if matches else np.zeros(0, np.int64)
    tp = np.concatenate([m.tp for m in matches], axis=1) if matches else np.zeros((steps, 0), bool)
    ignored = np.concatenate([m.ignored for m in matches], axis=1) if matches else tp.copy()
    gt_classes = np.concatenate([m.gt_class_ids for m in matches]) if matches else np.zeros(0, np.int64)
    class_ids, instances = np.unique(gt_classes, return_counts=True)

    # Group by class, score-descending, ties in image order (stable, as COCOeval's mergesort).
    order = np.lexsort((-scores, classes))
    scores, classes, tp, ignored = scores[order], classes[order], tp[:, order], ignored[:, order]
    starts = [int(i) for i in np.atleast_1d(np.searchsorted(classes, class_ids, side="left"))]
    ends = [int(i) for i in np.atleast_1d(np.searchsorted(classes, class_ids, side="right"))]

    ap = np.zeros((len(class_ids), steps))
    precision_curves = np.zeros((len(class_ids), len(CONF_GRID)))
    recall_curves = np.zeros((len(class_ids), len(CONF_GRID)))
    for k, (start, end, positives) in enumerate(zip(starts, ends, instances.tolist(), strict=True)):
        true = tp[:, start:end] & ~ignored[:, start:end]
        false = ~tp[:, start:end] & ~ignored[:, start:end]
        ap[k] = _interpolated_ap(true, false, int(positives))
        precision_curves[k], recall_curves[k] = _pr_curve(
            scores[start:end], true[0], false[0], int(positives)
        )
    if len(class_ids):
        f1 = 2 * precision_curves * recall_curves / (precision_curves + recall_curves + _EPS)
        best = int(np.argmax(f1.mean(axis=0)))
    else:
        best = 0
    return APResult(
        class_ids=class_ids.astype(np.int64),
        instances=instances.astype(np.int64),
        ap=ap,
        precision=precision_curves[:, best],
        recall=recall_curves[:, best],
        conf=float(CONF_GRID[best]),
        thresholds=thresholds,
    )


def _pr_curve(
    scores: FloatArray, tp: BoolArray, fp: BoolArray, positives: int
) -> tuple[FloatArray, FloatArray]:
    """Precision and recall of detections scoring >= each CONF_GRID value.

    As in Ultralytics, precision is 1 above a class's best score, and 0 for a class with no
    detections at all.
    """
    counted = tp | fp
    if not counted.any():
        return np.zeros(len(CONF_GRID)), np.zeros(len(CONF_GRID))
    scores, tp = scores[counted], tp[counted]
    tp_sum = np.concatenate([[0.0], np.cumsum(tp, dtype=np.float64)])
    # Detections are sorted by descending score: how many score at least each grid value.
    above = np.searchsorted(-scores, -CONF_GRID, side="right")
    found = tp_sum[above]
    precision = np.where(above > 0, found / np.maximum(above, 1), 1.0)
    recall = found / positives
    return precision, recall


def evaluate(
    detections: Sequence[tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]],
    ground_truth: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    *,
    max_det: int = 300,
    thresholds: FloatArray = IOU_THRESHOLDS,
) -> APResult:
    """mAP over images given as (boxes, scores, class_ids) detections and (boxes, class_ids) truth."""
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} detection sets for {len(ground_truth)} images")
    matches = [
        match_image(*found, *truth, max_det=max_det, thresholds=thresholds)
        for found, truth in zip(detections, ground_truth, strict=True)
    ]
    return accumulate(matches, thresholds)
