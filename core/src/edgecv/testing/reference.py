"""Reference data for the conformance kit: the model, the image, and what ONNX Runtime makes of them.

Nothing here imports pytest or a runtime at import time; ``onnxruntime_outputs`` imports
onnxruntime when called. The expected detections are the ones recorded in
``shared/assets/SOURCES.md`` ("Check results") for ``yolov8n_fp32_dequant.onnx``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.registry import assets_dir

REFERENCE_MODEL = "yolov8n_fp32_dequant.onnx"
REFERENCE_IMAGE = "bus.jpg"
REFERENCE_IMGSZ = (640, 640)
REFERENCE_CONF = 0.25
REFERENCE_IOU = 0.45
# (label, score) in score order, bus.jpg at conf 0.25 / NMS IoU 0.45 (SOURCES.md, "Check results").
REFERENCE_DETECTIONS: tuple[tuple[str, float], ...] = (
    ("person", 0.907),
    ("person", 0.901),
    ("person", 0.900),
    ("bus", 0.832),
    ("person", 0.374),
)


class MissingAssetError(AssertionError):
    """A reference asset is missing: a broken test setup, reported as a failure (never a skip)."""


def asset(*parts: str) -> Path:
    """A file under the assets folder (``EDGECV_ASSETS``, else ``../shared/assets`` from the cwd)."""
    root = assets_dir()
    if root is None:
        raise MissingAssetError(
            "The edgecv assets folder was not found: set EDGECV_ASSETS to the folder holding "
            "models/ and images/, or run pytest from a directory next to shared/assets."
        )
    path = root.joinpath(*parts)
    if not path.exists():
        raise MissingAssetError(f"Reference asset {path} is missing (assets folder: {root}).")
    return path


def reference_model() -> Path:
    return asset("models", REFERENCE_MODEL)


def reference_image() -> Path:
    return asset("images", REFERENCE_IMAGE)


def onnxruntime_outputs(model: Path, tensor: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    """Raw outputs of ``model`` run by ONNX Runtime's CPU provider directly, without edgecv."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: tensor}
    return [np.asarray(o, dtype=np.float32) for o in session.run(None, feed)]


@attrs.frozen
class RawDiff:
    """How far one backend output is from the reference output."""

    max_abs: float
    where: tuple[int, ...]
    got: float
    expected: float
    outside: int
    """How many values exceed ``atol + rtol * |expected|``."""
    size: int


def raw_diff(got: npt.NDArray[Any], expected: npt.NDArray[Any], atol: float, rtol: float) -> RawDiff:
    got64, expected64 = got.astype(np.float64), expected.astype(np.float64)
    diff = np.abs(got64 - expected64)
    # NaN must count as a mismatch, not compare false and slip through.
    diff[np.isnan(diff)] = np.inf
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
    outside = int(np.count_nonzero(diff > atol + rtol * np.abs(expected64)))
    return RawDiff(
        float(diff[where]), where, float(got64[where]), float(expected64[where]), outside, diff.size
    )


def format_detections(items: Sequence[tuple[str, float]]) -> str:
    return ", ".join(f"{label} {score:.3f}" for label, score in items) or "(none)"


def match_boxes(
    reference: Sequence[tuple[str, Sequence[float]]], candidates: Sequence[tuple[str, Sequence[float]]]
) -> list[tuple[int, int | None, float]]:
    """Pair each reference box with the closest unused candidate of the same label.

    Returns ``(reference_index, candidate_index or None, max coordinate difference in px)``.
    Greedy matching is enough here: reference boxes are few and far apart, and matching by
    label instead of by rank keeps two near-equal scores that swap order from failing the test.
    """
    used: set[int] = set()
    pairs: list[tuple[int, int | None, float]] = []
    for i, (label, box) in enumerate(reference):
        best: tuple[float, int] | None = None
        for j, (other_label, other_box) in enumerate(candidates):
            if j in used or other_label != label:
                continue
            distance = float(np.max(np.abs(np.asarray(box, dtype=np.float64) - np.asarray(other_box))))
            if best is None or distance < best[0]:
                best = (distance, j)
        if best is None:
            pairs.append((i, None, float("inf")))
        else:
            used.add(best[1])
            pairs.append((i, best[1], best[0]))
    return pairs
