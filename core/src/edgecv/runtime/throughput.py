"""``edgecv bench --video``: the running service's throughput against the bare inference rate, on one video.

Each round times the runtime's own call (``Model.bare_infer()``, the same session and threads) on
the tensors of frames already decoded and preprocessed in memory: the bare FPS, what the hardware
allows and what a pipelined ``edgecv run`` approaches. Then the pipeline one frame at a time
(``Model.predict``: pre + infer + post, from its stage timings; the end-to-end FPS), then
``Runtime`` on the same video file for each ``--skip``, decoding in its capture thread. Rounds
alternate so that a noisy machine affects all alike; the ratios (runtime / bare) are per round, and
their median is reported. Progress counts frames: stage ``decode``, then stage ``bench video`` (each
round: every frame bare, end to end, then through each runtime; a step costs ~20 µs on a terminal,
nothing otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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
    """One ``--skip`` value: per round, the bare and end-to-end rates and the runtime's."""

    skip: int
    track: bool
    bare_fps: tuple[float, ...]
    e2e_fps: tuple[float, ...]
    runtime_fps: tuple[float, ...]

    @property
    def ratios(self) -> list[float]:
        """Runtime FPS / bare FPS, per round."""
        return [r / b for r, b in zip(self.runtime_fps, self.bare_fps, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "skip": self.skip,
            "track": self.track,
            "bare_fps": [round(v, 2) for v in self.bare_fps],
            "e2e_fps": [round(v, 2) for v in self.e2e_fps],
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


def _bare_fps(
    bare: Callable[[npt.NDArray[Any]], object], tensors: Sequence[npt.NDArray[Any]], advance: Advance
) -> float:
    """Frames per second of the runtime's own call on prepared tensors, one after another."""
    start = time.perf_counter()
    for tensor in tensors:
        bare(tensor)
        advance(1)
    return len(tensors) / (time.perf_counter() - start)


def _e2e_fps(model: Model, frames: Sequence[npt.NDArray[np.uint8]], advance: Advance) -> float:
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
    """Bare, end-to-end and runtime FPS per skip, ``rounds`` times, alternated."""
    decoded = decode_frames(video, frames, progress=progress)
    bare = model.bare_infer()
    # Each tensor its own copy: preprocessing may reuse its output buffers.
    tensors = [model.preprocess(image)[0].copy() for image in decoded]
    model.predict(decoded[0])  # warm-up outside the timing
    bare(tensors[0])
    bare_fps: list[float] = []
    e2e_fps: list[float] = []
    measured: dict[int, list[float]] = {skip: [] for skip in skips}
    with report(progress)("bench video", rounds * len(decoded) * (2 + len(skips))) as advance:
        for _ in range(rounds):
            bare_fps.append(_bare_fps(bare, tensors, advance))
            e2e_fps.append(_e2e_fps(model, decoded, advance))
            for skip in skips:
                measured[skip].append(_runtime_fps(model, video, len(decoded), skip, track, advance))
    return [
        VideoThroughput(skip, track, tuple(bare_fps), tuple(e2e_fps), tuple(measured[skip])) for skip in skips
    ]


def format_video_report(
    results: Sequence[VideoThroughput], video: Path, frames: int, header: Sequence[str] = ()
) -> str:
    """The table of ``results``, after ``header`` lines (the device and load)."""
    lines = [
        *header,
        f"video {video.name}: {frames} frames per round; `edgecv run` against the bare runtime call "
        "on the same frames, preprocessed in memory (medians over rounds)",
        f"{'skip':>4} {'track':>5}  {'bare FPS':>9}  {'end-to-end FPS':>14}  {'runtime FPS':>11}  "
        f"{'runtime/bare':>12}",
    ]
    for result in results:
        lines.append(
            f"{result.skip:>4} {('yes' if result.track else 'no'):>5}  "
            f"{np.median(result.bare_fps):>9.2f}  {np.median(result.e2e_fps):>14.2f}  "
            f"{np.median(result.runtime_fps):>11.2f}  {np.median(result.ratios):>12.3f}"
        )
    return "\n".join(lines)
