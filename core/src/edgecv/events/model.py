"""Event: one detection worth keeping, as logged locally and sent to a sink."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

KINDS = ("detection", "new_track", "zone_entry")
"""``detection``: a kept detection on one frame; ``new_track``: the first sighting of a track;
``zone_entry``: a track's box bottom-centre entered the policy's zone."""

FIELDS = ("id", "time", "kind", "model", "source", "frame", "label", "class_id", "score", "box", "track_id")


_is_str = attrs.validators.instance_of(str)


def _as_box(value: Any) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in value)
    return (x1, y1, x2, y2)


@attrs.frozen
class Event:
    """A detection chosen by an ``EventPolicy``.

    ``id`` (uuid4 hex) is unique and is the idempotency key: a sink may receive an event twice
    (a batch re-sent after a lost acknowledgement) and de-duplicates by ``id``.
    """

    id: str = attrs.field(validator=attrs.validators.and_(_is_str, attrs.validators.min_len(1)))
    time: float = attrs.field(converter=float)
    """Unix seconds: wall time at which the frame was captured."""
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    model: str = attrs.field(validator=_is_str)
    source: str = attrs.field(validator=_is_str)
    frame: int = attrs.field(converter=int)
    label: str = attrs.field(validator=_is_str)
    class_id: int = attrs.field(converter=int)
    score: float = attrs.field(converter=float)
    box: tuple[float, float, float, float] = attrs.field(converter=_as_box)
    """(x1, y1, x2, y2) in frame pixels."""
    track_id: int | None = attrs.field(default=None, converter=attrs.converters.optional(int))

    @classmethod
    def new(cls, **fields: Any) -> Event:
        """An event with a fresh random ``id``; ``fields`` are the other attributes."""
        return cls(id=uuid.uuid4().hex, **fields)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``box`` is a list, ``track_id`` is ``None`` without tracking."""
        return {
            "id": self.id,
            "time": self.time,
            "kind": self.kind,
            "model": self.model,
            "source": self.source,
            "frame": self.frame,
            "label": self.label,
            "class_id": self.class_id,
            "score": self.score,
            "box": list(self.box),
            "track_id": self.track_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """The inverse of ``to_dict``; unknown keys are ignored (newer senders may add fields).

        Raises ``ValueError`` naming the first missing or unusable field.
        """
        missing = [name for name in FIELDS if name not in data and name != "track_id"]
        if missing:
            raise ValueError(f"event is missing {', '.join(repr(m) for m in missing)}")
        try:
            fields: dict[str, Any] = {name: data.get(name) for name in FIELDS}
            event = cls(**fields)
        except (TypeError, ValueError) as error:
            raise ValueError(f"event {data.get('id')!r} has an unusable field: {error}") from error
        if not math.isfinite(event.time) or not math.isfinite(event.score):
            raise ValueError(f"event {event.id!r} has a non-finite time or score")
        return event
