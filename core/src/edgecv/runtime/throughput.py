"""``edgecv bench --video``: the running service's throughput against the model-bound rate, on one video.

Each round times the model alone on frames already decoded in memory (the model-bound FPS: what
the hardware allows), then ``Runtime`` on the same video file for each ``--skip``, decoding in
its capture thread. Rounds alternate so that a noisy machine affects both alike; the ratios are
per round, and their median is reported. Progress counts frames: stage ``decode``, then stage
``bench video`` (each round: every frame through the model alone, then through each runtime; a
step costs ~20 µs on a terminal, nothing otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.model import Model
from edgecv.progress import Advance, Progress, report
from edgecv.runtime.loop import RunConfig, Runtime
from edgecv.runtime.sources import EndOfStream, open_source


@attrs.frozen
class VideoThroughput:
    skip: int
    track: bool
    model_bound_fps: tuple[float, ...]
    runtime_fps: tuple[float, ...]

    @property
    def ratios(self) -> list[float]:
        return [r / m for r, m in zip(self.runtime_fps, self.model_bound_fps, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "skip": self.skip,
            "track": self.track,
            "model_bound_fps": [round(v, 2) for v in self.model_bound_fps],
            "runtime_fps": [round(v, 2) for v in self.runtime_fps],
            "ratio_per_round": [round(v, 3) for v in self.ratios],
            "ratio_median": round(float(np.median(self.ratios)), 3),
        }


def decode_frames(
    video: Path, count: int, timeout_s: float = 10.0, progress: Progress | None = None
) -> list[npt.NDArray[np.uint8]]:
    """Up to ``count`` frames of ``video``, opened as ``edgecv run`` opens it (same errors, no
    FFmpeg chatter); fewer when the file ends or decoding stops."""
    frames: list[npt.NDArray[np.uint8]] = []
    with (
        open_source(str(video)) as source,  # SourceError: one line on a file that does not decode
        report(progress)("decode", count) as advance,
    ):
        while len(frames) < count:
            try:
                frame = source.read(timeout=timeout_s)
            except EndOfStream:
                break
            if frame is None:
                break
            frames.append(frame.image)
            advance(1)
    return frames


def _model_bound_fps(model: Model, frames: Sequence[npt.NDArray[np.uint8]], advance: Advance) -> float:
    """Frames per second from the pipeline's own stage timings (the one timer ``bench`` reads)."""
    total_ms = 0.0
    for image in frames:
        model.predict(image)
        total_ms += model.last_timings.total
        advance(1)
    return len(frames) / (total_ms / 1e3)


def _runtime_fps(model: Model, video: Path, frames: int, skip: int, track: bool, advance: Advance) -> float:
    config = RunConfig(skip=skip, track=track, max_frames=frames)
    with Runtime(model, video, config, thermal=False) as runtime:
        for _ in runtime.results():  # what ``Runtime.run`` does, one frame at a time
            advance(1)
        return runtime.stats.fps


def video_throughput(
    model: Model,
    video: Path,
    *,
    skips: Sequence[int],
    track: bool,
    frames: int,
    rounds: int,
    progress: Progress | None = None,
) -> list[VideoThroughput]:
    """Model-bound FPS and runtime FPS per skip, ``rounds`` times, alternated."""
    decoded = decode_frames(video, frames, progress=progress)
    model.predict(decoded[0])  # warm-up outside the timing
    bound: list[float] = []
    measured: dict[int, list[float]] = {skip: [] for skip in skips}
    with report(progress)("bench video", rounds * len(decoded) * (1 + len(skips))) as advance:
        for _ in range(rounds):
            bound.append(_model_bound_fps(model, decoded, advance))
            for skip in skips:
                measured[skip].append(_runtime_fps(model, video, len(decoded), skip, track, advance))
    return [VideoThroughput(skip, track, tuple(bound), tuple(measured[skip])) for skip in skips]


def format_video_report(results: Sequence[VideoThroughput], video: Path, frames: int) -> str:
    lines = [
        f"video {video.name}: {frames} frames per round, runtime vs the model alone on decoded frames",
        f"{'skip':>4} {'track':>5}  {'model-bound FPS':>16}  {'runtime FPS':>12}  {'ratio (median)':>14}",
    ]
    for result in results:
        lines.append(
            f"{result.skip:>4} {('yes' if result.track else 'no'):>5}  "
            f"{np.median(result.model_bound_fps):>16.2f}  {np.median(result.runtime_fps):>12.2f}  "
            f"{np.median(result.ratios):>14.3f}"
        )
    return "\n".join(lines)
