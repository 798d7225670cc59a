"""Drawing detections onto images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edgecv.detections import Detections
from edgecv.images import write_image


def colour(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    pixel = cv2.cvtColor(np.array([[[hue, 200, 255]]], dtype=np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(pixel[0]), int(pixel[1]), int(pixel[2])


def draw(image: npt.NDArray[np.uint8], detections: Detections) -> npt.NDArray[np.uint8]:
    """A copy of ``image`` with boxes and ``label score`` tags."""
    canvas = image.copy()
    thickness = max(1, round(sum(canvas.shape[:2]) / 600))
    for det in detections:
        x1, y1, x2, y2 = (round(v) for v in det.box)
        bgr = colour(det.class_id)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), bgr, thickness, cv2.LINE_AA)
        text = (
            f"{det.label} {det.score:.2f}"
            if det.track_id is None
            else f"#{det.track_id} {det.label} {det.score:.2f}"
        )
        scale = thickness / 3
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thickness - 1))
        top = max(y1 - th - base - 2, 0)
        x1 = max(min(x1, canvas.shape[1] - tw - 2), 0)  # keep the tag inside the image
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 2, top + th + base + 2), bgr, -1)
        cv2.putText(
            canvas,
            text,
            (x1 + 1, top + th + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            max(1, thickness - 1),
            cv2.LINE_AA,
        )
    return canvas  # type: ignore[no-any-return]


def save_annotated(image: npt.NDArray[np.uint8], detections: Detections, path: Path) -> Path:
    """Write ``image`` with ``detections`` drawn to ``path`` (any file name; never through a link there)."""
    return write_image(path, draw(image, detections))
