"""Where ``edgecv run`` sends results: JSON lines, an annotated video recording, a window.

Each output is an ordinary plugin object implementing ``edgecv_on_result``, so the CLI uses the
same hook an embedding app would, and an app can reuse these outputs next to its own.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import cv2
import numpy as np
import numpy.typing as npt

from edgecv.annotate import draw
from edgecv.errors import ConfigError
from edgecv.hookspecs import hookimpl
from edgecv.runtime.recording import SEGMENT_S, Recording
from edgecv.runtime.results import FrameResult


def annotate(result: FrameResult) -> npt.NDArray[np.uint8]:
    """The frame with boxes, labels, track ids and an FPS / throttle line in the corner."""
    canvas = draw(result.image, result.detections)
    status = f"{result.fps:.1f} FPS"
    if result.paused:
        status += "  PAUSED (hot)"
    elif result.throttle < 1.0:
        status += f"  throttle {result.throttle:.2f}"
    scale = max(0.5, canvas.shape[0] / 900)
    for colour, width in (((0, 0, 0), 4), ((255, 255, 255), 1)):  # outlined, readable on any scene
        cv2.putText(
            canvas, status, (8, int(28 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, width, cv2.LINE_AA
        )
    return canvas


class JsonLinesOutput:
    """One JSON object per frame on ``stream`` (stdout by default), flushed per line for pipes."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    @hookimpl
    def edgecv_on_result(self, result: FrameResult) -> None:
        self.stream.write(json.dumps(result.to_dict()) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class VideoOutput:
    """The annotated video, recorded so that it survives a crash (``recording``: .mkv/.avi grow
    playable under their name, .mp4/.mov are cut into closed segments of ``segment_s`` seconds).

    Closing after a failure or Ctrl-C finishes the file being written: the frames so far are kept.
    """

    def __init__(self, path: str | Path, fps: float | None, segment_s: float = SEGMENT_S) -> None:
        self.recording = Recording(Path(path), fps, segment_s)

    @property
    def files(self) -> list[Path]:
        """The video files written, in order."""
        return self.recording.files

    @property
    def frames(self) -> int:
        return self.recording.frames

    @hookimpl
    def edgecv_on_result(self, result: FrameResult) -> None:
        self.recording.write(annotate(result))

    def close(self) -> None:
        self.recording.close()


class WindowOutput:
    """An OpenCV window; ``q`` or Esc asks the runtime to stop."""

    TITLE = "edgecv"

    def __init__(self, stop: Callable[[], None]) -> None:
        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            raise ConfigError(
                "--show needs a display and none is set (DISPLAY)",
                "Run on the device's desktop, or use --save out.mp4.",
            )
        try:
            cv2.namedWindow(self.TITLE, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise ConfigError(
                "--show needs OpenCV with GUI support, and this one has none (opencv-python-headless)",
                "pip install opencv-python (instead of -headless), or use --save out.mp4.",
            ) from exc
        self._stop = stop

    @hookimpl
    def edgecv_on_result(self, result: FrameResult) -> None:
        cv2.imshow(self.TITLE, annotate(result))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self._stop()

    def close(self) -> None:
        cv2.destroyWindow(self.TITLE)


class StatusLineOutput:
    """Without another output: one line on stderr every two seconds, so a service shows it is alive."""

    def __init__(self, every_s: float = 2.0, stream: IO[str] | None = None) -> None:
        self.every_s = every_s
        self.stream = stream or sys.stderr
        self._last = 0.0

    @hookimpl
    def edgecv_on_result(self, result: FrameResult) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        counts: dict[str, int] = {}
        for label in result.detections.labels:
            counts[label] = counts.get(label, 0) + 1
        found = ", ".join(f"{n} {label}" for label, n in counts.items()) or "nothing"
        self.stream.write(
            f"frame {result.frame}: {found} | {result.fps:.1f} FPS | {result.latency_ms:.0f} ms\n"
        )
        self.stream.flush()

    def close(self) -> None:
        pass
