"""``edgecv export --to ncnn``: what the folder holds, where it goes, INT8 plumbing, tool errors."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from ncnn_helpers import YOLO11, YOLOV8, exported, model_path

import edgecv
from edgecv.backend import BackendError, ConfigError, ModelError, read_image
from edgecv.images import iter_image_files
from edgecv.names import COCO80
from edgecv.testing.cli import run_edgecv
from edgecv.testing.reference import asset
from edgecv_ncnn import export
from edgecv_ncnn.metadata import parse

MODEL_FILES = {"model.ncnn.param", "model.ncnn.bin", "metadata.yaml"}


def write_executable(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.mark.parametrize(("model_file", "size", "anchors"), [(YOLOV8, 640, 8400), (YOLO11, 320, 2100)])
def test_export_folder_and_metadata(
    tmp_path_factory: pytest.TempPathFactory, model_file: str, size: int, anchors: int
) -> None:
    folder = exported(tmp_path_factory, model_file)
    assert {p.name for p in folder.iterdir()} == MODEL_FILES  # no pnnx side files
    data = parse((folder / "metadata.yaml").read_text())
    assert data["imgsz"] == [size, size] and data["batch"] == 1 and data["task"] == "detect"
    assert tuple(data["names"].values()) == COCO80 and list(data["names"]) == list(range(80))
    assert data["edgecv_format"] == "ncnn" and data["edgecv_precision"] == "fp32"
    assert data["edgecv_input"] == {
        "name": "in0",
        "shape": [1, 3, size, size],
        "dtype": "float32",
        "layout": "NCHW",
        "color": "RGB",
        "scale": 1 / 255,
        "letterbox": "center",
        "pad_value": 114,
    }
    assert data["edgecv_outputs"] == ["out0"]
    assert data["edgecv_source"] == model_file
    assert data["edgecv_source_sha256"] == hashlib.sha256(model_path(model_file).read_bytes()).hexdigest()
    assert set(data["edgecv_versions"]) >= {"edgecv", "edgecv-ncnn", "ncnn", "pnnx"}
    assert data["author"] == "Ultralytics"  # the source's own metadata is kept
    model = edgecv.load(folder, backend="ncnn")
    assert model.spec.outputs[0].shape == (1, 84, anchors)


def test_cli_export_into_a_folder_that_holds_other_things(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    result = run_edgecv(
        "export",
        "--model",
        model_path(YOLO11),
        "--to",
        "ncnn",
        "--precision",
        "fp16",
        "--imgsz",
        "320",
        "-o",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "yolo11n_320_fp32_dequant_ncnn_model"
    assert f"-> {folder}" in result.stdout
    assert {p.name for p in folder.iterdir()} == MODEL_FILES
    assert parse((folder / "metadata.yaml").read_text())["edgecv_precision"] == "fp16"
    # Exporting again into the model folder itself replaces the model.
    again = export.export(model_path(YOLO11), folder, {"precision": "fp32"})
    assert again == folder and parse((folder / "metadata.yaml").read_text())["edgecv_precision"] == "fp32"
    assert {p.name for p in folder.iterdir()} == MODEL_FILES


def test_static_size_cannot_change(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fixed at 320x320"):
        export.export(model_path(YOLO11), tmp_path / "out", {"imgsz": 640})


def test_output_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("")
    with pytest.raises(ConfigError, match="is a file; NCNN export writes a folder"):
        export.export(model_path(YOLO11), tmp_path / "out", {})


def test_source_must_be_onnx(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"is not an \.onnx file"):
        export.export(exported(tmp_path_factory, YOLO11) / "model.ncnn.param", tmp_path / "out", {})


def test_pnnx_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = write_executable(
        tmp_path / "pnnx",
        "import sys\nprint('pass_level0 onnx', file=sys.stderr)\n"
        "print('\\x1b[31munsupported op FancyOp\\x1b[0m', file=sys.stderr)\nsys.exit(3)\n",
    )
    monkeypatch.setenv("EDGECV_PNNX", str(fake))
    with pytest.raises(BackendError) as info:
        export.export(model_path(YOLO11), tmp_path / "out", {})
    text = str(info.value)
    assert "pnnx could not convert yolo11n_320_fp32_dequant.onnx failed (exit status 3)" in text
    assert "pass_level0 onnx | unsupported op FancyOp" in text and "\x1b" not in text and "\n" not in text
    assert not (tmp_path / "out").exists()


def test_int8_with_ncnn_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """INT8 plumbing with stand-ins for ncnn2table/ncnn2int8 (not in the ncnn wheel): the calibration
    files are edgecv's preprocessed tensors in the layout ncnn2table's type=1 reads."""
    tools_dir, seen = tmp_path / "tools", tmp_path / "seen"
    tools_dir.mkdir()
    seen.mkdir()
    write_executable(
        tools_dir / "ncnn2table",
        "import os, pathlib, shutil, sys\nimport numpy as np\n"
        "param, weights, listing, table, *pairs = sys.argv[1:]\n"
        "options = dict(p.split('=', 1) for p in pairs)\n"
        "assert options['type'] == '1', options\n"
        "w, h, c = (int(v) for v in options['shape'].strip('[]').split(','))\n"
        "files = pathlib.Path(listing).read_text().split()\n"
        "for f in files:\n"
        "    a = np.load(f)\n"
        "    assert a.dtype == np.float32 and a.shape == (c, h, w) and a.flags.c_contiguous, a.shape\n"
        f"out = pathlib.Path({str(seen)!r})\n"
        "shutil.copyfile(files[0], out / 'first.npy')\n"
        "(out / 'args.txt').write_text(' '.join(sys.argv[1:]))\n"
        "pathlib.Path(table).write_text('conv_0_param_0 1.0\\n')\n",
    )
    write_executable(
        tools_dir / "ncnn2int8",
        "import shutil, sys\nsrc_p, src_b, dst_p, dst_b, table = sys.argv[1:]\n"
        "shutil.copyfile(src_p, dst_p)\nshutil.copyfile(src_b, dst_b)\n",
    )
    monkeypatch.setenv("EDGECV_NCNN_TOOLS", str(tools_dir))
    calib = asset("coco128", "images", "train2017")
    folder = export.export(
        model_path(YOLO11), tmp_path / "int8", {"precision": "int8", "calib": str(calib), "calib_size": 4}
    )
    data = parse((folder / "metadata.yaml").read_text())
    assert data["edgecv_precision"] == "int8"
    assert data["edgecv_calibration"]["images"] == 4 and data["edgecv_calibration"]["method"] == "kl"
    args = (seen / "args.txt").read_text().split()
    assert args[:5] == ["model.ncnn.param", "model.ncnn.bin", "calib.txt", "model.table", "shape=[320,320,3]"]
    first = next(iter(iter_image_files([calib])))
    reference = edgecv.load(model_path(YOLO11), backend="onnx")
    tensor, _ = reference.preprocess(read_image(first))
    np.testing.assert_array_equal(np.load(seen / "first.npy"), tensor[0])
    assert edgecv.load(folder, backend="ncnn").spec.metadata["edgecv_precision"] == "int8"


def test_int8_needs_calibration_images(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="INT8 export needs calibration images"):
        export.export(model_path(YOLO11), tmp_path / "out", {"precision": "int8"})


def test_unknown_precision(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Pass --precision fp32, fp16, int8"):
        export.export(model_path(YOLO11), tmp_path / "out", {"precision": "bf16"})


def test_python_m_edgecv_ncnn_tools_lists_the_converter() -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "edgecv_ncnn", "tools"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pnnx ") and "not found. " not in result.stdout.splitlines()[0]
    assert os.path.basename(result.stdout.split()[1]).startswith("pnnx")
    assert shutil.which("pnnx") is None or "bin/pnnx" not in result.stdout  # never pip's torch script
