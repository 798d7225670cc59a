"""The NCNN exporter reports its stages to the ``progress`` in its options (``edgecv.progress``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ncnn_helpers import YOLO11, model_path
from test_ncnn_export import write_executable

from edgecv.testing.progress import RecordedProgress
from edgecv.testing.reference import asset
from edgecv_ncnn import export


def test_fp32_reports_the_conversion(tmp_path: Path) -> None:
    progress = RecordedProgress()
    export.export(model_path(YOLO11), tmp_path / "fp32", {"precision": "fp32", "progress": progress})
    assert progress.stages == [("pnnx conversion", 1, 1)]


def test_int8_reports_calibration_images_and_both_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools_dir = tmp_path / "tools"
    tools_dir.mkdir()
    # Stand-ins for ncnn2table / ncnn2int8 (not in the ncnn wheel): a table, then the fp32 files copied.
    write_executable(
        tools_dir / "ncnn2table", "import pathlib, sys\npathlib.Path(sys.argv[4]).write_text('x 1.0\\n')\n"
    )
    write_executable(
        tools_dir / "ncnn2int8",
        "import shutil, sys\np, b, dp, db, _ = sys.argv[1:]\n"
        "shutil.copyfile(p, dp)\nshutil.copyfile(b, db)\n",
    )
    monkeypatch.setenv("EDGECV_NCNN_TOOLS", str(tools_dir))
    progress = RecordedProgress()
    calib = asset("coco128", "images", "train2017")
    options = {"precision": "int8", "calib": str(calib), "calib_size": 3, "progress": progress}
    export.export(model_path(YOLO11), tmp_path / "int8", options)
    assert progress.stages == [
        ("pnnx conversion", 1, 1),
        ("calibration images", 3, 3),
        ("ncnn2table calibration", 1, 1),
        ("ncnn2int8 conversion", 1, 1),
    ]
