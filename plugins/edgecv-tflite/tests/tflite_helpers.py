"""Shared helpers for the TFLite backend tests: the shipped models, SOURCES.md rows, the CLI."""

from __future__ import annotations

import re
from pathlib import Path

TFLITE_MODELS = (
    "yolov8n_int8.tflite",
    "yolov8n_full_integer_quant.tflite",
    "yolo11n_int8.tflite",
    "yolo11n_full_integer_quant.tflite",
)


def sources_row(sources: Path, model_file: str) -> list[str]:
    for line in sources.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] == model_file:
            return cells
    raise AssertionError(f"{model_file} has no row in {sources}")


def expected_detections(sources: Path, model_file: str) -> list[tuple[str, float]]:
    """'person 0.901; bus 0.881; person 0.857, 0.857' -> [(label, score), ...] in score order."""
    expected: list[tuple[str, float]] = []
    for group in sources_row(sources, model_file)[1].split(";"):
        match = re.fullmatch(r"\s*([a-z ]+?) ([0-9., ]+)\s*", group)
        assert match, f"cannot parse {group!r} in SOURCES.md"
        expected += [(match.group(1), float(s)) for s in match.group(2).split(",")]
    return expected


def reference_map(sources: Path, model_file: str) -> tuple[float, float]:
    """(mAP50-95, mAP50) on coco128."""
    cells = sources_row(sources, model_file)
    return float(cells[3]), float(cells[2])
