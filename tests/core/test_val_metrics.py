"""The mAP implementation (edgecv.evaluation.metrics) on hand-made cases and against pycocotools."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from edgecv.evaluation.metrics import IOU_THRESHOLDS, accumulate, box_iou, evaluate, match_image

BOX_A = [10.0, 10.0, 110.0, 110.0]
BOX_B = [200.0, 50.0, 260.0, 170.0]


def one_image(dets, gts, **kwargs):
    """mAP of one image: dets [(box, score, class)], gts [(box, class)]."""
    boxes = np.array([d[0] for d in dets], float).reshape(-1, 4)
    scores = np.array([d[1] for d in dets], float)
    classes = np.array([d[2] for d in dets], int)
    gt_boxes = np.array([g[0] for g in gts], float).reshape(-1, 4)
    gt_classes = np.array([g[1] for g in gts], int)
    return evaluate([(boxes, scores, classes)], [(gt_boxes, gt_classes)], **kwargs)


def test_box_iou() -> None:
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])
    crowd = box_iou([[0, 0, 10, 10]], [[0, 0, 100, 100]], crowd=[True])
    np.testing.assert_allclose(crowd, [[1.0]])  # intersection over the detection's area


def test_perfect_detections_score_one() -> None:
    result = one_image([(BOX_A, 0.9, 0), (BOX_B, 0.8, 3)], [(BOX_A, 0), (BOX_B, 3)])
    assert result.map50 == pytest.approx(1.0)
    assert result.map50_95 == pytest.approx(1.0)
    assert list(result.class_ids) == [0, 3] and list(result.instances) == [1, 1]
    assert result.mean_precision == pytest.approx(1.0) and result.mean_recall == pytest.approx(1.0)


def test_a_missed_object_halves_recall() -> None:
    result = one_image([(BOX_A, 0.9, 0)], [(BOX_A, 0), (BOX_B, 0)])
    # Recall reaches 0.5 at precision 1: 51 of the 101 recall points (0.00 .. 0.50) score 1.
    assert result.map50 == pytest.approx(51 / 101)
    assert result.mean_recall == pytest.approx(0.5)


def test_a_duplicate_is_a_false_positive() -> None:
    result = one_image([(BOX_A, 0.9, 0), (BOX_A, 0.8, 0)], [(BOX_A, 0)])
    assert result.map50 == pytest.approx(1.0)  # the duplicate scores lower: precision 1 up to recall 1
    matches = match_image([BOX_A, BOX_A], [0.9, 0.8], [0, 0], [BOX_A], [0])
    assert matches.tp[:, 0].all() and not matches.tp[:, 1].any()
    # A higher-scoring duplicate of nothing costs precision: the FP comes first.
    worse = one_image([(BOX_B, 0.95, 0), (BOX_A, 0.9, 0)], [(BOX_A, 0)])
    assert worse.map50 == pytest.approx(0.5)


def test_class_confusion_matches_nothing() -> None:
    result = one_image([(BOX_A, 0.9, 1)], [(BOX_A, 0)])
    assert result.map50 == 0.0 and result.map50_95 == 0.0
    assert list(result.class_ids) == [0]  # class 1 has no ground truth: not averaged


def test_iou_thresholds_grade_localisation() -> None:
    shifted = [10.0, 10.0, 110.0, 110.0 * 0.8 + 10 * 0.2]  # IoU 0.78 with BOX_A
    iou = box_iou([shifted], [BOX_A])[0, 0]
    result = one_image([(shifted, 0.9, 0)], [(BOX_A, 0)])
    passed = (iou >= IOU_THRESHOLDS).sum()
    assert result.map50 == pytest.approx(1.0)
    assert result.map50_95 == pytest.approx(passed / len(IOU_THRESHOLDS))


def test_greedy_matching_takes_the_best_free_box() -> None:
    # The first detection overlaps both objects and takes the better overlap (gt 1); the
    # second, almost as good on gt 1, must fall back to gt 0.
    gts = [[0, 0, 100, 100], [10, 0, 110, 100]]
    dets = [[8, 0, 108, 100], [6, 0, 106, 100]]
    matches = match_image(dets, [0.9, 0.8], [0, 0], gts, [0, 0])
    assert matches.tp[0].all()


def test_crowd_boxes_are_ignored() -> None:
    crowd_box = [0.0, 0.0, 400.0, 400.0]
    matches = match_image([BOX_A, BOX_B], [0.9, 0.8], [0, 0], [BOX_A, crowd_box], [0, 0], [False, True])
    assert matches.tp[:, 0].all() and matches.ignored[:, 1].all() and not matches.tp[:, 1].any()
    assert list(matches.gt_class_ids) == [0]  # crowd boxes are not counted as instances


def test_max_det_keeps_the_best_per_class() -> None:
    dets = [BOX_B, BOX_A]
    matches = match_image(dets, [0.9, 0.5], [0, 0], [BOX_A], [0], max_det=1)
    assert len(matches.scores) == 1 and not matches.tp.any()


def test_empty_inputs() -> None:
    nothing = one_image([], [(BOX_A, 0)])
    assert nothing.map50 == 0.0 and nothing.mean_recall == 0.0
    background = one_image([(BOX_A, 0.9, 0)], [])
    assert len(background.class_ids) == 0 and background.map50 == 0.0


# --- against pycocotools ------------------------------------------------------------------------


def pycocotools_map(detections, ground_truth, max_det: int = 300) -> tuple[float, float]:
    """(mAP50-95, mAP50) from COCOeval over the same boxes (xyxy in, xywh for COCO)."""
    images, annotations, results = [], [], []
    for image_id, ((boxes, scores, classes), (gt_boxes, gt_classes, crowd)) in enumerate(
        zip(detections, ground_truth, strict=True)
    ):
        images.append({"id": image_id, "width": 1000, "height": 1000})
        for box, cls, is_crowd in zip(gt_boxes, gt_classes, crowd, strict=True):
            x1, y1, x2, y2 = map(float, box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": int(is_crowd),
                }
            )
        for box, score, cls in zip(boxes, scores, classes, strict=True):
            x1, y1, x2, y2 = map(float, box)
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    truth = COCO()
    truth.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c + 1, "name": str(c)} for c in range(5)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        truth.createIndex()
        found = truth.loadRes(results)
        evaluator = COCOeval(truth, found, "bbox")
        evaluator.params.maxDets = [max_det]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, :, 0, 0]  # [T, R, K], area "all"
    per_class = [precision[:, :, k] for k in range(precision.shape[2]) if (precision[:, :, k] > -1).any()]
    return float(np.mean([p.mean() for p in per_class])), float(np.mean([p[0].mean() for p in per_class]))


def random_case(seed: int, images: int = 12):
    """Jittered copies of random objects, false positives, misses, crowd regions and score ties."""
    rng = np.random.default_rng(seed)
    detections, ground_truth = [], []
    for _ in range(images):
        count = int(rng.integers(0, 8))
        xy = rng.uniform(0, 800, (count, 2))
        wh = rng.uniform(10, 200, (count, 2))
        gt_boxes = np.concatenate([xy, xy + wh], axis=1).round(1)
        gt_classes = rng.integers(0, 5, count)
        crowd = rng.random(count) < 0.1
        found = [gt_boxes + rng.normal(0, 6, gt_boxes.shape) for _ in range(2)]
        extra_xy = rng.uniform(0, 800, (4, 2))
        found.append(np.concatenate([extra_xy, extra_xy + rng.uniform(10, 200, (4, 2))], axis=1))
        boxes = np.concatenate(found)
        boxes = np.concatenate(
            [np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1
        )
        classes = np.concatenate([gt_classes, gt_classes, rng.integers(0, 5, 4)])
        flip = rng.random(len(classes)) < 0.1
        classes = np.where(flip, rng.integers(0, 5, len(classes)), classes)
        scores = rng.choice([0.3, 0.5, 0.7, 0.9], len(classes)) if seed % 2 else rng.random(len(classes))
        keep = rng.random(len(classes)) < 0.85
        detections.append((boxes[keep], scores[keep], classes[keep]))
        ground_truth.append((gt_boxes, gt_classes, crowd))
    return detections, ground_truth


@pytest.mark.parametrize("seed", range(6))
def test_equals_pycocotools_on_random_cases(seed: int) -> None:
    detections, ground_truth = random_case(seed)
    mine = evaluate(detections, [(b, c) for b, c, _ in ground_truth], max_det=300)
    # Crowd regions go through match_image directly (evaluate() takes plain ground truth).
    with_crowd = accumulate_with(detections, ground_truth, max_det=300)
    expected = pycocotools_map(detections, ground_truth)
    assert (with_crowd.map50_95, with_crowd.map50) == pytest.approx(expected, abs=1e-9)
    no_crowd = pycocotools_map(detections, [(b, c, np.zeros(len(c), bool)) for b, c, _ in ground_truth])
    assert (mine.map50_95, mine.map50) == pytest.approx(no_crowd, abs=1e-9)


def test_max_det_equals_pycocotools() -> None:
    detections, ground_truth = random_case(7)
    small = accumulate_with(detections, ground_truth, max_det=2)
    assert (small.map50_95, small.map50) == pytest.approx(
        pycocotools_map(detections, ground_truth, max_det=2), abs=1e-9
    )


def accumulate_with(detections, ground_truth, max_det: int):
    return accumulate(
        match_image(*found, *truth, max_det=max_det)
        for found, truth in zip(detections, ground_truth, strict=True)
    )
