"""A TFLite model in a folder whose name is not UTF-8 loads (LiteRT's bindings refuse such names)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from edgecv.testing.cli import run_edgecv


def test_model_in_a_folder_whose_name_is_not_utf8(tmp_path: Path, models: Path, bus_path: Path) -> None:
    folder = tmp_path / os.fsdecode(b"\xff\xfe")
    folder.mkdir()
    for name in ("yolov8n_full_integer_quant.tflite", "yolov8n_tflite_metadata.yaml"):
        shutil.copyfile(models / name, folder / name)
    # A subprocess: a crash in the runtime must fail this test, not end pytest.
    result = run_edgecv(
        "predict", bus_path, "--model", folder / "yolov8n_full_integer_quant.tflite", "--json"
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert [d["label"] for d in record["detections"]].count("person") == 4
