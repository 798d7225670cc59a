"""``edgecv export --to tensorrt`` from the command line: ``--workspace GB`` and ``--dynamic`` reach the
builder (in-process, on the fake TensorRT); option and precision mistakes, and a machine without
TensorRT (a real subprocess), end in one ``error:`` line."""

from __future__ import annotations

from pathlib import Path

import pytest
import trt_fakes
from click.testing import CliRunner, Result
from trt_fake_builder import dynamic_onnx, fake_builder

from edgecv.cli import cli
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv_tensorrt import cache
from edgecv_tensorrt.sidecar import read_sidecar


@pytest.fixture
def source(models: Path) -> Path:
    return models / "yolo11n_320_fp32_dequant.onnx"


def export(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["export", *map(str, args)])


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_workspace_and_dynamic_reach_the_builder(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trt = trt_fakes.install_fakes(monkeypatch, "10.3.0", builder=fake_builder)
    monkeypatch.setattr(cache, "cache_root", lambda: tmp_path / "cache")
    model = dynamic_onnx(source, tmp_path / "yolo11n_dynamic.onnx")
    target = tmp_path / "yolo11n.engine"
    result = export(
        "--model", model, "--to", "tensorrt", "--workspace", "2", "--dynamic", "--imgsz", "320", "-o", target
    )
    assert result.exit_code == 0, result.output
    assert f"-> {target}" in result.stdout
    (record,) = trt.builds
    assert record["workspace"] == 2 << 30
    assert record["profile"] == {"min": [1, 3, 32, 32], "opt": [1, 3, 320, 320], "max": [1, 3, 320, 320]}
    assert read_sidecar(target).build_options["workspace"] == 2 << 30
    # Without the flags: TensorRT's default workspace, and the one size the engine is built for.
    assert export("--model", model, "--to", "tensorrt", "-o", tmp_path / "fixed.engine").exit_code == 0
    assert trt.builds[1]["workspace"] is None
    assert trt.builds[1]["profile"]["min"] == [1, 3, 320, 320]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--to", "tensorrt", "--precision", "int8"], "INT8 engines are built from Q/DQ ONNX"),
        (["--to", "tensorrt", "--workspace", "0"], "TensorRT workspace must be a number of GB above 0"),
        (["--to", "tensorrt", "--dynamic"], "has a fixed input size (320x320): --dynamic needs dynamic axes"),
        (["--to", "onnx", "--workspace", "2"], "Unknown ONNX export option(s): workspace"),
        (["--to", "onnx", "--dynamic"], "Unknown ONNX export option(s): dynamic"),
    ],
)
def test_mistakes_are_one_error_line(
    args: list[str], said: str, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trt = trt_fakes.install_fakes(monkeypatch, "10.3.0", builder=fake_builder)
    target = tmp_path / ("out.engine" if "tensorrt" in args else "out.onnx")
    line = one_error_line(export("--model", source, *args, "-o", target))
    assert said in line
    assert trt.builds == [] and not target.exists()


def test_without_tensorrt_the_export_is_one_error_line_with_the_install_hints(
    source: Path, tmp_path: Path
) -> None:
    """This machine has no TensorRT (only tensorrt-stubs) and no GPU: the real availability check."""
    result = run_edgecv("export", "--model", source, "--to", "tensorrt", "-o", tmp_path / "x.engine")
    line = assert_one_line_error(
        result, "TensorRT", "sudo apt install python3-libnvinfer", "edgecv-tensorrt[pip]"
    )
    assert "stubs" in line or "not installed" in line
    assert not (tmp_path / "x.engine").exists()
