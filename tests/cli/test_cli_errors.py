"""Every bad input gives one `error:` line naming the fix, exit status 1, and no traceback."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from cli_helpers import BUS, MODEL, assert_one_line_error, edgecv
from onnx import TensorProto, helper


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    (folder / "truncated.jpg").write_bytes(BUS.read_bytes()[:40_000])
    (folder / "notes.jpg").write_text("these are not pixels\n")
    (folder / "empty").mkdir()
    (folder / "notes.txt").write_text("hello")
    (folder / "model.onnx").write_text("not a model")
    (folder / "truncated.onnx").write_bytes(MODEL.read_bytes()[:200_000])
    # A valid ONNX model whose output ([1, 3, 1, 1]) no detector decoder understands.
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["images"], ["pooled"])],
        "pool",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, 3, 1, 1])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8),
        folder / "pool.onnx",
    )
    return folder


def test_missing_image(bad_files: Path) -> None:
    assert_one_line_error(
        edgecv("predict", bad_files / "nope.jpg", "--model", MODEL), "nope.jpg does not exist"
    )


def test_truncated_image(bad_files: Path) -> None:
    assert_one_line_error(edgecv("predict", bad_files / "truncated.jpg", "--model", MODEL), "is truncated")


def test_non_image_file(bad_files: Path) -> None:
    assert_one_line_error(
        edgecv("predict", bad_files / "notes.jpg", "--model", MODEL), "Cannot decode", "JPEG"
    )


def test_folder_without_images(bad_files: Path) -> None:
    assert_one_line_error(edgecv("predict", bad_files / "empty", "--model", MODEL), "holds no images")


@pytest.mark.parametrize("name", ["model.onnx", "truncated.onnx"])
def test_corrupt_model(bad_files: Path, name: str) -> None:
    assert_one_line_error(
        edgecv("predict", BUS, "--model", bad_files / name),
        f"cannot load {name}",
        "export or download it again",
    )


def test_text_file_as_model_with_unknown_suffix(bad_files: Path) -> None:
    assert_one_line_error(
        edgecv("predict", BUS, "--model", bad_files / "notes.txt"), "No installed backend reads notes.txt"
    )


def test_missing_model(bad_files: Path) -> None:
    assert_one_line_error(
        edgecv("predict", BUS, "--model", bad_files / "nope.onnx"), "nope.onnx does not exist"
    )


def test_unknown_output_layout(bad_files: Path) -> None:
    line = assert_one_line_error(
        edgecv("predict", BUS, "--model", bad_files / "pool.onnx"), "[1, 3, 1, 1]", "--arch"
    )
    for decoder in ("yolov8", "yolov5", "yolox", "end2end"):
        assert decoder in line


def test_unknown_backend_lists_installed() -> None:
    assert_one_line_error(
        edgecv("predict", BUS, "--model", MODEL, "--backend", "tpu9000"), "Unknown backend 'tpu9000'", "onnx"
    )


def test_unknown_arch() -> None:
    assert_one_line_error(
        edgecv("predict", BUS, "--model", MODEL, "--arch", "yolo99"), "Unknown arch 'yolo99'", "yolox"
    )


def test_backend_runtime_missing_names_package() -> None:
    # onnxruntime made unimportable in this process only: the plugin must say what to install.
    code = (
        "import sys; sys.modules['onnxruntime'] = None; "
        "from edgecv.cli import main; sys.argv[0] = 'edgecv'; main()"
    )
    result = edgecv("predict", BUS, "--model", MODEL, "--backend", "onnx", code=code)
    # edgecv-onnx is installed (it registered the backend): the hint names its missing runtime.
    assert_one_line_error(
        result, "not available", "onnxruntime is not installed", "pip install 'onnxruntime>=1.17'"
    )


def test_fixed_input_size_conflict() -> None:
    assert_one_line_error(edgecv("predict", BUS, "--model", MODEL, "--imgsz", "320"), "fixed at 640x640")


def test_debug_shows_traceback(bad_files: Path) -> None:
    result = edgecv("--debug", "predict", bad_files / "truncated.jpg", "--model", MODEL)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ImageError" in result.stderr


def test_one_bad_image_among_good_ones_keeps_the_rest(bad_files: Path) -> None:
    result = edgecv("predict", BUS, bad_files / "truncated.jpg", BUS, "--model", MODEL, "--json")
    assert result.returncode == 1
    assert len(result.stdout.strip().splitlines()) == 2
    assert result.stderr.count("error: ") == 1
