"""`edgecv export --to onnx` through the real command: happy paths on YOLO11n (320, cheap) and one
`error:` line for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

import edgecv
from edgecv.testing.cli import assert_one_line_error, run_edgecv


@pytest.fixture(scope="module")
def calib(assets: Path) -> Path:
    return assets / "coco128" / "images" / "train2017"


@pytest.fixture(scope="module")
def yolo11n(models: Path) -> Path:
    return models / "yolo11n_320_fp32_dequant.onnx"


def test_int8_export_of_yolo11n_with_check(tmp_path: Path, assets: Path, calib: Path, yolo11n: Path) -> None:
    output = tmp_path / "yolo11n_int8.onnx"
    result = run_edgecv(
        "export", "-m", yolo11n, "--to", "onnx", "--precision", "int8", "--calib", calib,
        "--calib-size", 8, "--calib-method", "minmax", "--check", assets / "coco128", "-o", output,
        assets=assets,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"exported {yolo11n} -> {output}" in result.stdout
    lines = {line.split(":")[0].strip() for line in result.stdout.splitlines() if line.startswith("check")}
    assert lines == {"check source", "check   int8", "check   drop"}, result.stdout
    assert "Collecting tensor data" not in result.stdout
    metadata = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
    assert json.loads(metadata["edgecv_calibration"])["count"] == 8
    ops = [node.op_type for node in onnx.load(str(output)).graph.node]
    assert "QuantizeLinear" in ops
    model = edgecv.load(output)
    assert (model.spec.arch, model.spec.imgsz) == ("yolov8", (320, 320))
    assert sorted(model(assets / "images" / "bus.jpg").labels)[:2] == ["bus", "person"]


def test_fp16_export_keeps_float32_io_and_detections(tmp_path: Path, assets: Path, yolo11n: Path) -> None:
    output = tmp_path / "yolo11n_fp16.onnx"
    result = run_edgecv(
        "export", "-m", yolo11n, "--to", "onnx", "--precision", "fp16", "-o", output, assets=assets
    )
    assert result.returncode == 0, result.stderr
    graph = onnx.load(str(output)).graph
    weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert len(weights) > 50
    model = edgecv.load(output)
    assert model.spec.input.dtype == "float32"
    assert model.spec.metadata["edgecv_precision"] == "fp16"
    fp32 = edgecv.load(yolo11n)(assets / "images" / "bus.jpg")
    fp16 = model(assets / "images" / "bus.jpg")
    assert fp16.labels == fp32.labels
    assert max(abs(a - b) for a, b in zip(fp16.scores, fp32.scores, strict=True)) < 0.01


def test_empty_calibration_folder(tmp_path: Path, assets: Path, yolo11n: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    result = run_edgecv(
        "export", "-m", yolo11n, "--to", "onnx", "--precision", "int8", "--calib", empty,
        "-o", tmp_path / "out.onnx", assets=assets,
    )  # fmt: skip
    assert_one_line_error(result, f"Calibration folder {empty} holds no images", "representative")
    assert not (tmp_path / "out.onnx").exists()


def test_int8_without_calibration_images(tmp_path: Path, assets: Path, yolo11n: Path) -> None:
    result = run_edgecv(
        "export", "-m", yolo11n, "--to", "onnx", "--precision", "int8", "-o", tmp_path / "o.onnx",
        assets=assets,
    )  # fmt: skip
    assert_one_line_error(result, "INT8 export needs calibration images", "--calib DIR")


def test_unknown_precision(tmp_path: Path, assets: Path, yolo11n: Path) -> None:
    result = run_edgecv(
        "export", "-m", yolo11n, "--to", "onnx", "--precision", "int4", "-o", tmp_path / "o.onnx",
        assets=assets,
    )  # fmt: skip
    assert_one_line_error(result, "Unknown precision 'int4'", "fp32, fp16, int8")


def test_unknown_calibration_method(tmp_path: Path, assets: Path, calib: Path, yolo11n: Path) -> None:
    result = run_edgecv(
        "export", "-m", yolo11n, "--to", "onnx", "--precision", "int8", "--calib", calib,
        "--calib-method", "kl", "-o", tmp_path / "o.onnx", assets=assets,
    )  # fmt: skip
    assert_one_line_error(result, "Unknown calibration method 'kl'", "percentile, minmax, entropy")


def test_missing_onnx_package_names_the_extra(
    tmp_path: Path, assets: Path, calib: Path, yolo11n: Path
) -> None:
    # `None` in sys.modules makes `import onnx` fail as if the package were not installed.
    hide_onnx = "import sys; sys.modules['onnx'] = None; from edgecv.cli import main; main()"
    result = run_edgecv(
        "export", "-m", yolo11n, "--to", "onnx", "--precision", "int8", "--calib", calib,
        "-o", tmp_path / "o.onnx", assets=assets, code=hide_onnx,
    )  # fmt: skip
    assert_one_line_error(result, "needs the onnx package", "pip install ", "'edgecv-onnx[export]'")


def test_already_quantized_source(tmp_path: Path, assets: Path, models: Path) -> None:
    result = run_edgecv(
        "export", "-m", models / "yolo11n_320_int8.onnx", "--to", "onnx", "--precision", "fp16",
        "-o", tmp_path / "o.onnx", assets=assets,
    )  # fmt: skip
    assert_one_line_error(result, "yolo11n_320_int8.onnx is already quantized")


class _Score:
    def __init__(self, map50_95: float, map50: float) -> None:
        self.map50_95, self.map50 = map50_95, map50


@pytest.mark.parametrize(("exported", "warned"), [(0.435, False), (0.425, True)])
def test_check_warns_when_map_drops_more_than_one_point(
    capsys: pytest.CaptureFixture[str], yolo11n: Path, exported: float, warned: bool
) -> None:
    """`--check` prints both mAPs and the drop, and a `warning:` line on stderr past 1.0 point."""
    from edgecv.cli.export import _check

    def fake_validate(model: edgecv.Model, data: str, **options: object) -> _Score:
        return _Score(0.442, 0.600) if "int8" not in model.spec.path.name else _Score(exported, 0.59)

    int8 = yolo11n.parent / "yolo11n_320_int8.onnx"  # any loadable file; fake_validate scores by name
    _check(fake_validate, yolo11n, int8, "coco128", "int8", None)
    out, err = capsys.readouterr()
    assert "check source: mAP50-95 0.442" in out
    assert f"check   int8: mAP50-95 {exported:.3f}" in out
    assert f"check   drop: {(0.442 - exported) * 100:.2f} mAP50-95 points" in out
    assert err.startswith("warning: the int8 export loses 1.70") if warned else err == ""
