"""Reading validation datasets: YOLO folders (label errors with file:line) and COCO JSON files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecv.errors import EdgecvError
from edgecv.evaluation.datasets import (
    COCO80_TO_91,
    DatasetError,
    label_path,
    load_dataset,
    parse_label_file,
)
from edgecv.names import COCO80

NAMES = ("cat", "dog", "bird")


def make_yolo(root: Path, labels: dict[str, str | None], split: str = "val") -> Path:
    """images/<split>/<stem>.jpg (placeholder bytes: loading does not decode) + labels/<split>/*.txt."""
    for stem, text in labels.items():
        image = root / "images" / split / f"{stem}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(b"not decoded here")
        if text is not None:
            label = root / "labels" / split / f"{stem}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(text)
    return root


def test_label_path_follows_the_images_folder() -> None:
    assert label_path(Path("/d/images/train/a/b.jpg")) == Path("/d/labels/train/a/b.txt")
    assert label_path(Path("/images/d/images/x.png")) == Path("/images/d/labels/x.txt")
    assert label_path(Path("/d/flat/x.jpg")) == Path("/d/flat/x.txt")


def test_yolo_root_and_images_folder_give_the_same_samples(tmp_path: Path) -> None:
    make_yolo(tmp_path, {"000000000042": "0 0.5 0.5 0.2 0.4\n1 0.25 0.25 0.1 0.1\n", "000000000007": None})
    for data in (tmp_path, tmp_path / "images", tmp_path / "images" / "val"):
        dataset = load_dataset(data, NAMES)
        assert dataset.format == "yolo"
        assert [s.path.name for s in dataset.samples] == ["000000000007.jpg", "000000000042.jpg"]
        assert [s.image_id for s in dataset.samples] == [7, 42]  # numeric stems
        background, labelled = dataset.samples
        assert len(background.class_ids) == 0
        assert list(labelled.class_ids) == [0, 1]
        np.testing.assert_allclose(labelled.boxes[0], [0.4, 0.3, 0.6, 0.7])
        np.testing.assert_allclose(labelled.pixel_boxes(100, 200)[0], [80, 30, 120, 70])
    assert dataset.category_ids == (0, 1, 2)  # not the COCO names: class ids


def test_recursive_search_and_running_ids(tmp_path: Path) -> None:
    make_yolo(tmp_path, {"b": "2 0.5 0.5 0.1 0.1\n"}, split="x/deep")
    make_yolo(tmp_path, {"a": "1 0.5 0.5 0.1 0.1\n"}, split="y")
    dataset = load_dataset(tmp_path, NAMES)
    assert [s.path.relative_to(tmp_path).as_posix() for s in dataset.samples] == [
        "images/x/deep/b.jpg",
        "images/y/a.jpg",
    ]
    assert [s.image_id for s in dataset.samples] == [0, 1]  # non-numeric stems: running index
    assert [int(s.class_ids[0]) for s in dataset.samples] == [2, 1]


def test_labels_beside_the_images(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "notes.txt").write_text("not a label")
    dataset = load_dataset(tmp_path, NAMES)
    assert len(dataset.samples) == 1 and list(dataset.samples[0].class_ids) == [0]
    assert dataset.orphan_labels == 0  # .txt files beside images are not counted as orphans


def test_bad_label_lines_are_reported_with_file_and_line(tmp_path: Path) -> None:
    lines = [
        "0 0.5 0.5 0.2 0.2",  # 1 ok
        "1 0.5 0.5 0.2",  # 2 wrong field count
        "1 0.5 abc 0.2 0.2",  # 3 not a number
        "3 0.5 0.5 0.2 0.2",  # 4 class out of range (3 names)
        "-1 0.5 0.5 0.2 0.2",  # 5 negative class
        "1.5 0.5 0.5 0.2 0.2",  # 6 class not an integer
        "1 1.2 0.5 0.2 0.2",  # 7 not normalized
        "2 0.5 0.5 0 0.2",  # 8 zero width
        "",  # 9 blank: ignored
        "2 1.005 0.5 0.2 0.2",  # 10 within the tolerance: kept
        "1 0.1 0.1 0.3 0.1 0.2 0.4",  # 11 polygon: boxed
        "2.0 0.5 0.5 0.1 0.1",  # 12 integral float class: kept
        "1 nan 0.5 0.1 0.1",  # 13 not finite
    ]
    root = make_yolo(tmp_path, {"img": "\n".join(lines) + "\n", "other": "1 0.5 0.5 0.1 0.1\n"})
    file = root / "labels" / "val" / "img.txt"
    boxes, class_ids, issues = parse_label_file(file, len(NAMES))
    assert list(class_ids) == [0, 2, 1, 2]
    np.testing.assert_allclose(boxes[2], [0.1, 0.1, 0.3, 0.4])
    expected = {
        2: "expected 5 fields",
        3: "not numbers",
        4: "class id 3 out of range for the model's 3 classes",
        5: "class id -1 out of range",
        6: "class id 1.5 is not an integer",
        7: "coordinates outside 0..1",
        8: "box width and height must be positive",
        13: "not finite",
    }
    assert len(issues) == len(expected)
    for issue, (line, reason) in zip(issues, expected.items(), strict=True):
        assert issue.startswith(f"{file}:{line}: {reason}"), issue
        assert issue.endswith("; line skipped")
        assert "\n" not in issue

    dataset = load_dataset(root, NAMES)
    assert dataset.skipped_labels == len(expected)
    assert dataset.issues == tuple(issues)
    assert sum(len(s.class_ids) for s in dataset.samples) == 5


def test_orphan_label_files_are_counted(tmp_path: Path) -> None:
    root = make_yolo(tmp_path, {"a": "0 0.5 0.5 0.1 0.1\n"})
    (root / "labels" / "val" / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    dataset = load_dataset(root, NAMES)
    assert dataset.orphan_labels == 1
    assert any("gone.txt" in issue and "no image" in issue for issue in dataset.issues)


def test_coco_names_get_coco_category_ids(tmp_path: Path) -> None:
    assert len(COCO80_TO_91) == 80 and COCO80_TO_91[:3] == (1, 2, 3) and COCO80_TO_91[-1] == 90
    dataset = load_dataset(make_yolo(tmp_path, {"1": "79 0.5 0.5 0.1 0.1\n"}), COCO80)
    assert dataset.category_ids == COCO80_TO_91


@pytest.mark.parametrize(
    ("layout", "fragment"),
    [
        ("missing", "does not exist"),
        ("empty", "No images found in"),
        ("images-only", "has a label file"),
        ("text-file", "not a COCO .json file"),
    ],
)
def test_unusable_datasets_raise_one_line_errors(tmp_path: Path, layout: str, fragment: str) -> None:
    data = tmp_path / "data"
    if layout == "empty":
        (data / "images").mkdir(parents=True)
    elif layout == "images-only":
        make_yolo(data, {"a": None, "b": None})
    elif layout == "text-file":
        data.write_text("hello")
    with pytest.raises(DatasetError) as info:
        load_dataset(data, NAMES)
    assert isinstance(info.value, EdgecvError)
    assert fragment in str(info.value) and "\n" not in str(info.value)


# --- COCO ---------------------------------------------------------------------------------------


def make_coco(root: Path, split: str = "val2017", **extra) -> Path:
    """annotations/instances_<split>.json beside <split>/ with two images."""
    (root / split).mkdir(parents=True)
    for name in ("1.jpg", "2.jpg"):
        (root / split / name).write_bytes(b"x")
    content = {
        "images": [
            {"id": 10, "file_name": "1.jpg", "width": 100, "height": 100},
            {"id": 20, "file_name": "2.jpg", "width": 100, "height": 100},
        ],
        "categories": [{"id": 17, "name": "Cat"}, {"id": 18, "name": "dog"}, {"id": 99, "name": "zebra"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 18, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 17, "bbox": [0, 0, 50, 50], "iscrowd": 1},
            {"id": 3, "image_id": 20, "category_id": 99, "bbox": [0, 0, 5, 5], "iscrowd": 0},
            {"id": 4, "image_id": 20, "category_id": 17, "bbox": [0, 0, 0, 5], "iscrowd": 0},
        ],
        **extra,
    }
    file = root / "annotations" / f"instances_{split}.json"
    file.parent.mkdir(parents=True)
    file.write_text(json.dumps(content))
    return file


def test_coco_json_maps_categories_by_name(tmp_path: Path) -> None:
    file = make_coco(tmp_path)
    for data in (tmp_path, tmp_path / "annotations", file):
        dataset = load_dataset(data, NAMES)
        assert dataset.format == "coco" and dataset.root == tmp_path / "val2017"
        first, second = dataset.samples
        assert (first.image_id, second.image_id) == (10, 20)
        np.testing.assert_allclose(first.boxes, [[10, 20, 40, 60], [0, 0, 50, 50]])
        assert list(first.class_ids) == [1, 0] and list(first.crowd) == [False, True]
        assert len(second.class_ids) == 0
        assert dataset.category_ids == (17, 18, -1)  # bird has no category: not written
        assert dataset.skipped_labels == 2  # the zebra and the zero-width box
        assert dataset.issues[0].startswith("1 COCO category of instances_val2017.json match no class")
        assert "zebra" in dataset.issues[0]
        assert "annotation 4: bbox [0, 0, 0, 5] has no area; skipped" in dataset.issues[1]


def test_coco_json_without_matching_names(tmp_path: Path) -> None:
    make_coco(tmp_path)
    with pytest.raises(DatasetError, match=r"None of the 3 COCO categories .* matches a class name"):
        load_dataset(tmp_path, ("car", "bus"))


def test_coco_json_missing_images_are_skipped(tmp_path: Path) -> None:
    file = make_coco(tmp_path)
    (tmp_path / "val2017" / "2.jpg").unlink()
    dataset = load_dataset(file, NAMES)
    assert [s.image_id for s in dataset.samples] == [10]
    assert dataset.skipped_images == 1
    assert any("image 20" in issue and "not on disk" in issue for issue in dataset.issues)


def test_several_coco_files_need_a_choice(tmp_path: Path) -> None:
    make_coco(tmp_path / "a")
    annotations = tmp_path / "a" / "annotations"
    (annotations / "instances_train2017.json").write_text("{}")
    with pytest.raises(DatasetError, match="several COCO annotation files"):
        load_dataset(tmp_path / "a", NAMES)


def test_broken_coco_json(tmp_path: Path) -> None:
    file = tmp_path / "instances_x.json"
    file.write_text("{not json")
    with pytest.raises(DatasetError, match="Cannot read COCO annotations"):
        load_dataset(file, NAMES)
    file.write_text("[]")
    with pytest.raises(DatasetError, match="not a COCO instances file"):
        load_dataset(file, NAMES)
