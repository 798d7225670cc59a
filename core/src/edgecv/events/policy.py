"""Which detections become events: ``EventPolicy`` says what to keep, ``EventSelector`` applies it per frame.

Three kinds of event:

- ``detection``: every kept detection on every frame (the default);
- ``new_track``: with ``new_tracks_only``, the first kept sighting of each track id;
- ``zone_entry``: with a ``zone``, each time a track's box bottom-centre (where it stands) goes from
  outside the polygon, or unseen, to inside it. With ``new_tracks_only`` too, only a track's first entry.

Track-based kinds need a tracker. On detections without track ids a selector falls back to
``detection`` events for every kept detection (only those inside the zone when there is one), and
logs a warning once.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import attrs
import cv2
import numpy as np
import numpy.typing as npt

from edgecv.detections import Detections
from edgecv.errors import ConfigError
from edgecv.events.model import Event
from edgecv.validation import unknown_names

log = logging.getLogger(__name__)

Point = tuple[float, float]
TRACK_MEMORY = 100_000
"""Track ids a selector remembers (most recent first): bounds its memory over months of video."""
ZONE_HINT = "Write the zone as x1,y1;x2,y2;x3,y3 in frame pixels (at least 3 points)."


def _as_classes(value: Iterable[str] | None) -> frozenset[str] | None:
    return None if value is None else frozenset(value)


def _as_zone(value: Iterable[Iterable[float]] | None) -> tuple[Point, ...] | None:
    if value is None:
        return None
    points = []
    for point in value:
        x, y = (float(v) for v in point)
        points.append((x, y))
    return tuple(points)


def _area(zone: tuple[Point, ...]) -> float:
    """Shoelace formula: zero for a zone whose points are all on one line."""
    pairs = zip(zone, zone[1:] + zone[:1], strict=True)
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in pairs)) / 2


@attrs.frozen
class EventPolicy:
    """What becomes an event. ``classes`` holds labels (a class id written as text matches too);
    ``None`` keeps every class. ``zone`` is a polygon in frame pixels."""

    classes: frozenset[str] | None = attrs.field(default=None, converter=_as_classes)
    min_score: float = attrs.field(default=0.5, converter=float)
    new_tracks_only: bool = False
    zone: tuple[Point, ...] | None = attrs.field(default=None, converter=_as_zone)

    def __attrs_post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(
                f"The event score threshold must be in [0, 1], got {self.min_score}", "Pass e.g. 0.5."
            )
        if self.classes is not None and not self.classes:
            raise ConfigError("The event classes are empty", "Name at least one label, e.g. person,car.")
        if self.zone is not None:
            if len(self.zone) < 3:
                raise ConfigError(f"The event zone has {len(self.zone)} points, a polygon needs 3", ZONE_HINT)
            if not all(math.isfinite(v) for point in self.zone for v in point):
                raise ConfigError("The event zone has a non-finite coordinate", ZONE_HINT)
            if _area(self.zone) == 0:
                raise ConfigError("The event zone has no area: its points lie on one line", ZONE_HINT)

    @classmethod
    def parse(
        cls,
        classes: str | None = None,
        min_score: float = 0.5,
        new_tracks_only: bool = False,
        zone: str | None = None,
    ) -> EventPolicy:
        """From option text (``classes`` "person,car", ``zone`` "x1,y1;x2,y2;x3,y3"); else ``ConfigError``."""
        labels = None
        if classes is not None:
            labels = frozenset(label.strip() for label in classes.split(",") if label.strip())
            if not labels:
                raise ConfigError(
                    f"No class names in {classes!r}", "Name labels separated by commas, e.g. person,car."
                )
        return cls(
            classes=labels,
            min_score=min_score,
            new_tracks_only=new_tracks_only,
            zone=None if zone is None else parse_zone(zone),
        )

    def check_classes(self, names: Sequence[str]) -> None:
        """``ConfigError`` when ``classes`` holds a label (or id) the model does not have: a typo
        such as ``persn`` would otherwise make no event, ever. Close matches are suggested."""
        if self.classes is None:
            return
        known = set(names) | {str(i) for i in range(len(names))}
        unknown = self.classes - known
        if unknown:
            raise unknown_names(
                "event class",
                unknown,
                names,
                "--event-classes (EventPolicy.classes) takes the model's labels or class ids.",
                "event classes",
            )

    def keeps(self, label: str, class_id: int, score: float) -> bool:
        if score < self.min_score:
            return False
        return self.classes is None or label in self.classes or str(class_id) in self.classes


def parse_zone(text: str) -> tuple[Point, ...]:
    """``"x1,y1;x2,y2;x3,y3"`` → points; ``ConfigError`` names the part it cannot read."""
    parts = [part.strip() for part in text.strip().rstrip(";").split(";")]
    points = []
    for part in parts:
        numbers = [value.strip() for value in part.split(",")]
        try:
            if len(numbers) != 2:
                raise ValueError(part)
            points.append((float(numbers[0]), float(numbers[1])))
        except ValueError:
            raise ConfigError(f"Cannot read the event zone point {part!r} in {text!r}", ZONE_HINT) from None
    if len(points) < 3:
        raise ConfigError(f"The event zone {text!r} has {len(points)} points, a polygon needs 3", ZONE_HINT)
    return tuple(points)


class _Recent(OrderedDict[int, bool]):
    """A dict of the most recently touched track ids, forgetting the oldest beyond ``capacity``."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def touch(self, key: int, value: bool) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.capacity:
            self.popitem(last=False)


class EventSelector:
    """Applies a policy to successive frames of one source; remembers tracks between calls."""

    def __init__(
        self, policy: EventPolicy, model: str, source: str, *, track_memory: int = TRACK_MEMORY
    ) -> None:
        self.policy = policy
        self.model = model
        self.source = source
        self._announced = _Recent(track_memory)  # tracks that already had their new_track / first entry
        self._inside = _Recent(track_memory)  # each track's last zone state (True: inside)
        self._contour: npt.NDArray[np.float32] | None = None
        if policy.zone is not None:
            self._contour = np.asarray(policy.zone, dtype=np.float32).reshape(-1, 1, 2)
        self._warned = False
        self._checked_names: tuple[str, ...] | None = None

    def _in_zone(self, box: tuple[float, float, float, float]) -> bool:
        assert self._contour is not None
        foot = ((box[0] + box[2]) / 2, box[3])  # bottom-centre: where a person or vehicle stands
        return bool(cv2.pointPolygonTest(self._contour, foot, False) >= 0)  # on the edge counts as inside

    def select(self, detections: Detections, *, frame: int, time: float) -> list[Event]:
        """The events in one frame's ``detections``; ``time`` is the frame's capture time (unix seconds)."""
        policy = self.policy
        # On the first frame the model's names are known (unknown ones, no names, are not checked).
        if detections.names and detections.names is not self._checked_names:
            policy.check_classes(detections.names)
            self._checked_names = detections.names
        tracked = detections.track_ids is not None
        if not tracked and not self._warned and (policy.new_tracks_only or policy.zone is not None):
            log.warning(
                "Detections from %s have no track ids: new-track and zone-entry events need a tracker; "
                "logging every kept detection%s instead",
                self.source,
                " inside the zone" if policy.zone is not None else "",
            )
            self._warned = True
        events = []
        for detection in detections:
            if not policy.keeps(detection.label, detection.class_id, detection.score):
                continue
            track = detection.track_id
            kind = (
                self._kind(track, detection.box)
                if tracked and track is not None
                else self._untracked(detection.box)
            )
            if kind is None:
                continue
            events.append(
                Event.new(
                    time=time,
                    kind=kind,
                    model=self.model,
                    source=self.source,
                    frame=frame,
                    label=detection.label,
                    class_id=detection.class_id,
                    score=round(detection.score, 5),
                    box=tuple(round(v, 2) for v in detection.box),
                    track_id=track,
                )
            )
        return events

    def _untracked(self, box: tuple[float, float, float, float]) -> str | None:
        return "detection" if self._contour is None or self._in_zone(box) else None

    def _kind(self, track: int, box: tuple[float, float, float, float]) -> str | None:
        """The event kind for a kept sighting of ``track``, or ``None``; updates what is remembered."""
        if self._contour is not None:
            inside = self._in_zone(box)
            was_inside = self._inside.get(track, False)
            self._inside.touch(track, inside)
            if not inside or was_inside:
                return None
            if self.policy.new_tracks_only and not self._first_time(track):
                return None
            return "zone_entry"
        if self.policy.new_tracks_only:
            return "new_track" if self._first_time(track) else None
        return "detection"

    def _first_time(self, track: int) -> bool:
        seen = track in self._announced
        self._announced.touch(track, True)  # also keeps a track that is still around among the remembered
        return not seen
