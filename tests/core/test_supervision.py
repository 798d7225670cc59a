"""``Detections.to_supervision`` / ``from_supervision``: supervision's annotators and zones on
edgecv's detections, and back. supervision is optional: these run where it is installed (the dev
requirements install it), and its absence is one clear error."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import cv2
import numpy as np
import numpy.typing as npt
import pytest

import edgecv
from edgecv.detections import Detections
from edgecv.errors import ConfigError
from edgecv.runtime.tracker import ByteTracker

sv = pytest.importorskip("supervision")


@pytest.fixture(scope="module")
def bus(bus_path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(bus_path))
    assert image is not None
    return image


@pytest.fixture(scope="module")
def found(models: Path, bus: npt.NDArray[np.uint8]) -> Detections:
    """The reference model on bus.jpg: four people and a bus, with track ids from edgecv's tracker."""
    model = edgecv.load(models / "yolov8n_fp32_dequant.onnx")
    detections = model.predict(bus, source="bus.jpg")
    tracked = ByteTracker().update(detections)
    assert len(tracked) >= 4 and tracked.track_ids is not None
    return tracked


def test_round_trip_keeps_boxes_scores_classes_names_and_track_ids(found: Detections) -> None:
    converted = found.to_supervision()
    assert isinstance(converted, sv.Detections)
    np.testing.assert_array_equal(converted.xyxy, found.boxes)
    np.testing.assert_array_equal(converted.confidence, found.scores)
    np.testing.assert_array_equal(converted.class_id, found.class_ids)
    np.testing.assert_array_equal(converted.tracker_id, found.track_ids)
    assert list(converted.data["class_name"]) == found.labels
    assert {"person", "bus"} <= set(converted.data["class_name"])

    back = Detections.from_supervision(
        converted, found.names, image_shape=found.image_shape, source="bus.jpg"
    )
    np.testing.assert_array_equal(back.boxes, found.boxes)
    np.testing.assert_array_equal(back.scores, found.scores)
    np.testing.assert_array_equal(back.class_ids, found.class_ids)
    np.testing.assert_array_equal(back.track_ids, found.track_ids)  # type: ignore[arg-type]
    assert back.names == found.names
    assert back.to_dict() == attrs.evolve(found, timings=None).to_dict()  # labels, boxes, ids, size


def test_labels_come_from_class_name_without_names(found: Detections) -> None:
    back = Detections.from_supervision(found.to_supervision())
    assert back.labels == found.labels
    bus_id = found.names.index("bus")
    assert back.names[bus_id] == "bus" and back.names[1] == "1"  # no box of class 1: its number


def test_untracked_and_empty_detections_round_trip(found: Detections) -> None:
    untracked = Detections(found.boxes, found.scores, found.class_ids, names=found.names)
    assert untracked.to_supervision().tracker_id is None
    assert Detections.from_supervision(untracked.to_supervision()).track_ids is None

    empty = Detections.empty(found.names, (1080, 810)).to_supervision()
    assert len(empty) == 0 and empty.xyxy.shape == (0, 4)
    back = Detections.from_supervision(empty, found.names, image_shape=(1080, 810))
    assert len(back) == 0 and back.names == found.names and back.image_shape == (1080, 810)


def test_ground_truth_without_confidence_scores_one() -> None:
    truth = sv.Detections(xyxy=np.array([[1.0, 2.0, 30.0, 40.0]]), class_id=np.array([3]))
    back = Detections.from_supervision(truth, ("a", "b", "c", "car"))
    assert back[0].score == 1.0 and back[0].label == "car"
    with pytest.raises(ValueError, match="class_id"):
        Detections.from_supervision(sv.Detections(xyxy=np.array([[1.0, 2.0, 3.0, 4.0]])))


def test_supervision_annotators_and_zones_work_on_edgecv_detections(
    found: Detections, bus: npt.NDArray[np.uint8]
) -> None:
    detections = found.to_supervision()
    labels = [f"#{t} {name} {score:.2f}" for t, name, score in zip(
        detections.tracker_id, detections.data["class_name"], detections.confidence, strict=True
    )]  # fmt: skip
    annotated = sv.BoxAnnotator(thickness=4).annotate(bus.copy(), detections)
    annotated = sv.LabelAnnotator().annotate(annotated, detections, labels=labels)
    for x1, y1, _, y2 in found.boxes.astype(int):  # each box's left edge is drawn
        middle = (y1 + y2) // 2
        assert (annotated[middle, x1 : x1 + 2] != bus[middle, x1 : x1 + 2]).any()
    assert (annotated[:5, 400:450] == bus[:5, 400:450]).all()  # far from any box: untouched

    left_half = sv.PolygonZone(np.array([[0, 0], [400, 0], [400, 1080], [0, 1080]]))
    inside = left_half.trigger(detections)  # bottom centres
    expected = [(x1 + x2) / 2 < 400 for x1, _, x2, _ in found.boxes]
    assert inside.tolist() == expected and sum(expected) >= 2


def test_without_supervision_one_clear_error(found: Detections, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "supervision", None)  # what an environment without it imports
    with pytest.raises(ConfigError) as raised:
        found.to_supervision()
    message = str(raised.value)
    assert "\n" not in message
    assert "needs the supervision package" in message and message.endswith("pip install supervision")
