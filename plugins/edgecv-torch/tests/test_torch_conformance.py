"""The torch backend against the conformance kit, on an edgecv-torch checkpoint of the reference model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from edgecv.testing import BackendConformance
from edgecv_torch import checkpoint
from edgecv_torch.yolov8 import YOLOv8


class TestTorchConformance(BackendConformance):
    backend = "torch"
    # One thread: torch's OpenMP pool with more threads than free cores is ~25x slower on a busy machine
    # (measured 3.3 s against 0.12 s a frame here, 2 cores shared).
    load_options: ClassVar[Mapping[str, Any]] = {"device": "cpu", "threads": 1}
    # The same float32 weights as the ONNX model, in torch's kernels: boxes agree to float rounding.
    box_tol_px: ClassVar[float] = 1.0

    def prepare_model(self, reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
        folder = tmp_path_factory.mktemp("torch-checkpoint")
        return checkpoint.save(YOLOv8.from_onnx(reference), folder / "yolov8n.pt")
