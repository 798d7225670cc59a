"""Detections: boxes, scores and classes for one image, in original-image pixels."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.spec import to_tuple

if TYPE_CHECKING:  # an optional package: imported by to_supervision() only
    import supervision as sv


@attrs.frozen
class StageTimings:
    """Milliseconds spent in each pipeline stage for one image (measured in ``Model``)."""

    preprocess: float = 0.0
    infer: float = 0.0
    postprocess: float = 0.0

    @property
    def total(self) -> float:
        return self.preprocess + self.infer + self.postprocess

    def to_dict(self) -> dict[str, float]:
        return {
            "preprocess": round(self.preprocess, 3),
            "infer": round(self.infer, 3),
            "postprocess": round(self.postprocess, 3),
        }


@attrs.frozen
class Detection:
    """One box: ``box`` is (x1, y1, x2, y2) in original-image pixels."""

    box: tuple[float, float, float, float]
    score: float
    class_id: int
    label: str
    track_id: int | None = None
    """Set by a tracker (``edgecv.runtime``); ``None`` for a single-image prediction."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 5),
            "box": [round(v, 2) for v in self.box],
        }
        if self.track_id is not None:
            data["track_id"] = self.track_id
        return data


def _as_boxes(value: npt.ArrayLike) -> npt.NDArray[np.float32]:
    return np.asarray(value, dtype=np.float32).reshape(-1, 4)


def _as_scores(value: npt.ArrayLike) -> npt.NDArray[np.float32]:
    return np.asarray(value, dtype=np.float32).reshape(-1)


def _as_class_ids(value: npt.ArrayLike) -> npt.NDArray[np.int64]:
    return np.asarray(value, dtype=np.int64).reshape(-1)


def _as_track_ids(value: npt.ArrayLike | None) -> npt.NDArray[np.int64] | None:
    return None if value is None else _as_class_ids(value)


@attrs.frozen(eq=False)
class Detections:
    """Detections on one image, sorted by score (highest first) when produced by the pipeline.

    ``boxes`` is float32 [N, 4] xyxy in original-image pixels, ``scores`` float32 [N],
    ``class_ids`` int64 [N]; ``names`` maps class ids to labels. ``track_ids`` int64 [N] is set
    by a tracker (stable ids across video frames), else ``None``.
    """

    boxes: npt.NDArray[np.float32] = attrs.field(converter=_as_boxes)
    scores: npt.NDArray[np.float32] = attrs.field(converter=_as_scores)
    class_ids: npt.NDArray[np.int64] = attrs.field(converter=_as_class_ids)
    names: tuple[str, ...] = attrs.field(default=(), converter=to_tuple)
    image_shape: tuple[int, int] = (0, 0)
    """(height, width) of the original image."""
    source: str | None = None
    timings: StageTimings | None = None
    track_ids: npt.NDArray[np.int64] | None = attrs.field(default=None, converter=_as_track_ids)

    def __attrs_post_init__(self) -> None:
        if not len(self.boxes) == len(self.scores) == len(self.class_ids):
            raise ValueError(
                f"boxes, scores and class_ids differ in length: "
                f"{len(self.boxes)}, {len(self.scores)}, {len(self.class_ids)}"
            )
        if self.track_ids is not None and len(self.track_ids) != len(self.scores):
            raise ValueError(f"track_ids has {len(self.track_ids)} entries for {len(self.scores)} detections")

    @classmethod
    def empty(cls, names: Sequence[str] = (), image_shape: tuple[int, int] = (0, 0)) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0), names=tuple(names), image_shape=image_shape)

    @property
    def labels(self) -> list[str]:
        return [self.label_of(int(c)) for c in self.class_ids]

    def label_of(self, class_id: int) -> str:
        return self.names[class_id] if 0 <= class_id < len(self.names) else str(class_id)

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Iterator[Detection]:
        for i in range(len(self)):
            yield self._item(i)

    @overload
    def __getitem__(self, index: int) -> Detection: ...

    @overload
    def __getitem__(self, index: slice | npt.NDArray[Any] | Sequence[int]) -> Detections: ...

    def __getitem__(self, index: int | slice | npt.NDArray[Any] | Sequence[int]) -> Detection | Detections:
        if isinstance(index, (int, np.integer)):
            position = int(index)
            if not -len(self) <= position < len(self):
                raise IndexError(f"detection index {position} out of range for {len(self)} detections")
            return self._item(position % len(self))
        return self._select(index)

    def _item(self, i: int) -> Detection:
        x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
        class_id = int(self.class_ids[i])
        track_id = None if self.track_ids is None else int(self.track_ids[i])
        return Detection((x1, y1, x2, y2), float(self.scores[i]), class_id, self.label_of(class_id), track_id)

    def _select(self, index: slice | npt.NDArray[Any] | Sequence[int]) -> Detections:
        return attrs.evolve(
            self,
            boxes=self.boxes[index],
            scores=self.scores[index],
            class_ids=self.class_ids[index],
            track_ids=None if self.track_ids is None else self.track_ids[index],
        )

    def filter(
        self, min_score: float | None = None, classes: Iterable[int | str] | None = None
    ) -> Detections:
        """Keep detections scoring at least ``min_score`` whose class id or label is in ``classes``."""
        keep = np.ones(len(self), dtype=bool)
        if min_score is not None:
            keep &= self.scores >= min_score
        if classes is not None:
            wanted = {self.names.index(c) if isinstance(c, str) and c in self.names else c for c in classes}
            ids = [c for c in wanted if isinstance(c, (int, np.integer))]
            keep &= np.isin(self.class_ids, ids)
        return self._select(keep)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "source": self.source,
            "height": self.image_shape[0],
            "width": self.image_shape[1],
            "detections": [d.to_dict() for d in self],
        }
        if self.timings is not None:
            data["timing_ms"] = self.timings.to_dict()
        return data

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def to_supervision(self) -> sv.Detections:
        """These detections as supervision's ``sv.Detections``, for its annotators, zones and trackers.

        Boxes, scores, class ids and track ids (``tracker_id``) are copied; each box's label is in
        ``data["class_name"]``, as supervision's own converters put it. Needs the ``supervision``
        package (``pip install supervision``), which edgecv does not depend on.
        """
        try:
            import supervision as sv
        except ImportError as exc:
            from edgecv.backend import pip_hint
            from edgecv.errors import ConfigError

            raise ConfigError(
                "Detections.to_supervision() needs the supervision package, which is not installed",
                f"Install it: {pip_hint('supervision')}",
            ) from exc
        return sv.Detections(
            xyxy=self.boxes.copy(),
            confidence=self.scores.copy(),
            class_id=self.class_ids.copy(),
            tracker_id=None if self.track_ids is None else self.track_ids.copy(),
            data={"class_name": np.array(self.labels, dtype=str)},
        )

    @classmethod
    def from_supervision(
        cls,
        detections: sv.Detections,
        names: Sequence[str] | None = None,
        *,
        image_shape: tuple[int, int] = (0, 0),
        source: str | None = None,
    ) -> Detections:
        """Detections from supervision's ``sv.Detections`` (its ``xyxy``, ``confidence``,
        ``class_id`` and ``tracker_id``; masks are not kept), in the order given.

        ``names`` maps class ids to labels; without it they are read from ``data["class_name"]``
        where supervision has them (a class id with no name gets its number as label). Detections
        without a confidence (ground truth) score 1.0. Does not import supervision.
        """
        count = len(detections.xyxy)
        if detections.class_id is None:
            raise ValueError("these sv.Detections have no class_id; edgecv detections need one per box")
        class_ids = np.asarray(detections.class_id, dtype=np.int64).reshape(-1)
        scores = np.ones(count, np.float32) if detections.confidence is None else detections.confidence
        if names is None:
            names = _names_from(class_ids, detections.data.get("class_name"))
        return cls(
            detections.xyxy,
            scores,
            class_ids,
            names=tuple(names),
            image_shape=image_shape,
            source=source,
            track_ids=detections.tracker_id,
        )

    def __repr__(self) -> str:
        summary = ", ".join(f"{d.label} {d.score:.2f}" for d in list(self)[:8])
        more = f", +{len(self) - 8} more" if len(self) > 8 else ""
        return f"Detections({len(self)}: {summary}{more})"


def _names_from(class_ids: npt.NDArray[np.int64], class_names: Any) -> tuple[str, ...]:
    """Labels indexed by class id, from supervision's per-box ``class_name`` (ids without one: the number)."""
    if class_names is None or not len(class_ids) or class_ids.min() < 0:
        return ()
    names = [str(i) for i in range(int(class_ids.max()) + 1)]
    for class_id, name in zip(class_ids.tolist(), list(class_names), strict=True):
        names[class_id] = str(name)
    return tuple(names)
