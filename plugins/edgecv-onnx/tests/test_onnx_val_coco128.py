"""``edgecv val`` / ``validate`` with ONNX Runtime on coco128 against SOURCES.md and pycocotools.

Reference mAPs come from the "Check results" table of shared/assets/SOURCES.md (conf 0.001,
NMS IoU 0.7, max 300); edgecv must land within 0.005. pycocotools, scoring the very detections
edgecv wrote with --save-json, must agree with edgecv's own metric within 0.002.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import edgecv
from edgecv.evaluation import DatasetWarning, ValResult, validate
from edgecv.evaluation.datasets import COCO80_TO_91

TOLERANCE = 0.005


def reference_map(sources: Path, model_file: str) -> tuple[float, float]:
    """(mAP50-95, mAP50) from the coco128 columns of the check-results table."""
    for line in sources.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(rf"{re.escape(model_file)}( \(conf >= [0-9.]+\))?", cells[0]):
            return float(cells[3]), float(cells[2])
    raise AssertionError(f"{model_file} has no coco128 row in {sources}")


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgecv", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "EDGECV_DEBUG": "0"},
        timeout=300,
    )


@pytest.fixture(scope="module")
def coco128(assets: Path) -> Path:
    return assets / "coco128"


@pytest.fixture(scope="module")
def sources(assets: Path) -> Path:
    return assets / "SOURCES.md"


@pytest.fixture(scope="module")
def instances(coco128: Path, models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """coco128's YOLO labels as annotations/instances_train2017.json beside a link to its images."""
    root = tmp_path_factory.mktemp("coco128-json")
    (root / "train2017").symlink_to(coco128 / "images" / "train2017", target_is_directory=True)
    names = (models / "coco80_labels.txt").read_text().splitlines()
    images, annotations = [], []
    for image in sorted((coco128 / "images" / "train2017").glob("*.jpg")):
        height, width = cv2.imread(str(image)).shape[:2]
        images.append({"id": int(image.stem), "file_name": image.name, "width": width, "height": height})
        label = coco128 / "labels" / "train2017" / f"{image.stem}.txt"
        rows = np.loadtxt(label, ndmin=2) if label.exists() else np.zeros((0, 5))
        for cls, cx, cy, w, h in rows:
            x1, y1 = (cx - w / 2) * width, (cy - h / 2) * height
            x2, y2 = (cx + w / 2) * width, (cy + h / 2) * height
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": int(image.stem),
                    "category_id": COCO80_TO_91[int(cls)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": COCO80_TO_91[i], "name": name} for i, name in enumerate(names)]
    file = root / "annotations" / "instances_train2017.json"
    file.parent.mkdir()
    file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return file


# --- yolov8n through the CLI, cross-checked with pycocotools --------------------------------------


@pytest.fixture(scope="module")
def yolov8n_cli(models: Path, coco128: Path, tmp_path_factory: pytest.TempPathFactory):
    saved = tmp_path_factory.mktemp("val") / "detections.json"
    result = run_cli(
        "val",
        "--model",
        models / "yolov8n_fp32_dequant.onnx",
        "--backend",
        "onnx",
        "--data",
        coco128,
        "--threads",
        "2",
        "--json",
        "--save-json",
        saved,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr, saved


def test_cli_yolov8n_matches_reference(yolov8n_cli, sources: Path) -> None:
    report, stderr, _ = yolov8n_cli
    map50_95, map50 = reference_map(sources, "yolov8n_fp32_dequant.onnx")
    assert report["map50_95"] == pytest.approx(map50_95, abs=TOLERANCE)
    assert report["map50"] == pytest.approx(map50, abs=TOLERANCE)
    assert (report["images"], report["instances"]) == (128, 929)
    assert report["skipped"] == {"images": 0, "labels": 0, "orphan_labels": 2}
    assert report["backend"] == "onnx" and report["model"].endswith("yolov8n_fp32_dequant.onnx")
    assert report["format"] == "yolo"
    options = {"conf": 0.001, "iou": 0.7, "max_det": 300, "multi_label": True}
    assert {key: report["options"][key] for key in options} == options
    # Every image as it is (validate's subset/mirror, where this edgecv-core has them).
    assert (report["options"].get("subset", "all"), report["options"].get("mirror", False)) == ("all", False)
    assert 0 < report["precision"] <= 1 and 0 < report["recall"] <= 1
    assert set(report["timing_ms"]) == {"read", "preprocess", "infer", "postprocess"}
    assert all(v > 0 for v in report["timing_ms"].values())
    person = report["per_class"][0]
    assert set(person) >= {"class_id", "name", "instances", "ap50", "ap50_95"}
    assert (person["class_id"], person["name"], person["instances"]) == (0, "person", 254)
    assert sum(c["instances"] for c in report["per_class"]) == 929
    per_class_map = np.mean([c["ap50_95"] for c in report["per_class"]])
    assert per_class_map == pytest.approx(report["map50_95"], abs=1e-5)
    # The two label files without an image are mentioned once, as a one-line warning.
    lines = stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("warning: 2 label file(s) have no image")


def test_pycocotools_agrees_on_the_same_detections(yolov8n_cli, instances: Path) -> None:
    report, _, saved = yolov8n_cli
    results = json.loads(saved.read_text())
    assert {"image_id", "category_id", "bbox", "score"} == set(results[0])
    assert {r["image_id"] for r in results} <= {int(p.stem) for p in instances.parent.parent.glob("*/*.jpg")}
    assert (
        max(len([r for r in results if r["image_id"] == i]) for i in {r["image_id"] for r in results}) <= 300
    )
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(instances))
        evaluator = COCOeval(truth, truth.loadRes(str(saved)), "bbox")
        evaluator.params.maxDets = [1, 10, 300]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # [T, R, K], area all, 300 dets
    present = [k for k in range(precision.shape[2]) if (precision[:, :, k] > -1).all()]
    coco_map50_95 = float(np.mean([precision[:, :, k].mean() for k in present]))
    coco_map50 = float(np.mean([precision[0, :, k].mean() for k in present]))
    assert len(present) == len(report["per_class"]) == 71
    assert report["map50_95"] == pytest.approx(coco_map50_95, abs=0.002)
    assert report["map50"] == pytest.approx(coco_map50, abs=0.002)


# --- YOLO11n and YOLOX through the API; COCO JSON gives the same numbers ----------------------------


@pytest.fixture(scope="module")
def yolo11n(models: Path) -> edgecv.Model:
    return edgecv.load(models / "yolo11n_320_fp32_dequant.onnx", backend="onnx", threads=2)


@pytest.fixture(scope="module")
def yolo11n_yolo_folder(yolo11n: edgecv.Model, coco128: Path) -> ValResult:
    with pytest.warns(DatasetWarning, match="have no image"):
        return validate(yolo11n, coco128)


def test_api_yolo11n_matches_reference(yolo11n_yolo_folder: ValResult, sources: Path) -> None:
    result = yolo11n_yolo_folder
    map50_95, map50 = reference_map(sources, "yolo11n_320_fp32_dequant.onnx")
    assert result.map50_95 == pytest.approx(map50_95, abs=TOLERANCE)
    assert result.map50 == pytest.approx(map50, abs=TOLERANCE)
    assert (result.images, result.instances) == (128, 929)
    assert result.to_dict()["map50_95"] == pytest.approx(result.map50_95, abs=1e-6)


def test_coco_json_dataset_gives_the_same_map(
    yolo11n: edgecv.Model, yolo11n_yolo_folder: ValResult, instances: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "out" / "coco.json"
    result = validate(yolo11n, instances.parent.parent, save_json=saved)
    expected = yolo11n_yolo_folder
    assert result.format == "coco" and result.issues == ()
    assert (result.images, result.instances) == (128, 929)
    assert result.map50_95 == pytest.approx(expected.map50_95, abs=1e-6)
    assert result.map50 == pytest.approx(expected.map50, abs=1e-6)
    assert [c.ap50_95 for c in result.per_class] == pytest.approx(
        [c.ap50_95 for c in expected.per_class], abs=1e-6
    )
    ids = {r["category_id"] for r in json.loads(saved.read_text())}
    assert 1 in ids and ids <= set(COCO80_TO_91)  # COCO category ids, as the dataset has them


def test_api_yolox_matches_reference(models: Path, coco128: Path, sources: Path) -> None:
    model = edgecv.load(models / "yolox_nano.onnx", backend="onnx", arch="yolox", threads=2)
    with pytest.warns(DatasetWarning):
        result = validate(model, coco128 / "images" / "train2017")
    map50_95, map50 = reference_map(sources, "yolox_nano.onnx")
    assert result.map50_95 == pytest.approx(map50_95, abs=TOLERANCE)
    assert result.map50 == pytest.approx(map50, abs=TOLERANCE)


# --- bad input: reported, skipped, counted; never a traceback --------------------------------------


@pytest.fixture
def messy(coco128: Path, tmp_path: Path) -> Path:
    """Four coco128 images with labels, one truncated copy, one non-image, twelve bad label lines."""
    root = tmp_path / "messy"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    stems = ["000000000009", "000000000025", "000000000030", "000000000034"]
    for stem in stems:
        shutil.copy(coco128 / "images" / "train2017" / f"{stem}.jpg", root / "images")
        shutil.copy(coco128 / "labels" / "train2017" / f"{stem}.txt", root / "labels")
    data = (coco128 / "images" / "train2017" / "000000000042.jpg").read_bytes()
    (root / "images" / "000000000042.jpg").write_bytes(data[: len(data) // 2])
    shutil.copy(coco128 / "labels" / "train2017" / "000000000042.txt", root / "labels")
    (root / "images" / "000000000049.jpg").write_text("this is not a JPEG")
    with (root / "labels" / "000000000009.txt").open("a") as label:
        label.write("".join(f"{80 + i} 0.5 0.5 0.1 0.1\n" for i in range(12)))
    return root


def test_messy_dataset_is_reported_and_skipped(messy: Path, models: Path) -> None:
    result = run_cli("val", "-m", models / "yolo11n_320_fp32_dequant.onnx", "--data", messy, "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("warning: ") for line in lines), lines
    label_file = messy / "labels" / "000000000009.txt"
    bad = [line for line in lines if f"{label_file}:" in line]
    assert len(bad) == 10  # the first ten of twelve, each with its line number
    assert "000000000009.txt:9: class id 80 out of range" in bad[0]
    assert any("... and 2 more dataset problems" in line for line in lines)
    assert any("000000000042.jpg is truncated" in line and "skipped" in line for line in lines)
    assert any("Cannot decode" in line and "000000000049.jpg" in line for line in lines)
    report = json.loads(result.stdout)
    assert report["skipped"] == {"images": 2, "labels": 12, "orphan_labels": 0}
    assert report["images"] == 4 and report["instances"] == 8 + 2 + 2 + 1
    assert len(report["issues"]) == 14


def test_messy_dataset_table(messy: Path, models: Path) -> None:
    result = run_cli("val", "-m", models / "yolo11n_320_fp32_dequant.onnx", "--data", messy)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95"]
    assert lines[1].split()[:3] == ["all", "4", "13"]
    assert any(line.startswith("Speed per image:") for line in lines)
    assert lines[-1] == "Skipped: 2 image(s), 12 label(s) (see the warnings above)"


def test_empty_folder_is_one_line_error(tmp_path: Path, models: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli("val", "-m", models / "yolo11n_320_fp32_dequant.onnx", "--data", tmp_path / "empty")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: No images found in {tmp_path / 'empty'}")
    assert "Traceback" not in result.stderr
