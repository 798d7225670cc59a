"""Every bad NCNN input gives one ``error:`` line naming the fix, exit status 1, no traceback."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from ncnn_helpers import YOLO11, YOLOV8, exported, model_path

from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv.testing.reference import asset


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    v8, v11 = exported(tmp_path_factory, YOLOV8), exported(tmp_path_factory, YOLO11)
    root = tmp_path_factory.mktemp("bad-ncnn")
    layouts = {
        # folder: (param from, bin from); no metadata.yaml, so only ncnn's loading can tell
        "v8-graph-v11-weights": (v8, v11),  # .bin shorter than the graph needs
        "v11-graph-v8-weights": (v11, v8),  # .bin longer than the graph needs
        "truncated": (v8, None),
        "no-bin": (v8, "missing"),
    }
    for name, (graph, weights) in layouts.items():
        folder = root / name
        folder.mkdir()
        shutil.copyfile(graph / "model.ncnn.param", folder / "model.ncnn.param")
        if weights == "missing":
            continue
        if weights is None:
            data = (graph / "model.ncnn.bin").read_bytes()
            (folder / "model.ncnn.bin").write_bytes(data[: len(data) // 2])
        else:
            shutil.copyfile(weights / "model.ncnn.bin", folder / "model.ncnn.bin")
    (root / "text.param").write_text("hello, I am not a graph\n")
    (root / "text.bin").write_bytes(b"\0" * 64)
    return root


def predict(model: Path, *extra: str) -> str:
    return assert_one_line_error(
        run_edgecv("predict", asset("images", "bus.jpg"), "--model", model, "--backend", "ncnn", *extra)
    )


def test_param_without_bin(bad: Path) -> None:
    line = predict(bad / "no-bin")
    assert "model.ncnn.param has no weights file model.ncnn.bin next to it" in line
    assert "Copy the .bin that was exported together with this .param" in line


@pytest.mark.parametrize("folder", ["v8-graph-v11-weights", "v11-graph-v8-weights"])
def test_mismatched_param_and_bin(bad: Path, folder: str) -> None:
    line = predict(bad / folder)
    assert "does not belong to model.ncnn.param" in line, line
    assert "Use the .param and .bin exported together" in line


def test_truncated_bin(bad: Path) -> None:
    line = predict(bad / "truncated")
    assert "ncnn cannot load the weights model.ncnn.bin" in line and "(ncnn: " in line


def test_param_that_is_not_ncnn(bad: Path) -> None:
    line = predict(bad / "text.param")
    assert "text.param is not an NCNN param file: its first line must be the magic number 7767517" in line


def test_onnx_file_on_the_ncnn_backend() -> None:
    line = predict(model_path(YOLO11))
    assert "yolo11n_320_fp32_dequant.onnx is not an NCNN model" in line and "edgecv export" in line


def test_bad_threads(tmp_path_factory: pytest.TempPathFactory) -> None:
    line = predict(exported(tmp_path_factory, YOLO11), "--threads", "0")
    assert "ncnn threads must be a positive integer, got 0" in line


def test_export_without_pnnx(tmp_path: Path) -> None:
    # A `pnnx` package without its executable shadows the installed one, and PATH has none.
    (tmp_path / "pnnx").mkdir()
    (tmp_path / "pnnx" / "__init__.py").write_text("raise ImportError('never imported')\n")
    env = {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
        "PATH": "/usr/bin:/bin",
        "EDGECV_PNNX": "",
    }
    line = assert_one_line_error(
        run_edgecv("export", "--model", model_path(YOLO11), "--to", "ncnn", "-o", tmp_path / "out", env=env)
    )
    assert "Exporting to NCNN needs the pnnx converter, which was not found" in line
    assert "pip install --no-deps pnnx" in line and "EDGECV_PNNX" in line
    assert not (tmp_path / "out").exists()


def test_int8_export_without_ncnn_tools(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    env = {"EDGECV_NCNN_TOOLS": str(tmp_path / "empty"), "PATH": "/usr/bin:/bin"}
    calib = asset("coco128", "images", "train2017")
    args = ("export", "--model", model_path(YOLO11), "--to", "ncnn", "--precision", "int8", "--calib", calib)
    line = assert_one_line_error(run_edgecv(*args, "-o", tmp_path / "out", env=env))
    assert "INT8 export to NCNN needs ncnn2table and ncnn2int8, not found on EDGECV_NCNN_TOOLS=" in line
    assert "build ncnn's tools from source" in line and "NCNN_BUILD_TOOLS=ON" in line
