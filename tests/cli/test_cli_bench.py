"""`edgecv bench` through the real command: JSON structure and sanity, the comparison table, errors.

Small --warmup/--runs keep it quick; the checks are relations that hold on any machine, never
wall-clock thresholds.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

from cli_helpers import ASSETS, BUS, MODEL, assert_one_line_error, edgecv

MODEL_320 = ASSETS / "models" / "yolo11n_320_fp32_dequant.onnx"
QUICK = ("--warmup", "2", "--runs", "5")
STAGES = ("preprocess", "infer", "postprocess")

# Runs the CLI with a stand-in for `edgecv val`'s evaluation, so --data's plumbing is tested alone.
FAKE_EVALUATION = """
import sys, types
module = types.ModuleType("edgecv.evaluation")
def validate(model, data, conf=0.001, iou=0.7, max_det=300, progress=None):
    with progress("val", 1) as advance:  # an edgecv.progress.Progress, silent when piped
        advance(1)
    return types.SimpleNamespace(map50_95=0.375, map50=0.5)
module.validate = validate
sys.modules["edgecv.evaluation"] = module
from edgecv.cli import main
sys.argv[0] = "edgecv"
main()
"""


def bench_json(*args: str | Path) -> dict[str, Any]:
    result = edgecv("bench", *args, *QUICK, "--json")
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def check_sane(record: dict[str, Any], model: Path) -> None:
    latency = record["latency_ms"]
    for key in ("e2e", *STAGES, "bare"):
        stats = latency[key]
        assert set(stats) == {"p50", "p95", "mean", "min", "max", "n"}
        assert stats["n"] == 5
        assert 0 <= stats["min"] <= stats["p50"] <= stats["p95"] <= stats["max"], (key, stats)
    # Every call's stages lie inside its end-to-end time: the means keep the order exactly
    # (rounding to 3 decimals aside); medians need not add up, so they get a slack.
    assert sum(latency[s]["mean"] for s in STAGES) <= latency["e2e"]["mean"] + 0.01
    assert sum(latency[s]["p50"] for s in STAGES) <= latency["e2e"]["p50"] * 1.1 + 0.5
    assert record["overhead"] > 0.5 and record["overhead_paired"] > 0.5
    assert abs(record["overhead"] - latency["e2e"]["p50"] / latency["bare"]["p50"]) < 1e-3
    assert abs(record["fps"] - 1000 / latency["e2e"]["p50"]) < 0.01 * record["fps"]
    assert record["peak_rss_mb"] > 0
    assert record["load_ms"] > 0
    assert record["size_bytes"] == model.stat().st_size
    assert record["model"] == str(model) and record["name"] == model.name
    assert record["detections"] == 5  # 4 persons and a bus on bus.jpg
    assert (record["warmup"], record["runs"]) == (2, 5)


def test_bench_json_structure_and_sanity() -> None:
    report = bench_json("--model", MODEL_320, "--backend", "onnx", "--source", BUS)
    assert set(report) == {"device", "run", "results"}
    device = report["device"]
    assert device["onnxruntime"] == importlib.metadata.version("onnxruntime")
    assert device["cores"] >= 1 and device["cpu"]
    run = report["run"]
    assert run["source"] == str(BUS) and run["image_shape"] == [1080, 810]
    assert run["order"] == "interleaved" and run["block"] == 10
    assert run["power_meter"]["source"] or run["power_meter"]["reason"]
    assert run["temperature_c"]["before"] is not None or run["temperature_c"]["reason"]
    (record,) = report["results"]
    check_sane(record, MODEL_320)
    assert (record["backend"], record["imgsz"], record["speedup"]) == ("onnx", [320, 320], 1.0)
    assert record["accuracy"] is None
    power = record["power"]
    assert (power["watts"] is None) == (power["reason"] is not None)


def test_bench_two_models_json_and_threads() -> None:
    report = bench_json("--model", MODEL_320, "--model", MODEL, "--threads", "1", "--sequential")
    first, second = report["results"]
    check_sane(first, MODEL_320)
    check_sane(second, MODEL)
    assert second["imgsz"] == [640, 640] and first["options"] == {"threads": 1}
    assert report["run"]["order"] == "sequential"
    assert first["speedup"] == 1.0
    ratio = first["latency_ms"]["e2e"]["p50"] / second["latency_ms"]["e2e"]["p50"]
    assert abs(second["speedup"] - ratio) < 1e-3


def test_bench_comparison_table_with_two_models() -> None:
    result = edgecv("bench", "--model", MODEL_320, "--model", MODEL, *QUICK)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("model "))
    for column in ("backend", "MB", "p50 ms", "p95", "pre", "infer", "post", "bare", "overhead", "FPS"):
        assert column in header.split("  ") or f" {column}" in header, column
    assert "speed-up" in header and "mAP50-95" not in header
    rows = [line for line in lines if line.startswith((MODEL_320.name, MODEL.name))]
    assert [row.split()[0] for row in rows] == [MODEL_320.name, MODEL.name]
    assert rows[0].rstrip().endswith("1.00x")
    assert f"{MODEL.stat().st_size / 1e6:.1f}" in rows[1].split()
    assert "process-wide" in result.stdout
    assert "power" in result.stdout and "temperature" in result.stdout


def test_bench_two_backends_each_with_its_bare_call() -> None:
    report = bench_json("--model", MODEL_320, "--backend", "onnx", "--backend", "opencv-dnn")
    onnx, dnn = report["results"]
    assert (onnx["backend"], dnn["backend"]) == ("onnx", "opencv-dnn")
    check_sane(onnx, MODEL_320)
    check_sane(dnn, MODEL_320)  # the example backend's session has a bare call too (Session.bare)
    assert dnn["detections"] == 5


def test_bench_text_for_one_model_uses_the_default_image() -> None:
    result = edgecv("bench", "--model", MODEL_320, "--backend", "onnx", *QUICK)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"{MODEL_320.name} on onnx")
    for label in ("end-to-end", "preprocess", "infer", "postprocess", "bare runtime", "overhead", "peak RSS"):
        assert label in out, label
    assert "bus.jpg (810x1080)" in out and "process-wide" in out


def test_bench_map_column_with_data(tmp_path: Path) -> None:
    args = ("bench", "--model", MODEL_320, "--model", MODEL_320, "--data", tmp_path, *QUICK)
    result = edgecv(*args, code=FAKE_EVALUATION)
    assert result.returncode == 0, result.stderr
    assert "mAP50-95" in result.stdout and "0.3750" in result.stdout
    record = json.loads(edgecv(*args, "--json", code=FAKE_EVALUATION).stdout)["results"][0]
    assert record["accuracy"] == {"data": str(tmp_path), "map50_95": 0.375, "map50": 0.5}


def test_bench_without_a_default_image(tmp_path: Path) -> None:
    result = edgecv("bench", "--model", MODEL_320, *QUICK, env={"EDGECV_ASSETS": str(tmp_path)})
    assert_one_line_error(result, "--source", "bus.jpg")


def test_bench_missing_source_and_model(tmp_path: Path) -> None:
    assert_one_line_error(
        edgecv("bench", "--model", MODEL_320, "--source", tmp_path / "nope.jpg"), "nope.jpg", "does not exist"
    )
    assert_one_line_error(edgecv("bench", "--model", tmp_path / "missing.onnx"), "missing.onnx")
