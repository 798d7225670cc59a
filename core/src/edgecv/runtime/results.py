"""``FrameResult``: what the runtime produces for every video frame."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.detections import Detections


@attrs.frozen(eq=False)
class FrameResult:
    """One frame out of the runtime.

    ``source`` names the video source as logs and events do (camera indexes spelled out, URL
    credentials hidden), so that observers of several runtimes tell them apart. ``inferred`` says
    whether the model ran on this frame; on skipped frames (``--skip``) the detections are the
    tracker's predictions, or the last inferred ones when not tracking.
    ``latency_ms`` runs from capture (the decoder handing the frame over) to this result.
    """

    source: str
    frame: int
    timestamp: float
    image: npt.NDArray[np.uint8] = attrs.field(repr=False)
    detections: Detections
    inferred: bool
    latency_ms: float
    fps: float
    """Frames delivered per second over the last second, inferred, carried and paused frames
    alike; during the run's first second, over the run so far (from the first frame read), so
    the first result reads 1 / the time it took."""
    throttle: float = 1.0
    paused: bool = False

    def to_dict(self) -> dict[str, Any]:
        timings = self.detections.timings
        return {
            "source": self.source,
            "frame": self.frame,
            "timestamp": round(self.timestamp, 3),
            "inferred": self.inferred,
            "latency_ms": round(self.latency_ms, 2),
            "infer_ms": round(timings.total, 2) if self.inferred and timings is not None else None,
            "fps": round(self.fps, 2),
            "throttle": round(self.throttle, 3),
            "paused": self.paused,
            "detections": [d.to_dict() for d in self.detections],
        }
