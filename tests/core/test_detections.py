"""Detections: container behaviour, filtering and serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecv.detections import Detection, Detections, StageTimings

NAMES = ("person", "bicycle", "car")


@pytest.fixture
def dets() -> Detections:
    return Detections(
        boxes=[[0, 0, 10, 10], [5, 5, 20, 25], [1.25, 2.5, 3.75, 4.125], [100, 100, 200, 150]],
        scores=[0.9, 0.75, 0.5, 0.3],
        class_ids=[0, 2, 0, 1],
        names=NAMES,
        image_shape=(480, 640),
        source="street.jpg",
        timings=StageTimings(preprocess=1.23456, infer=10.0, postprocess=0.5),
    )


def test_arrays_are_normalised_to_dtypes_and_shapes(dets: Detections) -> None:
    assert dets.boxes.dtype == np.float32 and dets.boxes.shape == (4, 4)
    assert dets.scores.dtype == np.float32 and dets.scores.shape == (4,)
    assert dets.class_ids.dtype == np.int64 and dets.class_ids.shape == (4,)


def test_len_and_iteration_yield_detection_objects(dets: Detections) -> None:
    assert len(dets) == 4
    items = list(dets)
    assert all(isinstance(d, Detection) for d in items)
    assert [d.label for d in items] == ["person", "car", "person", "bicycle"]
    assert [d.class_id for d in items] == [0, 2, 0, 1]
    assert items[1].box == (5.0, 5.0, 20.0, 25.0)
    assert items[0].score == pytest.approx(0.9)
    assert isinstance(items[0].class_id, int) and isinstance(items[0].box[0], float)


def test_int_and_negative_indexing(dets: Detections) -> None:
    assert dets[0].label == "person"
    assert dets[-1].label == "bicycle"
    assert dets[-1] == dets[3]
    assert dets[np.int64(2)].box == pytest.approx((1.25, 2.5, 3.75, 4.125))


@pytest.mark.parametrize("index", [4, -5, 100])
def test_out_of_range_index_raises_index_error(dets: Detections, index: int) -> None:
    with pytest.raises(IndexError):
        dets[index]


def test_slice_returns_detections_keeping_metadata(dets: Detections) -> None:
    head = dets[:2]
    assert isinstance(head, Detections)
    assert len(head) == 2
    assert head.labels == ["person", "car"]
    assert (head.names, head.image_shape, head.source, head.timings) == (
        dets.names,
        dets.image_shape,
        dets.source,
        dets.timings,
    )
    assert dets[::-1].labels == ["bicycle", "person", "car", "person"]
    assert len(dets[10:]) == 0


def test_boolean_mask_and_index_array_select(dets: Detections) -> None:
    masked = dets[dets.scores > 0.6]
    assert masked.labels == ["person", "car"]
    picked = dets[np.array([3, 0])]
    assert picked.labels == ["bicycle", "person"]
    np.testing.assert_array_equal(picked.boxes, [[100, 100, 200, 150], [0, 0, 10, 10]])
    assert dets[[1, 2]].labels == ["car", "person"]


def test_filter_by_min_score_is_inclusive(dets: Detections) -> None:
    assert dets.filter(min_score=0.5).labels == ["person", "car", "person"]
    assert len(dets.filter(min_score=0.95)) == 0


def test_filter_by_class_id_and_label(dets: Detections) -> None:
    assert dets.filter(classes=[0]).scores.tolist() == pytest.approx([0.9, 0.5])
    assert dets.filter(classes=["car"]).labels == ["car"]
    assert dets.filter(classes=["car", 1]).labels == ["car", "bicycle"]
    assert len(dets.filter(classes=["unicorn"])) == 0
    assert len(dets.filter(classes=[])) == 0


def test_filter_combines_score_and_class(dets: Detections) -> None:
    assert dets.filter(min_score=0.6, classes=["person"]).scores.tolist() == pytest.approx([0.9])


def test_unknown_class_id_gets_its_number_as_label() -> None:
    d = Detections([[0, 0, 1, 1]], [0.5], [7], names=("a", "b"))
    assert d.labels == ["7"]
    assert d[0].label == "7"


def test_to_dict_shape_and_rounding(dets: Detections) -> None:
    data = dets.to_dict()
    assert set(data) == {"source", "width", "height", "detections", "timing_ms"}
    assert (data["source"], data["width"], data["height"]) == ("street.jpg", 640, 480)
    assert data["timing_ms"] == {"preprocess": 1.235, "infer": 10.0, "postprocess": 0.5}
    assert len(data["detections"]) == 4
    first = data["detections"][0]
    assert set(first) == {"label", "class_id", "score", "box"}
    assert first == {
        "label": "person",
        "class_id": 0,
        "score": pytest.approx(0.9),
        "box": [0.0, 0.0, 10.0, 10.0],
    }
    assert data["detections"][2]["box"] == [1.25, 2.5, 3.75, 4.12]


def test_to_dict_without_timings_has_no_timing_key() -> None:
    d = Detections([[0, 0, 1, 1]], [0.5], [0], names=("a",), image_shape=(2, 3))
    assert "timing_ms" not in d.to_dict()


def test_to_json_round_trips_to_the_dict(dets: Detections) -> None:
    text = dets.to_json()
    assert json.loads(text) == json.loads(json.dumps(dets.to_dict()))
    assert json.loads(dets.to_json(indent=2))["detections"][1]["label"] == "car"


def test_empty_detections() -> None:
    empty = Detections.empty(names=NAMES, image_shape=(10, 20))
    assert len(empty) == 0
    assert list(empty) == []
    assert empty.boxes.shape == (0, 4)
    assert empty.to_dict()["detections"] == []
    assert json.loads(empty.to_json())["width"] == 20
    with pytest.raises(IndexError):
        empty[0]


@pytest.mark.parametrize(
    ("boxes", "scores", "class_ids"),
    [
        ([[0, 0, 1, 1], [0, 0, 2, 2]], [0.5], [0, 0]),
        ([[0, 0, 1, 1]], [0.5, 0.4], [0]),
        ([[0, 0, 1, 1]], [0.5], [0, 1]),
    ],
)
def test_mismatched_lengths_raise(boxes, scores, class_ids) -> None:
    with pytest.raises(ValueError, match="differ in length"):
        Detections(boxes, scores, class_ids)


def test_stage_timings_total() -> None:
    assert StageTimings(1.0, 2.0, 3.5).total == pytest.approx(6.5)
