"""``edgecv compress report``: one row per model from edgecv's own bench and val, scored on the
held-out half, as Markdown and JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgecv.backend import ConfigError
from edgecv.testing.cli import assert_one_line_error, run_edgecv
from edgecv_torch.report import Entry, compress_report, format_markdown, parse_entry

STEMS = ["000000000009", "000000000025", "000000000030", "000000000034"]


@pytest.fixture(scope="module")
def dataset(assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four coco128 images with their labels (YOLO layout): the odd half is two images."""
    root = tmp_path_factory.mktemp("coco4")
    for folder, suffix in (("images", ".jpg"), ("labels", ".txt")):
        (root / folder).mkdir()
        for stem in STEMS:
            shutil.copy(assets / "coco128" / folder / "train2017" / f"{stem}{suffix}", root / folder)
    return root


def test_parse_entry() -> None:
    assert parse_entry("pruned 30%=a/b.onnx") == Entry("pruned 30%", Path("a/b.onnx"))
    assert parse_entry("a/model.onnx") == Entry("model", Path("a/model.onnx"))
    with pytest.raises(ConfigError, match="Cannot read the model"):
        parse_entry("=b.onnx")


def test_report_rows_from_bench_and_val(models: Path, dataset: Path, bus_path: Path) -> None:
    entries = [
        Entry("original", models / "yolov8n_fp32_dequant.onnx"),
        Entry("INT8 | ORT", models / "yolov8n_int8.onnx"),
    ]
    report = compress_report(entries, dataset, bus_path, subset="odd", backend="onnx", warmup=0, runs=3)
    assert report["subset"] == "odd" and report["images"] == 2  # the held-out half only
    base, int8 = report["rows"]
    assert base["technique"] == "original" and base["speedup"] == 1.0 and base["drop_pt"] == 0.0
    assert base["size_ratio"] == 1.0 and int8["size_ratio"] > 3  # int8 weights: ~4x smaller file
    assert 0 < base["map50_95"] <= 1 and 0 < int8["map50_95"] <= 1
    assert int8["drop_pt"] == round((base["map50_95"] - int8["map50_95"]) * 100, 2)
    assert int8["speedup"] == round(base["p50_ms"] / int8["p50_ms"], 3)
    table = format_markdown(report)
    assert table.splitlines()[0].startswith("| Technique | Backend | Size (MB)")
    assert "| INT8 \\| ORT | onnx |" in table  # a | in a label does not break the table
    assert f"odd half of {dataset.name} (2 images)" in table


def test_cli_report_json_and_markdown_file(
    models: Path, dataset: Path, bus_path: Path, tmp_path: Path
) -> None:
    output = tmp_path / "report.md"
    model = models / "yolov8n_fp32_dequant.onnx"
    result = run_edgecv(
        "compress", "report", "-m", f"base={model}", "-m", str(model), "--data", dataset,
        "--source", bus_path, "--warmup", "0", "--runs", "2", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert [row["technique"] for row in rows] == ["base", "yolov8n_fp32_dequant"]
    assert rows[0]["map50_95"] == rows[1]["map50_95"]  # same model, same score
    result = run_edgecv(
        "compress", "report", "-m", str(model), "--data", dataset, "--source", bus_path,
        "--backend", "onnx", "--warmup", "0", "--runs", "2", "-o", output,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert output.read_text() == result.stdout
    assert "| yolov8n_fp32_dequant | onnx |" in result.stdout


def test_cli_report_missing_model_is_one_error_line(dataset: Path, bus_path: Path, tmp_path: Path) -> None:
    result = run_edgecv(
        "compress", "report", "-m", f"x={tmp_path / 'nope.onnx'}", "--data", dataset, "--source", bus_path
    )
    assert_one_line_error(result, "nope.onnx")
