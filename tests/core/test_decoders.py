"""Decoders on synthetic raw outputs, decoder auto-detection, NMS and the postprocess step."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import edgecv
from edgecv.decoders import DECODERS, DecodeContext, batched_nms, choose_decoder, nms
from edgecv.decoders.nms import OPENCV_MAX_BOXES, _numpy_nms, _opencv_nms
from edgecv.errors import ConfigError, DecodeError
from edgecv.postprocess import PostprocessOptions, _warn_non_finite, postprocess
from edgecv.preprocess import LetterboxInfo
from edgecv.spec import InputSpec, ModelSpec, TensorSpec


def context(
    conf: float = 0.25, multi_label: bool = False, size=(640, 640), num_classes: int = 80
) -> DecodeContext:
    return DecodeContext(conf=conf, multi_label=multi_label, num_classes=num_classes, input_size=size)


def by_score(candidates):
    order = np.argsort(-candidates.scores, kind="stable")
    return candidates.boxes[order], candidates.scores[order], candidates.class_ids[order]


# --- yolov8 -------------------------------------------------------------------------------------


def yolov8_raw(anchors: int = 120) -> np.ndarray:
    raw = np.zeros((1, 84, anchors), np.float32)
    raw[0, :4, 3] = [100, 50, 20, 10]  # cx, cy, w, h
    raw[0, 4 + 5, 3] = 0.8
    raw[0, 4 + 2, 3] = 0.3
    raw[0, :4, 7] = [300, 200, 60, 40]
    raw[0, 4 + 0, 7] = 0.6
    raw[0, :4, 8] = [1, 1, 2, 2]
    raw[0, 4 + 1, 8] = 0.2  # below conf
    return raw


def test_yolov8_decode_best_class_per_anchor() -> None:
    boxes, scores, class_ids = by_score(DECODERS["yolov8"].decode([yolov8_raw()], context()))
    np.testing.assert_allclose(boxes, [[90, 45, 110, 55], [270, 180, 330, 220]])
    np.testing.assert_allclose(scores, [0.8, 0.6])
    assert class_ids.tolist() == [5, 0]
    assert boxes.dtype == np.float32 and class_ids.dtype == np.int64


def test_yolov8_decode_multi_label_keeps_every_class_above_conf() -> None:
    boxes, scores, class_ids = by_score(DECODERS["yolov8"].decode([yolov8_raw()], context(multi_label=True)))
    np.testing.assert_allclose(scores, [0.8, 0.6, 0.3])
    assert class_ids.tolist() == [5, 0, 2]
    np.testing.assert_allclose(boxes[2], [90, 45, 110, 55])


def test_yolov8_decode_transposed_output_gives_the_same_candidates() -> None:
    raw = yolov8_raw(anchors=120)
    straight = by_score(DECODERS["yolov8"].decode([raw], context()))
    transposed = by_score(
        DECODERS["yolov8"].decode([np.ascontiguousarray(raw.transpose(0, 2, 1))], context())
    )
    for a, b in zip(straight, transposed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(straight[0]) == 2


def test_yolov8_decode_with_fewer_anchors_than_channels() -> None:
    # A 601-class model (Open Images V7) at imgsz 160 has 605 channels but only
    # 20*20 + 10*10 + 5*5 = 525 anchors: [1, 605, 525] is still the standard layout.
    num_classes, anchors = 601, 525
    assert choose_decoder([(1, 4 + num_classes, anchors)], num_classes, (160, 160), {}).name == "yolov8"
    raw = np.zeros((1, 4 + num_classes, anchors), np.float32)
    raw[0, :4, 17] = [80, 60, 40, 20]
    raw[0, 4 + 600, 17] = 0.9
    found = DECODERS["yolov8"].decode([raw], context(size=(160, 160), num_classes=num_classes))
    np.testing.assert_allclose(found.boxes, [[60, 50, 100, 70]])
    assert found.class_ids.tolist() == [600]


def test_yolov8_decode_nothing_above_conf_is_empty() -> None:
    found = DECODERS["yolov8"].decode([yolov8_raw()], context(conf=0.9))
    assert found.boxes.shape == (0, 4) and len(found.scores) == 0 and len(found.class_ids) == 0


# --- yolov5 -------------------------------------------------------------------------------------


def test_yolov5_score_is_objectness_times_class_score() -> None:
    raw = np.zeros((1, 30, 85), np.float32)
    raw[0, 4] = [40, 40, 10, 20, 0.9] + [0] * 80
    raw[0, 4, 5 + 3] = 0.5  # 0.45
    raw[0, 11, :5] = [200, 100, 50, 50, 0.2]
    raw[0, 11, 5 + 1] = 1.0  # 0.2: below conf although the class score is 1
    raw[0, 20, :5] = [10, 10, 4, 4, 0.5]
    raw[0, 20, 5 + 7] = 0.6  # 0.3
    raw[0, 25, :5] = [10, 10, 4, 4, 0.99]  # objectness alone is not a detection
    boxes, scores, class_ids = by_score(DECODERS["yolov5"].decode([raw], context()))
    np.testing.assert_allclose(scores, [0.45, 0.3], rtol=1e-6)
    assert class_ids.tolist() == [3, 7]
    np.testing.assert_allclose(boxes, [[35, 30, 45, 50], [8, 8, 12, 12]])


# --- yolox --------------------------------------------------------------------------------------


def yolox_row_index(size: int, stride: int, gx: int, gy: int) -> int:
    offset = 0
    for s in (8, 16, 32):
        if s == stride:
            return offset + gy * (size // s) + gx
        offset += (size // s) ** 2
    raise ValueError(stride)


def test_yolox_grid_decode_at_416() -> None:
    raw = np.zeros((1, 3549, 85), np.float32)
    i = yolox_row_index(416, 16, gx=3, gy=2)
    assert i == 2704 + 2 * 26 + 3
    raw[0, i, :5] = [0.5, 0.25, math.log(2), 0.0, 0.8]
    raw[0, i, 5 + 7] = 0.9
    j = yolox_row_index(416, 32, gx=12, gy=12)
    assert j == 3548
    raw[0, j, :5] = [0.0, 0.0, 1.0, 0.0, 1.0]
    raw[0, j, 5 + 2] = 0.5
    k = yolox_row_index(416, 8, gx=51, gy=0)  # last cell of the first row at stride 8
    raw[0, k, :5] = [0.5, 0.5, 0.0, 0.0, 1.0]
    raw[0, k, 5 + 0] = 0.4
    boxes, scores, class_ids = by_score(DECODERS["yolox"].decode([raw], context(size=(416, 416))))
    np.testing.assert_allclose(scores, [0.72, 0.5, 0.4], rtol=1e-6)
    assert class_ids.tolist() == [7, 2, 0]
    half_w = math.e * 32 / 2
    np.testing.assert_allclose(
        boxes,
        [
            [56 - 16, 36 - 8, 56 + 16, 36 + 8],  # centre (3.5*16, 2.25*16), size (2*16, 1*16)
            [384 - half_w, 384 - 16, 384 + half_w, 384 + 16],
            [51.5 * 8 - 4, 0.5 * 8 - 4, 51.5 * 8 + 4, 0.5 * 8 + 4],
        ],
        rtol=1e-5,
    )


def test_yolox_non_square_grid_is_row_major_with_x_fastest() -> None:
    size = (256, 512)  # h, w: stride 8 grid is 32 rows x 64 columns
    n = sum((size[0] // s) * (size[1] // s) for s in (8, 16, 32))
    raw = np.zeros((1, n, 85), np.float32)
    raw[0, 1 * 64 + 5, :5] = [0, 0, 0, 0, 1.0]  # gy=1, gx=5 at stride 8
    raw[0, 1 * 64 + 5, 5] = 0.9
    boxes, _, _ = by_score(DECODERS["yolox"].decode([raw], context(size=size)))
    np.testing.assert_allclose(boxes, [[5 * 8 - 4, 8 - 4, 5 * 8 + 4, 8 + 4]])


# --- end2end ------------------------------------------------------------------------------------


def test_end2end_rows_are_boxes_scores_classes_without_nms() -> None:
    raw = np.zeros((1, 300, 6), np.float32)
    raw[0, 0] = [10, 20, 30, 40, 0.9, 2]
    raw[0, 1] = [10, 20, 30, 40, 0.8, 2]  # identical box: an NMS-free head keeps it
    raw[0, 2] = [0, 0, 5, 5, 0.1, 0]
    decoder = DECODERS["end2end"]
    assert decoder.needs_nms is False
    boxes, scores, class_ids = by_score(decoder.decode([raw], context()))
    np.testing.assert_allclose(boxes, [[10, 20, 30, 40], [10, 20, 30, 40]])
    np.testing.assert_allclose(scores, [0.9, 0.8])
    assert class_ids.tolist() == [2, 2]


# --- choose_decoder -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "num_classes", "size", "expected"),
    [
        ((1, 84, 8400), 80, (640, 640), "yolov8"),
        ((1, 84, 8400), None, (640, 640), "yolov8"),
        ((1, 84, 2100), None, (320, 320), "yolov8"),
        ((1, 84, None), 80, (640, 640), "yolov8"),
        ((1, 6, 8400), 2, (640, 640), "yolov8"),
        ((1, 8400, 84), 80, (640, 640), "yolov8"),  # transposed: recognised when names are known
        ((1, 3549, 85), None, (416, 416), "yolox"),  # one row per grid point
        ((1, 3549, 85), 80, (416, 416), "yolox"),
        ((1, 8400, 85), None, (640, 640), "yolox"),
        ((1, 25200, 85), None, (640, 640), "yolov5"),  # three anchors per grid point
        ((1, 3549, 85), None, (640, 640), "yolov5"),  # not this size's grid count
        ((1, 6300, 85), 80, (320, 320), "yolov5"),
        ((1, 300, 6), None, (640, 640), "end2end"),
        ((1, 300, 6), 80, (640, 640), "end2end"),
    ],
)
def test_choose_decoder_from_shapes(shape, num_classes, size, expected) -> None:
    assert choose_decoder([shape], num_classes, size, {}).name == expected


def test_end2end_metadata_flag_wins_over_shapes() -> None:
    assert choose_decoder([(1, 84, 8400)], 80, (640, 640), {"end2end": "True"}).name == "end2end"
    assert choose_decoder([(1, 84, 8400)], 80, (640, 640), {"end2end": "False"}).name == "yolov8"


def test_arch_overrides_detection_case_insensitively() -> None:
    assert choose_decoder([(1, 84, 8400)], 80, (640, 640), {}, arch="YOLOX").name == "yolox"


def test_unknown_arch_is_a_config_error_listing_decoders() -> None:
    with pytest.raises(ConfigError) as caught:
        choose_decoder([(1, 84, 8400)], 80, (640, 640), {}, arch="nonsense")
    text = str(caught.value)
    assert "nonsense" in text
    assert all(name in text for name in ("yolov8", "yolox", "yolov5", "end2end"))


@pytest.mark.parametrize(
    "shapes",
    [
        [(1, 2, 3, 4)],  # 4-D output
        [(1, 84, 8400), (1, 32, 160, 160)],  # segmentation head: two outputs
        [(1, 85, 4)],  # too few rows for any layout
    ],
)
def test_unknown_layout_is_a_decode_error_listing_layouts_and_arch(shapes) -> None:
    with pytest.raises(DecodeError) as caught:
        choose_decoder(shapes, None, (640, 640), {})
    text = str(caught.value)
    assert str(list(shapes[0])) in text
    for decoder in DECODERS.values():
        assert decoder.name in text and decoder.layout in text
    assert "--arch" in text


def test_load_with_unknown_arch_raises_config_error(models: Path) -> None:
    with pytest.raises(ConfigError, match="nonsense"):
        edgecv.load(models / "yolo11n_320_fp32_dequant.onnx", arch="nonsense")


# --- NMS ----------------------------------------------------------------------------------------


def test_nms_keeps_box_at_exactly_the_iou_threshold() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], np.float32)  # IoU = 50 / 100 = 0.5
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.49).tolist() == [0]


def test_nms_returns_indices_by_descending_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [100, 100, 110, 110], [1, 1, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.5, 0.9, 0.6, 0.7], np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [1, 3, 2]  # box 0 overlaps box 2 (IoU 0.81)


def test_nms_max_det_caps_the_result() -> None:
    boxes = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(6)], np.float32)
    scores = np.array([0.1, 0.6, 0.3, 0.9, 0.5, 0.2], np.float32)
    assert nms(boxes, scores, 0.45, max_det=3).tolist() == [3, 1, 4]
    assert batched_nms(boxes, scores, np.arange(6), 0.45, max_det=2).tolist() == [3, 1]


def test_nms_on_empty_input() -> None:
    empty = np.zeros((0, 4), np.float32)
    assert nms(empty, np.zeros(0, np.float32), 0.45).shape == (0,)
    kept = batched_nms(empty, np.zeros(0, np.float32), np.zeros(0, np.int64), 0.45)
    assert kept.shape == (0,) and kept.dtype == np.intp


def test_batched_nms_is_class_aware() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert batched_nms(boxes, scores, np.array([0, 1, 0]), 0.45).tolist() == [0, 1]
    assert batched_nms(boxes, scores, np.array([0, 0, 0]), 0.45).tolist() == [0]


def test_batched_nms_never_suppresses_across_classes_with_negative_coordinates() -> None:
    # Decoded boxes are in input pixels before clipping, so they can start left of / above 0.
    # Per class, the two boxes below do not overlap at all; they must both survive.
    boxes = np.array([[0, 0, 10, 10], [-10, -10, 0, 0]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [0, 1]
    assert sorted(batched_nms(boxes, scores, np.array([0, 1]), 0.45).tolist()) == [0, 1]


# --- postprocess (decode + NMS + letterbox undo) ------------------------------------------------


def make_spec(arch: str = "yolov8", names=("a", "b", "c")) -> ModelSpec:
    input_spec = InputSpec("images", (1, 3, 64, 64), "NCHW", "float32", (64, 64))
    return ModelSpec(
        path=Path("synthetic.onnx"),
        backend="none",
        input=input_spec,
        outputs=(TensorSpec("output0", (1, 4 + len(names), 30)),),
        names=tuple(names),
        decoder=DECODERS[arch],
    )


def synthetic_outputs() -> list[np.ndarray]:
    raw = np.zeros((1, 7, 30), np.float32)

    def put(i, box, cls, score):
        raw[0, :4, i] = box
        raw[0, 4 + cls, i] = score

    put(0, [20, 20, 10, 10], 0, 0.9)
    put(1, [21, 20, 10, 10], 0, 0.8)  # same object, same class: suppressed
    put(2, [21, 20, 10, 10], 1, 0.7)  # same place, other class: kept unless agnostic
    put(3, [50, 40, 8, 8], 2, 0.6)
    return [raw]


LETTERBOX = LetterboxInfo(gain=0.5, pad=(0, 12), image_shape=(80, 128), input_shape=(64, 64))


def test_postprocess_class_aware_nms_and_letterbox_undo() -> None:
    d = postprocess(synthetic_outputs(), make_spec(), LETTERBOX, PostprocessOptions())
    assert d.labels == ["a", "b", "c"]
    np.testing.assert_allclose(d.scores, [0.9, 0.7, 0.6])
    # (x - 0) / 0.5, (y - 12) / 0.5
    np.testing.assert_allclose(d.boxes[0], [30, 6, 50, 26])
    np.testing.assert_allclose(d.boxes[2], [92, 48, 108, 64])
    assert d.image_shape == (80, 128)


def test_postprocess_agnostic_nms_suppresses_across_classes() -> None:
    d = postprocess(synthetic_outputs(), make_spec(), LETTERBOX, PostprocessOptions(agnostic=True))
    assert d.labels == ["a", "c"]


def test_postprocess_classes_filter_and_max_det() -> None:
    spec = make_spec()
    assert postprocess(synthetic_outputs(), spec, LETTERBOX, PostprocessOptions(classes=(1, 2))).labels == [
        "b",
        "c",
    ]
    assert postprocess(synthetic_outputs(), spec, LETTERBOX, PostprocessOptions(max_det=1)).labels == ["a"]
    assert len(postprocess(synthetic_outputs(), spec, LETTERBOX, PostprocessOptions(conf=0.95))) == 0


def test_postprocess_clips_boxes_to_the_image() -> None:
    raw = np.zeros((1, 7, 30), np.float32)
    raw[0, :5, 0] = [2, 14, 10, 10, 0.9]  # x1 = -3, y1 = 9 (above the 12 px top padding)
    d = postprocess([raw], make_spec(), LETTERBOX, PostprocessOptions())
    np.testing.assert_allclose(d.boxes, [[0, 0, 14, 14]])


def random_boxes(rng: np.random.Generator, count: int, span: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered boxes with fractional, partly negative corners and some tied scores."""
    centres = rng.uniform(-20, span, (count, 2))
    centres += rng.integers(0, 4, (count, 1)) * 3.0  # clusters: many overlaps near the threshold
    sizes = rng.uniform(0.5, 60, (count, 2))
    boxes = np.hstack([centres - sizes / 2, centres + sizes / 2]).astype(np.float32)
    scores = rng.choice(np.linspace(0.05, 1.0, max(count // 3, 2)), count).astype(np.float32)
    return boxes, scores


@pytest.mark.parametrize("iou", [0.3, 0.45, 0.7])
def test_opencv_and_numpy_nms_agree(iou: float) -> None:
    # nms() runs OpenCV's NMS up to OPENCV_MAX_BOXES boxes and the numpy loop above: both must
    # return the same indices in the same order, ties in score included.
    rng = np.random.default_rng(7)
    for count in (1, 2, 5, 40, 300, 1500):
        boxes, scores = random_boxes(rng, count)
        boxes64 = boxes.astype(np.float64)
        order = np.argsort(-scores, kind="stable")
        sizes = boxes64[:, 2:] - boxes64[:, :2]
        fast = _opencv_nms(boxes64[:, :2], sizes, order, iou, 300)
        loop = _numpy_nms(boxes64, order, iou, 300)
        assert fast.tolist() == loop.tolist(), count
        assert nms(boxes, scores, iou).tolist() == loop.tolist()


def test_nms_keeps_fractional_coordinates() -> None:
    # IoU 9.4 / 10.6 = 0.887: kept at 0.9. Rounded to whole pixels the boxes would be identical.
    boxes = np.array([[0, 0, 10, 10], [0.6, 0, 10.6, 10]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, 0.9).tolist() == [0, 1]
    assert nms(boxes, scores, 0.88).tolist() == [0]


def test_nms_boxes_without_area_suppress_nothing() -> None:
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10], [3, 3, 2, 8]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [0, 1, 2, 3]


def test_nms_above_the_opencv_limit_stops_at_max_det() -> None:
    count = OPENCV_MAX_BOXES + 500
    boxes = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(count)], np.float32)  # all disjoint
    scores = np.linspace(1.0, 0.01, count).astype(np.float32)
    assert nms(boxes, scores, 0.45, max_det=7).tolist() == list(range(7))
    assert nms(boxes[:100], scores[:100], 0.45, max_det=7).tolist() == list(range(7))


def test_nms_accepts_any_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [1, 1, 10, 10]], np.float32)
    scores = np.array([-1.0, 0.0, -0.5], np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [1, 2]


@pytest.mark.parametrize(
    "bad", [[np.nan, 20, 10, 10], [np.inf, 20, 10, 10], [20, 20, np.inf, 10], [20, -np.inf, 10, 10]]
)
def test_a_non_finite_candidate_does_not_wipe_out_the_frame(
    bad: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    _warn_non_finite.cache_clear()
    clean = postprocess(synthetic_outputs(), make_spec(), LETTERBOX, PostprocessOptions())
    assert "non-finite" not in caplog.text
    raw = synthetic_outputs()[0]
    raw[0, :4, 5] = bad
    raw[0, 4, 5] = 0.95  # the best score of the frame
    raw[0, 6, 6] = np.nan  # and a NaN score elsewhere
    found = postprocess([raw], make_spec(), LETTERBOX, PostprocessOptions())
    np.testing.assert_array_equal(found.boxes, clean.boxes)
    np.testing.assert_array_equal(found.scores, clean.scores)
    assert np.isfinite(found.boxes).all()
    assert caplog.text.count("non-finite boxes or scores") == 1  # said once, not every frame
    postprocess([raw], make_spec(), LETTERBOX, PostprocessOptions())
    assert caplog.text.count("non-finite boxes or scores") == 1
