"""A model whose file name is not UTF-8 loads (OpenCV crashed on such names)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from edgecv.testing.cli import run_edgecv


def test_model_whose_name_is_not_utf8(tmp_path: Path, models: Path, bus_path: Path) -> None:
    model = tmp_path / (os.fsdecode(b"\xff\xfe") + ".onnx")
    shutil.copyfile(models / "yolov8n_fp32_dequant.onnx", model)
    # A subprocess: OpenCV's SIGSEGV must fail this test, not end pytest.
    result = run_edgecv("predict", bus_path, "--model", model, "--backend", "opencv-dnn", "--json")
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert [d["label"] for d in json.loads(result.stdout)["detections"]].count("person") == 4
