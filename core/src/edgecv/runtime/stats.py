"""Run statistics: counters and the latency / FPS distributions, printed at exit or on SIGUSR1."""

from __future__ import annotations

import collections
import time
from typing import Any

import attrs
import numpy as np

from edgecv.summary import Summary, summarize

# Enough samples for stable percentiles without growing with the length of a week-long run.
_WINDOW = 10_000


def _samples() -> collections.deque[float]:
    return collections.deque(maxlen=_WINDOW)


@attrs.define
class RunStats:
    """Counters of one run. ``read``/``dropped``/``reconnects`` come from the source."""

    started: float = attrs.field(factory=time.monotonic)
    ended: float | None = None
    read: int = 0
    processed: int = 0
    inferred: int = 0
    dropped: int = 0
    reconnects: int = 0
    restarts: int = 0
    paused_frames: int = 0
    events_written: int = 0
    events_pending: int = 0
    events_dropped: int = 0
    synced: int = 0
    sync_failures: int = 0
    throttle: float = 1.0
    latency_ms: collections.deque[float] = attrs.field(factory=_samples)
    infer_ms: collections.deque[float] = attrs.field(factory=_samples)
    frame_fps: collections.deque[float] = attrs.field(factory=_samples)
    """``FrameResult.fps`` of the results after the run's first second (which describes the start-up)."""
    _first_result: float | None = None
    _last_result: float | None = None

    def frame_done(self, now: float, latency_ms: float, infer_ms: float | None, fps: float | None) -> None:
        """Count a result; ``fps``: its ``FrameResult.fps`` once the start-up is over, else ``None``."""
        self.processed += 1
        self.latency_ms.append(latency_ms)
        if infer_ms is not None:
            self.inferred += 1
            self.infer_ms.append(infer_ms)
        if fps is not None:
            self.frame_fps.append(fps)
        if self._first_result is None:
            self._first_result = now
        self._last_result = now

    @property
    def elapsed_s(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    @property
    def fps(self) -> float:
        """Processed frames per second from the first result to the last: the steady rate, without
        the start-up (opening the source, the model's first, slower inference)."""
        if self._first_result is None or self._last_result is None or self.processed < 2:
            return 0.0
        span = self._last_result - self._first_result
        return (self.processed - 1) / span if span > 0 else 0.0

    def fps_summary(self) -> dict[str, float] | None:
        """The steady rate (``avg``) and the spread of the per-frame FPS after the first second
        (frames delivered over the last second, as ``FrameResult.fps``): p50, p95 and max.

        Never 1 / the gap between two results: with ``--skip`` carried frames follow an inferred
        one within microseconds, and such rates say nothing about the run.
        """
        if not self.frame_fps:
            return None
        rates = np.asarray(self.frame_fps, dtype=np.float64)
        p50, p95 = np.percentile(rates, [50, 95])
        return {
            "avg": round(self.fps, 2),
            "p50": round(float(p50), 2),
            "p95": round(float(p95), 2),
            "max": round(float(rates.max()), 2),
        }

    def to_dict(self) -> dict[str, Any]:
        def summary(values: collections.deque[float]) -> dict[str, float | int] | None:
            found: Summary | None = summarize(list(values)) if values else None
            return None if found is None else found.to_dict()

        return {
            "elapsed_s": round(self.elapsed_s, 3),
            "frames": {
                "read": self.read,
                "processed": self.processed,
                "inferred": self.inferred,
                "dropped": self.dropped,
                "paused": self.paused_frames,
            },
            "fps": self.fps_summary() or {"avg": round(self.fps, 2)},
            "latency_ms": summary(self.latency_ms),
            "infer_ms": summary(self.infer_ms),
            "reconnects": self.reconnects,
            "restarts": self.restarts,
            "throttle": round(self.throttle, 3),
            "events": {
                "written": self.events_written,
                "pending": self.events_pending,
                "dropped": self.events_dropped,
                "synced": self.synced,
                "sync_failures": self.sync_failures,
            },
        }

    def format(self) -> str:
        """A few human lines for the end of ``edgecv run``."""
        fps = self.fps_summary()
        lines = [
            f"frames: {self.read} read, {self.processed} processed, {self.inferred} inferred, "
            f"{self.dropped} dropped in {self.elapsed_s:.1f} s",
        ]
        if fps:
            lines.append(
                f"fps: avg {fps['avg']:.1f}, p50 {fps['p50']:.1f}, p95 {fps['p95']:.1f}, max {fps['max']:.1f}"
            )
        elif self.processed >= 2:
            lines.append(f"fps: avg {self.fps:.1f} (no per-second spread in a run under a second)")
        if self.latency_ms:
            lat = summarize(list(self.latency_ms))
            lines.append(f"capture->result latency: p50 {lat.p50:.1f} ms, p95 {lat.p95:.1f} ms")
        if self.infer_ms:
            inf = summarize(list(self.infer_ms))
            lines.append(f"inference: p50 {inf.p50:.1f} ms, p95 {inf.p95:.1f} ms")
        lines.append(
            f"reconnects: {self.reconnects}, restarts: {self.restarts}, paused frames: {self.paused_frames}"
        )
        if self.events_written or self.events_pending or self.synced:
            lines.append(
                f"events: {self.events_written} written, {self.synced} synced, "
                f"{self.events_pending} pending, {self.events_dropped} dropped (retention), "
                f"{self.sync_failures} sync failures"
            )
        return "\n".join(lines)
