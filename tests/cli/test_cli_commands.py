"""The CLI's happy paths: predict JSON/text/--save, backends, doctor, start-up imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
from cli_helpers import ASSETS, BUS, MODEL, edgecv

REFERENCE_BUS = [("person", 0.907), ("person", 0.901), ("person", 0.900), ("bus", 0.832), ("person", 0.374)]


def test_predict_json_matches_reference() -> None:
    result = edgecv("predict", BUS, "--model", MODEL, "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert set(record) == {"source", "width", "height", "detections", "timing_ms"}
    assert (record["width"], record["height"]) == (810, 1080)
    found = [(d["label"], d["score"]) for d in record["detections"]]
    assert [label for label, _ in found] == [label for label, _ in REFERENCE_BUS]
    for (_, score), (_, expected) in zip(found, REFERENCE_BUS, strict=True):
        assert abs(score - expected) < 0.01
    assert set(record["timing_ms"]) == {"preprocess", "infer", "postprocess"}
    assert all(set(d) == {"label", "class_id", "score", "box"} for d in record["detections"])


def test_predict_api_equals_cli() -> None:
    import edgecv as api

    detections = api.load(MODEL)(BUS)
    record = json.loads(edgecv("predict", BUS, "--model", MODEL, "--json").stdout)
    assert [d.to_dict() for d in detections] == record["detections"]


def test_predict_default_model_from_registry() -> None:
    result = edgecv("predict", BUS, "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["detections"]) == 5


def test_predict_folder_and_save(tmp_path: Path) -> None:
    result = edgecv("predict", ASSETS / "images", "--model", MODEL, "--save", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "bus.jpg (810x1080): 4 person, 1 bus" in result.stdout
    saved = cv2.imread(str(tmp_path / "out" / "bus.jpg"))
    assert saved is not None and saved.shape == (1080, 810, 3)
    assert (saved != cv2.imread(str(BUS))).any(), "annotated image should differ from the input"
    assert (tmp_path / "out" / "zidane.jpg").is_file()


def test_predict_yolox_with_arch() -> None:
    result = edgecv(
        "predict",
        BUS,
        "--model",
        ASSETS / "models" / "yolox_nano.onnx",
        "--arch",
        "yolox",
        "--conf",
        "0.3",
        "--json",
    )
    found = [(d["label"], d["score"]) for d in json.loads(result.stdout)["detections"]]
    expected = [("bus", 0.909), ("person", 0.855), ("person", 0.806), ("person", 0.687)]
    assert [f[0] for f in found] == [e[0] for e in expected]
    assert all(abs(f[1] - e[1]) < 0.01 for f, e in zip(found, expected, strict=True))


def test_backends_json_lists_onnx_available() -> None:
    result = edgecv("backends", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    onnx = next(b for b in report["backends"] if b["name"] == "onnx")
    assert onnx["available"] is True and ".onnx" in onnx["formats"]
    assert onnx["distribution"] == "edgecv-onnx"


def test_doctor_reports_runtimes_and_backends() -> None:
    result = edgecv("doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "onnxruntime" in report["runtimes"]
    assert any(b["name"] == "onnx" for b in report["backends"])
    # edgecv-onnx runs here: doctor recommends nothing it would have to reinstall (issue 13).
    assert report["recommendation"].startswith("nothing to install: edgecv-onnx installed")


def test_help_imports_no_runtime() -> None:
    code = (
        "import sys\nfrom edgecv.cli import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('numpy', 'cv2', 'onnxruntime', 'attrs') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_export_to_unknown_format_is_one_line() -> None:
    result = edgecv("export", "--model", MODEL, "--to", "nosuchformat", "-o", "/tmp/never")
    assert result.returncode == 1 and "No installed plugin exports to 'nosuchformat'" in result.stderr
