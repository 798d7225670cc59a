"""An independent YOLO reference: plain onnxruntime, written from shared/assets/SOURCES.md.

Deliberately shares no code with ``edgecv`` (no decoders, no preprocessing, no NMS from it) and
uses a different style: explicit canvases / ``np.pad`` for the letterbox, per-anchor Python for
the YOLOX grid, and a per-class greedy NMS loop in pure Python. Only ``cv2.resize`` (the
interpolation both implementations must agree on) and ``cv2.imread`` are shared with the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

PAD = 114


@dataclass
class RefBox:
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    class_id: int

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass
class Placement:
    """input = original * ratio + (left, top)"""

    ratio: float
    left: int
    top: int


# --- letterbox ----------------------------------------------------------------------------------


def letterbox_ultralytics(bgr: np.ndarray, size: int) -> tuple[np.ndarray, Placement]:
    """Ultralytics LetterBox(auto=False, scaleup=True, center=True), padding with np.pad."""
    h, w = bgr.shape[:2]
    ratio = min(size / h, size / w)
    new_w, new_h = round(w * ratio), round(h * ratio)
    resized = (
        bgr if (new_w, new_h) == (w, h) else cv2.resize(bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    )
    half_w = (size - new_w) / 2
    half_h = (size - new_h) / 2
    left, right = round(half_w - 0.1), round(half_w + 0.1)
    top, bottom = round(half_h - 0.1), round(half_h + 0.1)
    padded = np.pad(resized, ((top, bottom), (left, right), (0, 0)), mode="constant", constant_values=PAD)
    assert padded.shape[:2] == (size, size), padded.shape
    return padded, Placement(ratio, left, top)


def letterbox_yolox(bgr: np.ndarray, size: int) -> tuple[np.ndarray, Placement]:
    """YOLOX preproc: truncated resize, image in the top-left corner of a 114-filled canvas."""
    h, w = bgr.shape[:2]
    ratio = min(size / h, size / w)
    new_w, new_h = int(w * ratio), int(h * ratio)
    resized = cv2.resize(bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((size, size, 3), PAD, dtype=np.uint8)
    canvas[:new_h, :new_w, :] = resized
    return canvas, Placement(ratio, 0, 0)


# --- NMS ----------------------------------------------------------------------------------------


def iou(a: RefBox, b: RefBox) -> float:
    inter_w = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    inter_h = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = inter_w * inter_h
    area_a = max(0.0, a.x2 - a.x1) * max(0.0, a.y2 - a.y1)
    area_b = max(0.0, b.x2 - b.x1) * max(0.0, b.y2 - b.y1)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def greedy_nms_per_class(candidates: list[RefBox], iou_threshold: float, max_det: int = 300) -> list[RefBox]:
    """For each class separately: take the best box, drop same-class boxes overlapping it more than
    ``iou_threshold``, repeat. Returns all survivors sorted by score."""
    survivors: list[RefBox] = []
    for class_id in sorted({c.class_id for c in candidates}):
        pending = sorted((c for c in candidates if c.class_id == class_id), key=lambda c: -c.score)
        while pending:
            best = pending.pop(0)
            survivors.append(best)
            pending = [c for c in pending if iou(best, c) <= iou_threshold]
    survivors.sort(key=lambda c: -c.score)
    return survivors[:max_det]


# --- decoding -----------------------------------------------------------------------------------


def decode_ultralytics(output: np.ndarray, conf: float) -> list[RefBox]:
    """[1, 84, N]: rows 0-3 cx, cy, w, h (input pixels), rows 4.. class scores (sigmoid applied)."""
    table = output[0].T  # one row per anchor point
    found = []
    for row in table[table[:, 4:].max(axis=1) > conf]:
        class_id = int(np.argmax(row[4:]))
        cx, cy, bw, bh = (float(v) for v in row[:4])
        found.append(
            RefBox(cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, float(row[4 + class_id]), class_id)
        )
    return found


def yolox_grid(size: int) -> list[tuple[int, int, int]]:
    """(gx, gy, stride) for every output row: strides 8, 16, 32, row-major inside each level."""
    points = []
    for stride in (8, 16, 32):
        cells = size // stride
        for gy in range(cells):
            for gx in range(cells):
                points.append((gx, gy, stride))
    return points


def decode_yolox(output: np.ndarray, size: int, conf: float) -> list[RefBox]:
    """[1, N, 85]: dx, dy, log w, log h, objectness, 80 class scores (sigmoid applied)."""
    rows = output[0]
    grid = yolox_grid(size)
    assert len(grid) == len(rows), (len(grid), len(rows))
    found = []
    for (gx, gy, stride), row in zip(grid, rows, strict=True):
        class_scores = row[5:] * row[4]
        class_id = int(np.argmax(class_scores))
        score = float(class_scores[class_id])
        if score <= conf:
            continue
        cx = (float(row[0]) + gx) * stride
        cy = (float(row[1]) + gy) * stride
        bw = float(np.exp(row[2])) * stride
        bh = float(np.exp(row[3])) * stride
        found.append(RefBox(cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, score, class_id))
    return found


def to_original(boxes: list[RefBox], place: Placement, height: int, width: int) -> list[RefBox]:
    def clip(v: float, hi: int) -> float:
        return min(max(v, 0.0), float(hi))

    return [
        RefBox(
            clip((b.x1 - place.left) / place.ratio, width),
            clip((b.y1 - place.top) / place.ratio, height),
            clip((b.x2 - place.left) / place.ratio, width),
            clip((b.y2 - place.top) / place.ratio, height),
            b.score,
            b.class_id,
        )
        for b in boxes
    ]


# --- whole pipeline -----------------------------------------------------------------------------


def detect(
    model_path: Path, image_path: Path, arch: str, conf: float = 0.25, iou_threshold: float = 0.45
) -> list[RefBox]:
    """Detections in original-image pixels, highest score first."""
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    assert bgr is not None, image_path
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    size = int(model_input.shape[2])
    if arch == "yolox":
        canvas, place = letterbox_yolox(bgr, size)
        chw = np.transpose(canvas.astype(np.float32), (2, 0, 1))  # BGR, raw 0..255
    else:
        canvas, place = letterbox_ultralytics(bgr, size)
        rgb = canvas[:, :, [2, 1, 0]]
        chw = np.transpose(rgb.astype(np.float32) / 255.0, (2, 0, 1))
    (output,) = session.run(None, {model_input.name: np.ascontiguousarray(chw[np.newaxis])})
    candidates = decode_yolox(output, size, conf) if arch == "yolox" else decode_ultralytics(output, conf)
    kept = greedy_nms_per_class(candidates, iou_threshold)
    return to_original(kept, place, bgr.shape[0], bgr.shape[1])
