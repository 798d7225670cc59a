"""ByteTrack-style multi-object tracking: stable ids across frames, and boxes for frames without inference.

``edgecv run --skip K --track`` infers on every K-th frame only. On those frames ``ByteTracker.update``
associates the detections with the tracks; on the frames in between ``ByteTracker.predict`` moves every
track with its Kalman filter, so the video keeps boxes and ids at the camera's frame rate.

Association follows ByteTrack (Zhang et al., 2022): high-score detections first, then low-score ones
for the tracks still unmatched, so an occluded person whose score drops keeps its id. The filter is
the constant-velocity Kalman filter of DeepSORT/ByteTrack on (cx, cy, aspect, height), stepped once
per video frame, so its velocities are in pixels per frame whatever the skip.
"""

from __future__ import annotations

import logging

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.detections import Detections
from edgecv.errors import ConfigError

logger = logging.getLogger(__name__)

Array = npt.NDArray[np.float64]

# Process and measurement noise grow with the box height (DeepSORT's weights): a near, tall person
# moves more pixels per frame than a far one.
_STD_POSITION = 1.0 / 20
_STD_VELOCITY = 1.0 / 160
_MOTION = np.eye(8)
_MOTION[:4, 4:] = np.eye(4)  # x' = x + v, one video frame per step
_OBSERVE = np.eye(4, 8)


@attrs.frozen
class TrackerConfig:
    """Thresholds of the tracker; scores are the detector's, IoU after Kalman prediction."""

    high_score: float = 0.5
    """Detections at or above this score take part in the first association stage."""
    low_score: float = 0.1
    """Detections in [low_score, high_score) only keep already-tracked objects alive (second stage)."""
    new_track_score: float = 0.6
    """An unmatched detection starts a new track only at or above this score."""
    match_iou: float = 0.2
    """Minimum (buffered) IoU between a predicted track box and a detection to associate them."""
    match_buffer: float = 0.3
    """Both boxes grow by this fraction of their size on every side before the IoU (C-BIoU, Yang et al.
    2023): with inference every few frames a walker moves about a box width between inferences, and
    plain IoU of the new box with the prediction (zero velocity right after a track starts) is ~0."""
    max_lost_frames: int = 30
    """Video frames (not inferences) a track may go unmatched before it is dropped."""
    class_aware: bool = True
    """Associate only boxes of the same class."""

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.low_score <= self.high_score <= 1:
            raise ConfigError(
                f"tracker needs 0 <= low_score <= high_score <= 1, got {self.low_score}, {self.high_score}",
                "Lower low_score or raise high_score.",
            )
        if not 0 <= self.match_iou <= 1 or self.match_buffer < 0 or self.max_lost_frames < 0:
            raise ConfigError(
                f"tracker match_iou={self.match_iou}, match_buffer={self.match_buffer}, "
                f"max_lost_frames={self.max_lost_frames} out of range",
                "Use match_iou in [0, 1], match_buffer >= 0 and max_lost_frames >= 0.",
            )


def box_iou(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> Array:
    """IoU of every box in ``a`` [N, 4] with every box in ``b`` [M, 4] (xyxy), as [N, M]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def grow_boxes(boxes: npt.NDArray[np.floating], fraction: float) -> Array:
    """Boxes (xyxy) enlarged by ``fraction`` of their width and height on every side."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    margin = np.stack([-width, -height, width, height], axis=1) * fraction
    return boxes + margin


def greedy_match(iou: Array, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, column) taken highest IoU first, each row and column at most once, IoU >= threshold.

    Greedy instead of Hungarian keeps the module numpy-only (no scipy/lap); with the few objects of an
    edge video the two rarely differ, and where they do greedy keeps the more-overlapping pair.
    """
    pairs: list[tuple[int, int]] = []
    if iou.size == 0:
        return pairs
    rows_used = np.zeros(iou.shape[0], dtype=bool)
    cols_used = np.zeros(iou.shape[1], dtype=bool)
    order = np.argsort(-iou, axis=None, kind="stable")
    rows, cols = np.unravel_index(order, iou.shape)
    for row, col in zip(rows, cols, strict=True):
        if iou[row, col] < threshold or iou[row, col] <= 0:
            break
        if not rows_used[row] and not cols_used[col]:
            rows_used[row] = cols_used[col] = True
            pairs.append((int(row), int(col)))
    return pairs


def _to_xyah(box: npt.NDArray[np.floating]) -> Array:
    x1, y1, x2, y2 = (float(v) for v in box)
    height = max(y2 - y1, 1e-3)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / height, height])


def _to_xyxy(xyah: Array) -> Array:
    cx, cy, aspect, height = xyah[:4]
    half_w, half_h = aspect * height / 2, height / 2
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])


@attrs.define
class _Track:
    """One object: Kalman state (mean [8], covariance [8, 8]) plus what the last detection said."""

    track_id: int
    mean: Array
    covariance: Array
    score: float
    class_id: int
    last_matched: int
    """Frame number of the last update that matched this track."""
    tracked: bool = True
    """Matched at the last update; ``False`` while lost."""

    @classmethod
    def start(
        cls, track_id: int, box: npt.NDArray[np.floating], score: float, class_id: int, frame: int
    ) -> _Track:
        xyah = _to_xyah(box)
        height = xyah[3]
        std = np.array([2 * _STD_POSITION] * 2 + [0.0, 2 * _STD_POSITION] + [10 * _STD_VELOCITY] * 4) * height
        std[2], std[6] = 1e-2, 1e-5  # aspect ratio and its velocity do not scale with height
        mean = np.concatenate([xyah, np.zeros(4)])
        return cls(track_id, mean, np.diag(std**2), score, class_id, frame)

    def predict(self) -> None:
        if not self.tracked:
            self.mean[7] = 0.0  # a lost box should not keep growing or shrinking (as ByteTrack)
        height = self.mean[3]
        std = np.array([_STD_POSITION] * 4 + [_STD_VELOCITY] * 4) * height
        std[2], std[6] = 1e-2, 1e-5
        self.mean = _MOTION @ self.mean
        self.covariance = _MOTION @ self.covariance @ _MOTION.T + np.diag(std**2)

    def update(self, box: npt.NDArray[np.floating], score: float, class_id: int, frame: int) -> None:
        height = self.mean[3]
        noise = np.array([_STD_POSITION * height] * 4)
        noise[2] = 1e-1
        projected_cov = _OBSERVE @ self.covariance @ _OBSERVE.T + np.diag(noise**2)
        # Kalman gain K = P H^T S^-1, solved rather than inverted: S is symmetric positive definite.
        gain = np.linalg.solve(projected_cov, _OBSERVE @ self.covariance).T
        self.mean = self.mean + gain @ (_to_xyah(box) - _OBSERVE @ self.mean)
        self.covariance = self.covariance - gain @ projected_cov @ gain.T
        self.score, self.class_id, self.last_matched, self.tracked = score, class_id, frame, True

    @property
    def box(self) -> Array:
        return _to_xyxy(self.mean)


class ByteTracker:
    """Keeps ids of objects across video frames. Call exactly one of ``update``/``predict`` per frame.

    ``update`` takes the detections of a frame that was inferred; ``predict`` stands in for a skipped
    frame. Track ids start at 1 and are never reused.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: list[_Track] = []
        self._frame = 0
        self._next_id = 1
        self._last: Detections = Detections.empty()

    @property
    def active_count(self) -> int:
        """Tracks matched at the last update (the ones ``predict`` returns)."""
        return sum(t.tracked for t in self._tracks)

    @property
    def total_created(self) -> int:
        """Tracks started since construction or ``reset`` (the highest id handed out)."""
        return self._next_id - 1

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (a new video)."""
        self._tracks.clear()
        self._frame = 0
        self._next_id = 1
        self._last = Detections.empty()

    def update(self, detections: Detections) -> Detections:
        """Associate one inferred frame's detections; return those on active tracks, ``track_ids`` set.

        Boxes are the detector's (not the filter's) and keep the input order; detections that match no
        track and score below ``new_track_score`` are left out.
        """
        cfg = self.config
        self._advance()
        self._last = detections
        boxes, scores, classes = detections.boxes, detections.scores, detections.class_ids
        track_of = np.zeros(len(detections), dtype=np.int64)  # 0 = not on a track

        high = np.flatnonzero(scores >= cfg.high_score)
        low = np.flatnonzero((scores >= cfg.low_score) & (scores < cfg.high_score))
        # Stage 1: confident detections against every track, lost ones included (re-identification).
        unmatched = self._associate(self._tracks, high, detections, track_of)
        # Stage 2: weak detections only against tracks that were followed until now (ByteTrack).
        self._associate([t for t in unmatched if t.tracked], low, detections, track_of)
        for track in self._tracks:
            if track.last_matched != self._frame:
                track.tracked = False
        for i in high[track_of[high] == 0]:
            if scores[i] >= cfg.new_track_score:
                track = _Track.start(self._next_id, boxes[i], float(scores[i]), int(classes[i]), self._frame)
                self._tracks.append(track)
                track_of[i] = self._next_id
                self._next_id += 1
        keep = np.flatnonzero(track_of)
        return attrs.evolve(detections[keep], track_ids=track_of[keep])

    def predict(
        self,
        image_shape: tuple[int, int] | None = None,
        names: tuple[str, ...] | None = None,
        source: str | None = None,
    ) -> Detections:
        """Advance one skipped frame; return the predicted boxes of the tracks matched at the last update.

        Boxes are clipped to ``image_shape`` (default: the last update's); a box entirely outside the
        image is left out. Scores and classes are those of each track's last detection; ``names`` and
        ``source`` default to the last update's, ``timings`` is ``None`` (nothing was inferred).
        """
        self._advance()
        height, width = image_shape if image_shape is not None else self._last.image_shape
        active = [t for t in self._tracks if t.tracked]
        boxes = np.array([t.box for t in active]).reshape(-1, 4)
        if height > 0 and width > 0:
            boxes = np.clip(boxes, 0, [width, height, width, height])
        visible = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return Detections(
            boxes[visible],
            np.array([t.score for t in active]).reshape(-1)[visible],
            np.array([t.class_id for t in active], dtype=np.int64).reshape(-1)[visible],
            names=self._last.names if names is None else names,
            image_shape=(height, width),
            source=self._last.source if source is None else source,
            track_ids=np.array([t.track_id for t in active], dtype=np.int64).reshape(-1)[visible],
        )

    def _advance(self) -> None:
        """Start a new video frame: drop tracks lost too long, move the others one frame on."""
        self._frame += 1
        limit = self._frame - self.config.max_lost_frames
        dropped = [t.track_id for t in self._tracks if not t.tracked and t.last_matched < limit]
        if dropped:
            logger.debug(
                "dropping tracks %s, unmatched for over %d frames", dropped, self.config.max_lost_frames
            )
            self._tracks = [t for t in self._tracks if t.tracked or t.last_matched >= limit]
        for track in self._tracks:
            track.predict()

    def _associate(
        self,
        tracks: list[_Track],
        candidates: npt.NDArray[np.intp],
        dets: Detections,
        track_of: npt.NDArray[np.int64],
    ) -> list[_Track]:
        """Match ``tracks`` to detections ``candidates``, update the matched, return the unmatched tracks."""
        if not tracks or len(candidates) == 0:
            return tracks
        buffer = self.config.match_buffer
        iou = box_iou(
            grow_boxes(np.array([t.box for t in tracks]), buffer), grow_boxes(dets.boxes[candidates], buffer)
        )
        if self.config.class_aware:
            same_class = (
                np.array([t.class_id for t in tracks])[:, None] == dets.class_ids[candidates][None, :]
            )
            iou = np.where(same_class, iou, 0.0)
        matched: set[int] = set()
        for row, col in greedy_match(iou, self.config.match_iou):
            i = int(candidates[col])
            tracks[row].update(dets.boxes[i], float(dets.scores[i]), int(dets.class_ids[i]), self._frame)
            track_of[i] = tracks[row].track_id
            matched.add(row)
        return [t for row, t in enumerate(tracks) if row not in matched]
