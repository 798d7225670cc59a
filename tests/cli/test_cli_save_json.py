"""``edgecv predict --save-json``: COCO results for a folder, in val --save-json's format."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import pytest
from cli_helpers import ASSETS, BUS, MODEL, assert_one_line_error, edgecv
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from edgecv.evaluation.datasets import COCO80_TO_91

COCO128 = ASSETS / "coco128"
IMAGES = sorted((COCO128 / "images" / "train2017").glob("*.jpg"))[:8]
ENTRY_KEYS = {"image_id", "category_id", "bbox", "score"}


def _ground_truth(images: list[Path]) -> COCO:
    """The coco128 YOLO labels of ``images`` as a COCO ground truth (ids as in COCO itself)."""
    dataset: dict[str, Any] = {"images": [], "annotations": [], "categories": []}
    dataset["categories"] = [{"id": c, "name": str(c)} for c in COCO80_TO_91]
    for image in images:
        height, width = cv2.imread(str(image)).shape[:2]
        dataset["images"].append({"id": int(image.stem), "width": width, "height": height})
        labels = COCO128 / "labels" / "train2017" / f"{image.stem}.txt"
        for line in labels.read_text().splitlines() if labels.is_file() else []:
            cls, cx, cy, w, h = (float(v) for v in line.split())
            box = [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
            dataset["annotations"].append(
                {
                    "id": len(dataset["annotations"]) + 1,
                    "image_id": int(image.stem),
                    "category_id": COCO80_TO_91[int(cls)],
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    truth = COCO()
    truth.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        truth.createIndex()
    return truth


def test_save_json_of_a_coco_folder_scores_with_pycocotools(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for image in IMAGES:
        shutil.copyfile(image, folder / image.name)
    out = tmp_path / "results.json"
    result = edgecv("predict", folder, "--model", MODEL, "--conf", "0.01", "--json", "--save-json", out)
    assert result.returncode == 0, result.stderr

    entries = json.loads(out.read_text())
    assert entries and all(set(entry) == ENTRY_KEYS for entry in entries)
    assert {entry["image_id"] for entry in entries} <= {int(image.stem) for image in IMAGES}
    assert {entry["category_id"] for entry in entries} <= set(COCO80_TO_91)
    # The same detections as --json prints, boxes as [x, y, width, height] and COCO's category ids.
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    expected = [
        (int(Path(p["source"]).stem), COCO80_TO_91[d["class_id"]], d["box"], d["score"])
        for p in printed
        for d in p["detections"]
    ]
    assert len(entries) == len(expected)
    for entry, (image_id, category, (x1, y1, x2, y2), score) in zip(entries, expected, strict=True):
        assert (entry["image_id"], entry["category_id"]) == (image_id, category)
        assert entry["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.02)
        assert abs(entry["score"] - score) < 1e-4

    truth = _ground_truth(IMAGES)
    with contextlib.redirect_stdout(io.StringIO()):
        found = truth.loadRes(str(out))
        evaluation = COCOeval(truth, found, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    # yolov8n scores 0.44 mAP50-95 on coco128; wrong image or category ids would score about 0.
    assert evaluation.stats[0] > 0.25, evaluation.stats


def test_other_names_are_ids_by_path_and_a_planted_link_is_replaced(tmp_path: Path) -> None:
    zidane = ASSETS / "images" / "zidane.jpg"
    victim = tmp_path / "victim.json"
    victim.write_text("not to be touched")
    link = tmp_path / "out" / "detections.json"
    link.parent.mkdir()
    link.symlink_to(victim)
    result = edgecv("predict", BUS, zidane, "--model", MODEL, "--save-json", link)
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "not to be touched"
    assert not link.is_symlink()
    assert sorted(p.name for p in link.parent.iterdir()) == ["detections.json"]  # no temporary left
    entries = json.loads(link.read_text())
    assert {entry["image_id"] for entry in entries} == {str(BUS), str(zidane)}
    on_bus = {entry["category_id"] for entry in entries if entry["image_id"] == str(BUS)}
    assert on_bus == {1, 6}  # person, bus: COCO's ids


def test_an_unwritable_save_json_fails_before_the_model_loads(tmp_path: Path) -> None:
    missing_model = tmp_path / "missing.onnx"  # loading it would fail: the output is checked first
    result = edgecv("predict", BUS, "--model", missing_model, "--save-json", "/proc/detections.json")
    assert_one_line_error(result, "Cannot write --save-json /proc/detections.json")
    folder = edgecv("predict", BUS, "--model", missing_model, "--save-json", tmp_path)
    assert folder.returncode == 2 and "is a directory" in folder.stderr  # a usage error, as for val
