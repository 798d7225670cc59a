"""The example third-party backend (examples/edgecv-opencv-dnn): the conformance kit plus its specifics."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edgecv
from edgecv import plugins
from edgecv.backend import read_image
from edgecv.testing import BackendConformance
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv_opencv_dnn.session import DnnSession

SOURCE = Path(__file__).resolve().parents[1] / "src" / "edgecv_opencv_dnn"
REFERENCE = "yolov8n_fp32_dequant.onnx"


class TestOpenCVDNN(BackendConformance):
    backend = "opencv-dnn"


@pytest.fixture(scope="module")
def dnn_model(models: Path) -> edgecv.Model:
    return edgecv.load(models / REFERENCE, backend="opencv-dnn")


def test_discovered_through_its_entry_point() -> None:
    records = {r.name: r for r in plugins.plugin_records()}
    record = records.get("opencv-dnn")
    assert record is not None, f"no 'opencv-dnn' entry point in group 'edgecv' (found: {sorted(records)})"
    assert record.distribution == "edgecv-opencv-dnn", record
    assert record.module == "edgecv_opencv_dnn.plugin", record
    assert record.ok, record.error
    assert record.backends == ("opencv-dnn",), record.backends


def test_auto_still_prefers_onnx() -> None:
    by_name = {b.name: b for b in plugins.backends()}
    assert by_name["opencv-dnn"].priority < by_name["onnx"].priority


def test_imports_only_the_plugin_api_from_the_core() -> None:
    # A third-party backend needs edgecv.backend (and the public edgecv API), nothing deeper.
    allowed = {"edgecv", "edgecv.backend"}
    found: dict[str, set[str]] = {}
    for source in sorted(SOURCE.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                if name.split(".")[0] == "edgecv":
                    found.setdefault(source.name, set()).add(name)
    assert found.get("plugin.py") == {"edgecv.backend"}, found
    outside = {file: names - allowed for file, names in found.items() if names - allowed}
    assert not outside, f"the example imports core modules other than {sorted(allowed)}: {outside}"


def test_plugin_module_does_not_import_opencv() -> None:
    # Discovery imports plugin.py for every `edgecv backends`; cv2 is the first load's cost.
    code = (
        "import sys, edgecv_opencv_dnn.plugin; "
        "print(sorted(m for m in sys.modules if m == 'cv2' or m.startswith(('cv2.', 'edgecv_opencv_dnn.s'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def test_session_has_the_session_protocol(dnn_model: edgecv.Model) -> None:
    session = dnn_model.session
    assert isinstance(session, DnnSession), type(session)
    assert isinstance(session, edgecv.Session)
    assert session.spec.layout == "NCHW"
    assert session.spec.input.dtype == "float32"
    assert session.spec.input.shape == (1, 3, 640, 640)
    assert [o.name for o in session.spec.outputs] == session.output_names


def test_bare_is_the_plain_opencv_call(dnn_model: edgecv.Model, bus_path: Path) -> None:
    image = read_image(bus_path)
    tensor, _ = dnn_model.preprocess(image)
    bare = dnn_model.bare_infer()
    raw: Any = bare(tensor)
    # net.forward(names) as a script would call it: OpenCV's own sequence of arrays, unconverted.
    assert isinstance(raw, (tuple, list)), type(raw)
    outputs = dnn_model.infer(tensor)
    assert len(raw) == len(outputs) == len(dnn_model.spec.outputs)
    for ours, theirs in zip(outputs, raw, strict=True):
        assert np.array_equal(ours, np.asarray(theirs)), float(np.abs(ours - np.asarray(theirs)).max())


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"device": 1}, "Unknown opencv-dnn option(s): device. Known options: threads."),
        ({"threads": 0}, "threads must be a positive integer, got 0"),
        ({"threads": "2"}, "threads must be a positive integer, got '2'"),
        ({"threads": True}, "threads must be a positive integer, got True"),
    ],
)
def test_bad_options_raise_config_error(models: Path, options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(edgecv.ConfigError) as caught:
        edgecv.load(models / REFERENCE, backend="opencv-dnn", **options)
    assert fragment in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_threads_option_loads(models: Path, bus_path: Path) -> None:
    model = edgecv.load(models / REFERENCE, backend="opencv-dnn", threads=2)
    assert [d.label for d in model(bus_path)][:1] == ["person"]


def test_folder_raises_model_error(tmp_path: Path) -> None:
    folder = tmp_path / "yolov8n.onnx"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"")
    with pytest.raises(edgecv.ModelError, match=r"is a folder, not an \.onnx file"):
        edgecv.load(folder, backend="opencv-dnn")


@pytest.mark.parametrize(
    ("inputs", "found"),
    [
        ([("images", "uint8")], "[('images', 'uint8')]"),
        ([("a", "float32"), ("b", "float32")], "[('a', 'float32'), ('b', 'float32')]"),
    ],
)
def test_model_needs_one_float32_input(tmp_path: Path, inputs: list[tuple[str, str]], found: str) -> None:
    path = write_tiny_onnx(tmp_path / "tiny.onnx", inputs)
    with pytest.raises(edgecv.ModelError) as caught:
        edgecv.load(path, backend="opencv-dnn")
    assert f"tiny.onnx must have one float32 image input for OpenCV DNN, found {found}" in str(caught.value)


def test_cli_errors_are_one_line(models: Path, bus_path: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / REFERENCE
    data = (models / REFERENCE).read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    result = run_edgecv("predict", bus_path, "--model", corrupt, "--backend", "opencv-dnn")
    assert_one_line_error(result, f"OpenCV DNN cannot load {REFERENCE}:", "load it with backend='onnx'")
    result = run_edgecv(
        "predict", bus_path, "--model", models / REFERENCE, "--backend", "opencv-dnn", "--threads", "0"
    )
    assert_one_line_error(result, "threads must be a positive integer, got 0")


def write_tiny_onnx(path: Path, inputs: list[tuple[str, str]]) -> Path:
    """A 64x64 graph with the given (name, dtype) inputs and one float32 output."""
    import onnx  # the example's `test` extra

    helper, proto = onnx.helper, onnx.TensorProto
    types = {"float32": proto.FLOAT, "uint8": proto.UINT8}
    shape = [1, 3, 64, 64]
    values = [helper.make_tensor_value_info(name, types[dtype], shape) for name, dtype in inputs]
    casts = [helper.make_node("Cast", [name], [f"{name}_f"], to=proto.FLOAT) for name, _ in inputs]
    total = helper.make_node("Sum", [f"{name}_f" for name, _ in inputs], ["out"])
    graph = helper.make_graph(
        [*casts, total], "tiny", values, [helper.make_tensor_value_info("out", proto.FLOAT, shape)]
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path
