"""Reading back what a recording test wrote."""

from __future__ import annotations

from pathlib import Path

import cv2

from edgecv.runtime.sources import opencv_path


def count_frames(path: Path) -> int:
    """Frames OpenCV decodes from ``path``: what a player would show."""
    capture = cv2.VideoCapture(opencv_path(path))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return frames
