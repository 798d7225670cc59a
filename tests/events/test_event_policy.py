"""EventPolicy / EventSelector: which detections become events, frame after frame."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pytest

from edgecv.detections import Detections
from edgecv.errors import ConfigError
from edgecv.events.policy import EventPolicy, EventSelector

NAMES = ("person", "car", "dog")
SQUARE = ((100.0, 100.0), (200.0, 100.0), (200.0, 200.0), (100.0, 200.0))


def dets(
    boxes: Sequence[Sequence[float]],
    scores: Sequence[float],
    classes: Sequence[int],
    tracks: Sequence[int] | None = None,
) -> Detections:
    return Detections(
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(scores),
        np.array(classes),
        names=NAMES,
        track_ids=None if tracks is None else np.array(tracks),
    )


def foot_at(x: float, y: float) -> list[float]:
    """A 20x60 box whose bottom-centre is (x, y)."""
    return [x - 10, y - 60, x + 10, y]


def test_classes_and_min_score_filter_detections() -> None:
    selector = EventSelector(
        EventPolicy(classes=frozenset({"person", "2"}), min_score=0.5), "yolov8n", "cam0"
    )
    frame = dets(
        [[0, 0, 10, 10], [1, 1, 11, 11], [2, 2, 12, 12], [3, 3, 13, 13], [4, 4, 14, 14]],
        [0.9, 0.49, 0.8, 0.7, 0.5],
        [0, 0, 1, 2, 0],
    )
    events = selector.select(frame, frame=12, time=1700000000.5)
    # person 0.9 kept, person 0.49 below the threshold, car not listed, dog listed by class id, 0.5 inclusive.
    assert [(e.label, e.score) for e in events] == [("person", 0.9), ("dog", 0.7), ("person", 0.5)]
    first = events[0]
    assert (first.kind, first.model, first.source, first.frame, first.time) == (
        "detection",
        "yolov8n",
        "cam0",
        12,
        1700000000.5,
    )
    assert (first.class_id, first.box, first.track_id) == (0, (0.0, 0.0, 10.0, 10.0), None)
    assert len({e.id for e in events}) == 3 and all(len(e.id) == 32 for e in events)


def test_default_policy_keeps_every_class_and_emits_every_frame() -> None:
    selector = EventSelector(EventPolicy(), "m", "s")
    frame = dets([[0, 0, 5, 5], [0, 0, 6, 6]], [0.6, 0.7], [1, 2], tracks=[4, 5])
    for index in range(3):
        events = selector.select(frame, frame=index, time=float(index))
        assert [(e.kind, e.label, e.track_id, e.frame) for e in events] == [
            ("detection", "car", 4, index),
            ("detection", "dog", 5, index),
        ]


def test_new_tracks_only_emits_each_track_once() -> None:
    selector = EventSelector(EventPolicy(new_tracks_only=True), "m", "s")
    box = [0, 0, 10, 10]
    frames = [
        dets([box, box], [0.9, 0.9], [0, 1], tracks=[1, 2]),
        dets([box, box, box], [0.9, 0.9, 0.9], [0, 1, 0], tracks=[1, 2, 3]),
        dets([box, box], [0.3, 0.9], [0, 0], tracks=[4, 1]),  # track 4 first seen below the threshold
        dets([box], [0.8], [0], tracks=[4]),
        dets([], [], [], tracks=[]),
        dets([box, box], [0.9, 0.9], [0, 1], tracks=[1, 2]),
    ]
    got = [
        [(e.kind, e.track_id) for e in selector.select(f, frame=i, time=0.0)] for i, f in enumerate(frames)
    ]
    assert got == [
        [("new_track", 1), ("new_track", 2)],
        [("new_track", 3)],
        [],
        [("new_track", 4)],
        [],
        [],
    ]


def test_track_memory_is_bounded() -> None:
    selector = EventSelector(EventPolicy(new_tracks_only=True), "m", "s", track_memory=2)
    box = [0, 0, 10, 10]
    for track in (1, 2, 3):
        assert len(selector.select(dets([box], [0.9], [0], tracks=[track]), frame=0, time=0.0)) == 1
    # Track 1 was the least recently seen of three with room for two: it is new again.
    again = selector.select(dets([box], [0.9], [0], tracks=[1]), frame=1, time=0.0)
    assert [(e.kind, e.track_id) for e in again] == [("new_track", 1)]


def test_zone_entry_when_a_track_moves_in_out_and_back_in() -> None:
    selector = EventSelector(EventPolicy(zone=SQUARE), "m", "s")
    path = [(50, 150), (150, 150), (160, 160), (250, 150), (150, 190), (150, 190)]
    entries = []
    for index, (x, y) in enumerate(path):
        events = selector.select(dets([foot_at(x, y)], [0.9], [0], tracks=[7]), frame=index, time=0.0)
        entries += [(e.frame, e.kind, e.track_id) for e in events]
    assert entries == [(1, "zone_entry", 7), (4, "zone_entry", 7)]


def test_zone_uses_the_box_bottom_centre() -> None:
    selector = EventSelector(EventPolicy(zone=SQUARE), "m", "s")
    # Feet in the zone, box centre above it: an entry. Box centre in the zone, feet below it: none.
    standing_in = [140, 20, 160, 150]
    reaching_in = [140, 120, 160, 260]
    events = selector.select(
        dets([standing_in, reaching_in], [0.9, 0.9], [0, 0], tracks=[1, 2]), frame=0, time=0.0
    )
    assert [(e.kind, e.track_id) for e in events] == [("zone_entry", 1)]  # unseen → inside counts as entering


def test_zone_with_new_tracks_only_reports_a_tracks_first_entry() -> None:
    selector = EventSelector(EventPolicy(zone=SQUARE, new_tracks_only=True), "m", "s")
    path = [(50, 150), (150, 150), (250, 150), (150, 150)]
    entries = []
    for index, (x, y) in enumerate(path):
        events = selector.select(dets([foot_at(x, y)], [0.9], [0], tracks=[3]), frame=index, time=0.0)
        entries += [(e.frame, e.kind) for e in events]
    assert entries == [(1, "zone_entry")]


def test_without_track_ids_every_kept_detection_is_an_event(caplog: pytest.LogCaptureFixture) -> None:
    new_only = EventSelector(EventPolicy(new_tracks_only=True), "m", "cam0")
    zoned = EventSelector(EventPolicy(zone=SQUARE), "m", "cam1")
    frame = dets([foot_at(150, 150), foot_at(50, 50)], [0.9, 0.9], [0, 1])  # no tracker
    with caplog.at_level(logging.WARNING, logger="edgecv.events.policy"):
        for index in range(2):
            assert [e.kind for e in new_only.select(frame, frame=index, time=0.0)] == [
                "detection",
                "detection",
            ]
            inside = zoned.select(frame, frame=index, time=0.0)
            assert [(e.kind, e.label, e.track_id) for e in inside] == [("detection", "person", None)]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # once per selector, not per frame
    assert "cam0 have no track ids" in warnings[0] and "logging every kept detection instead" in warnings[0]
    assert "every kept detection inside the zone instead" in warnings[1]


def test_parse_reads_option_text() -> None:
    policy = EventPolicy.parse(" person, car ,", 0.4, True, " 0,0; 10.5,0 ;10,10;")
    assert policy == EventPolicy(
        classes=frozenset({"person", "car"}),
        min_score=0.4,
        new_tracks_only=True,
        zone=((0.0, 0.0), (10.5, 0.0), (10.0, 10.0)),
    )
    assert EventPolicy.parse(None, 0.5, False, None) == EventPolicy()


ZONE_HINT = "Write the zone as x1,y1;x2,y2;x3,y3 in frame pixels (at least 3 points)."


@pytest.mark.parametrize(
    ("classes", "min_score", "zone", "message"),
    [
        (None, 0.5, "0,0;10,0", f"The event zone '0,0;10,0' has 2 points, a polygon needs 3. {ZONE_HINT}"),
        (None, 0.5, "0,0;a,1;2,2", f"Cannot read the event zone point 'a,1' in '0,0;a,1;2,2'. {ZONE_HINT}"),
        (None, 0.5, "0,0;1;2,2", f"Cannot read the event zone point '1' in '0,0;1;2,2'. {ZONE_HINT}"),
        (
            None,
            0.5,
            "0,0;1,2,3;2,2",
            f"Cannot read the event zone point '1,2,3' in '0,0;1,2,3;2,2'. {ZONE_HINT}",
        ),
        (None, 0.5, "", f"Cannot read the event zone point '' in ''. {ZONE_HINT}"),
        (None, 0.5, "0,0;1,1;2,2", f"The event zone has no area: its points lie on one line. {ZONE_HINT}"),
        (None, 0.5, "0,0;nan,1;2,2", f"The event zone has a non-finite coordinate. {ZONE_HINT}"),
        (" , ", 0.5, None, "No class names in ' , '. Name labels separated by commas, e.g. person,car."),
        (None, 1.5, None, "The event score threshold must be in [0, 1], got 1.5. Pass e.g. 0.5."),
        (None, float("nan"), None, "The event score threshold must be in [0, 1], got nan. Pass e.g. 0.5."),
    ],
)
def test_parse_errors(classes: str | None, min_score: float, zone: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        EventPolicy.parse(classes, min_score, False, zone)
    assert str(error.value) == message


def test_policy_checks_values_given_directly() -> None:
    with pytest.raises(ConfigError, match="has 2 points"):
        EventPolicy(zone=((0, 0), (1, 1)))
    with pytest.raises(ConfigError, match="The event classes are empty"):
        EventPolicy(classes=frozenset())
