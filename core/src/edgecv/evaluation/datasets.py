"""Validation datasets: YOLO label folders and COCO ``instances_*.json`` files.

Loading never prints and never stops on a bad label: each problem becomes one line in
``Dataset.issues`` (with file:line or the annotation id), the label is skipped and counted, so a
few broken files in a large dataset cost those labels, not the whole run.

``select`` keeps a half of a dataset (``subset="even"``/``"odd"``: positions in name order, the
halves ``edgecv export --calib-subset`` calibrates on) and can mirror it left-right (image and
boxes), a second, independent view of the same images for accuracy comparisons.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.calibration import check_subset, take_subset
from edgecv.errors import EdgecvError
from edgecv.images import IMAGE_SUFFIXES, read_image
from edgecv.names import COCO80

TOLERANCE = 0.01
"""How far outside 0..1 a normalized YOLO coordinate may lie (label tools round) before it is rejected."""

COCO80_TO_91 = (
    *range(1, 12),
    *range(13, 26),
    27,
    28,
    *range(31, 45),
    *range(46, 66),
    67,
    70,
    *range(72, 83),
    *range(84, 91),
)
"""COCO category id of each of the 80 contiguous COCO classes (the official annotations skip 11 ids)."""


class DatasetError(EdgecvError):
    """A validation dataset is missing, empty, or in a layout edgecv does not read."""


@attrs.frozen(eq=False)
class Sample:
    """One image and its ground truth.

    ``boxes`` are xyxy, normalized to 0..1 when ``normalized`` (YOLO labels; the image size is
    only known once the image is decoded), else in pixels (COCO), always as in the file on disk;
    a ``mirrored`` sample is read (``read``) and scored (``pixel_boxes``) flipped left-right.
    """

    path: Path
    image_id: int
    boxes: npt.NDArray[np.float64]
    class_ids: npt.NDArray[np.int64]
    crowd: npt.NDArray[np.bool_]
    normalized: bool
    mirrored: bool = False

    def pixel_boxes(self, height: int, width: int) -> npt.NDArray[np.float64]:
        """The ground truth in pixels of the image as ``read`` returns it."""
        boxes = self.boxes
        if self.normalized:
            boxes = boxes * np.array([width, height, width, height], np.float64)
        if self.mirrored:  # x -> width - x; the left edge becomes the right one (YOLO: cx -> 1 - cx)
            boxes = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)
        return boxes

    def read(self) -> npt.NDArray[np.uint8]:
        """The image (BGR), flipped left-right when ``mirrored``."""
        image = read_image(self.path)
        return np.ascontiguousarray(image[:, ::-1]) if self.mirrored else image


@attrs.frozen(eq=False)
class Dataset:
    """Samples in evaluation order, plus what was skipped while reading the labels."""

    format: str
    """``"yolo"`` or ``"coco"``."""
    root: Path
    samples: tuple[Sample, ...]
    category_ids: tuple[int, ...]
    """The category id written by ``--save-json`` for each model class id (-1: not written)."""
    issues: tuple[str, ...] = ()
    skipped_labels: int = 0
    """YOLO label lines or COCO annotations that were rejected."""
    skipped_images: int = 0
    """Images listed in a COCO file that are not on disk."""
    orphan_labels: int = 0
    """YOLO label files without an image (ignored)."""
    subset: str = "all"
    """The half of the images kept by ``select`` (``all``, ``even``, ``odd``)."""
    mirrored: bool = False
    """Every sample flipped left-right by ``select``."""


def load_dataset(
    path: str | os.PathLike[str], names: Sequence[str], *, subset: str | None = None, mirror: bool = False
) -> Dataset:
    """Read a YOLO folder (root with images/ + labels/, or an images folder) or a COCO JSON file.

    A folder holding exactly one ``instances_*.json`` (or ``annotations/instances_*.json``) is
    read as COCO; class names come from the model (``names``). ``subset`` and ``mirror``: see
    ``select``.
    """
    return select(_load(path, names), subset, mirror)


def select(dataset: Dataset, subset: str | None = None, mirror: bool = False) -> Dataset:
    """The samples of ``subset`` (``"all"``, ``"even"``, ``"odd"``: positions in name order, as
    ``edgecv.calibration.take_subset`` numbers a calibration folder), mirrored left-right if asked."""
    name = check_subset(subset, "subset")
    if name == "all" and not mirror:
        return dataset
    by_name = sorted(range(len(dataset.samples)), key=lambda i: dataset.samples[i].path)
    kept = sorted(take_subset(by_name, name))  # in evaluation order
    if not kept:
        raise DatasetError(
            f"The {name} half of {dataset.root} holds no images (the dataset has one)",
            "Pass a dataset with more images, or leave out --subset.",
        )
    samples = [dataset.samples[i] for i in kept]
    if mirror:
        samples = [attrs.evolve(sample, mirrored=True) for sample in samples]
    return attrs.evolve(dataset, samples=tuple(samples), subset=name, mirrored=mirror)


def _load(path: str | os.PathLike[str], names: Sequence[str]) -> Dataset:
    data = Path(path)
    if not data.exists():
        raise DatasetError(
            f"Dataset {data} does not exist",
            "Pass --data with a YOLO dataset folder (images/ + labels/) or a COCO instances_*.json file.",
        )
    if data.is_file():
        if data.suffix.lower() != ".json":
            raise DatasetError(
                f"Dataset {data} is a file but not a COCO .json file",
                "Pass a YOLO dataset folder (images/ + labels/) or a COCO instances_*.json file.",
            )
        return load_coco(data, names)
    annotations = sorted(data.glob("instances_*.json")) + sorted(data.glob("annotations/instances_*.json"))
    if len(annotations) == 1:
        return load_coco(annotations[0], names)
    if len(annotations) > 1:
        shown = ", ".join(str(a) for a in annotations)
        raise DatasetError(
            f"{data} holds several COCO annotation files ({shown})",
            "Pass the one to evaluate with --data, e.g. --data " + str(annotations[-1]) + ".",
        )
    return load_yolo(data, names)


# ---------------------------------------------------------------------------------------------- YOLO


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder in the path becomes ``labels``, suffix ``.txt``."""
    parts = image.parts
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == "images":
            return Path(*parts[:index], "labels", *parts[index + 1 :]).with_suffix(".txt")
    return image.with_suffix(".txt")


def load_yolo(folder: Path, names: Sequence[str]) -> Dataset:
    """Images found recursively (under ``folder/images`` when it exists); labels by ``label_path``."""
    search = folder / "images" if (folder / "images").is_dir() else folder
    images = sorted(
        p
        for p in search.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
    if not images:
        raise DatasetError(
            f"No images found in {search}",
            f"A YOLO dataset holds {', '.join(IMAGE_SUFFIXES)} files under images/, labels under labels/.",
        )
    stems = [p.stem for p in images]
    # COCO-style names (000000000009.jpg) keep their number as image id, so --save-json output
    # can be scored against the official annotations; anything else gets a running index.
    numeric = all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems)
    issues: list[str] = []
    skipped = 0
    labelled = 0
    used: set[Path] = set()
    samples = []
    for index, image in enumerate(images):
        file = label_path(image)
        if not file.is_file() and image.with_suffix(".txt").is_file():
            file = image.with_suffix(".txt")
        boxes, class_ids = np.zeros((0, 4)), np.zeros(0, np.int64)
        if file.is_file():
            used.add(file.resolve())
            labelled += 1
            boxes, class_ids, problems = parse_label_file(file, len(names))
            issues += problems
            skipped += len(problems)
        samples.append(
            Sample(
                image,
                int(image.stem) if numeric else index,
                boxes,
                class_ids,
                np.zeros(len(class_ids), dtype=bool),
                normalized=True,
            )
        )
    if not labelled:
        raise DatasetError(
            f"None of the {len(images)} images in {search} has a label file "
            f"(looked for e.g. {label_path(images[0])})",
            "Put YOLO labels (class cx cy w h, normalized) in labels/ next to images/, one .txt per image.",
        )
    orphans = _orphan_labels(search, used)
    if orphans:
        issues.append(f"{len(orphans)} label file(s) have no image and are ignored (e.g. {orphans[0]})")
    coco_names = tuple(n.lower() for n in names) == COCO80
    category_ids = COCO80_TO_91 if coco_names else tuple(range(len(names)))
    return Dataset(
        "yolo",
        search,
        tuple(samples),
        tuple(category_ids),
        tuple(issues),
        skipped_labels=skipped,
        orphan_labels=len(orphans),
    )


def _orphan_labels(search: Path, used: set[Path]) -> list[Path]:
    labels = label_path(search / "x.jpg").parent
    if labels == search or not labels.is_dir():
        return []  # labels beside the images: other .txt files there are not necessarily labels
    return sorted(p for p in labels.rglob("*.txt") if p.resolve() not in used)


def parse_label_file(
    file: Path, num_classes: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], list[str]]:
    """Boxes (normalized xyxy) and class ids of a YOLO label file, and one issue per rejected line.

    A line is ``class cx cy w h`` or a polygon ``class x1 y1 x2 y2 x3 y3 ...`` (segmentation
    labels, boxed by their extent, as Ultralytics does).
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return np.zeros((0, 4)), np.zeros(0, np.int64), [f"{file}: cannot read label file ({reason})"]
    boxes: list[list[float]] = []
    classes: list[int] = []
    issues: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        parsed = _parse_line(fields, num_classes)
        if isinstance(parsed, str):
            shown = line.strip() if len(line.strip()) <= 60 else line.strip()[:57] + "..."
            issues.append(f"{file}:{number}: {parsed}: {shown!r}; line skipped")
            continue
        classes.append(parsed[0])
        boxes.append(parsed[1])
    return (
        np.asarray(boxes, np.float64).reshape(-1, 4),
        np.asarray(classes, np.int64),
        issues,
    )


def _parse_line(fields: list[str], num_classes: int) -> tuple[int, list[float]] | str:
    """(class id, normalized xyxy) or the reason the line is rejected."""
    if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
        return f"expected 5 fields (class cx cy w h) or a polygon, got {len(fields)}"
    try:
        values = [float(f) for f in fields]
    except ValueError:
        return "not numbers"
    if not all(math.isfinite(v) for v in values):
        return "not finite numbers"
    class_value = values[0]
    if class_value != int(class_value):
        return f"class id {fields[0]} is not an integer"
    class_id = int(class_value)
    if not 0 <= class_id < num_classes:
        return f"class id {class_id} out of range for the model's {num_classes} classes"
    coords = values[1:]
    if any(v < -TOLERANCE or v > 1 + TOLERANCE for v in coords):
        return "coordinates outside 0..1 (labels must be normalized to the image size)"
    if len(fields) == 5:
        cx, cy, w, h = coords
        if w <= 0 or h <= 0:
            return "box width and height must be positive"
        return class_id, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    xs, ys = coords[0::2], coords[1::2]
    if max(xs) <= min(xs) or max(ys) <= min(ys):
        return "polygon has no area"
    return class_id, [min(xs), min(ys), max(xs), max(ys)]


# ---------------------------------------------------------------------------------------------- COCO


def load_coco(file: Path, names: Sequence[str]) -> Dataset:
    """A COCO ``instances`` file; categories are matched to the model's classes by name."""
    try:
        content = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(
            f"Cannot read COCO annotations {file}: {exc}", "Pass a valid COCO instances_*.json file."
        ) from exc
    if not isinstance(content, dict) or not isinstance(content.get("images"), list):
        raise DatasetError(
            f"{file} is not a COCO instances file (no 'images' list)",
            "Pass a COCO instances_*.json file with images, annotations and categories.",
        )
    images: list[dict[str, Any]] = [i for i in content["images"] if isinstance(i, dict)]
    annotations: list[Any] = content.get("annotations") or []
    categories: list[Any] = content.get("categories") or []
    if not images:
        raise DatasetError(f"{file} lists no images", "Pass a COCO file with an 'images' list.")

    lookup = {name.strip().lower(): index for index, name in enumerate(names)}
    to_class: dict[int, int] = {}
    unmatched: list[str] = []
    for category in categories:
        if not isinstance(category, dict) or "id" not in category:
            continue
        name = str(category.get("name", "")).strip().lower()
        if name in lookup:
            to_class[int(category["id"])] = lookup[name]
        else:
            unmatched.append(str(category.get("name")))
    if not to_class:
        shown = ", ".join(str(c.get("name")) for c in categories[:8] if isinstance(c, dict))
        raise DatasetError(
            f"None of the {len(categories)} COCO categories in {file} ({shown}, ...) "
            f"matches a class name of the model ({', '.join(names[:8])}, ...)",
            "Pass --names with the class names the model was trained on, in its class order.",
        )
    issues: list[str] = []

    folder = _coco_image_folder(file, [str(i.get("file_name", "")) for i in images])
    per_image: dict[int, list[tuple[list[float], int, bool]]] = {}
    skipped_labels = unmapped = 0
    for annotation in annotations:
        parsed = _parse_annotation(annotation, to_class)
        if parsed is None:
            unmapped += 1
            continue
        if isinstance(parsed, str):
            skipped_labels += 1
            issues.append(f"{file.name}: annotation {_annotation_id(annotation)}: {parsed}; skipped")
            continue
        image_id, box, class_id, crowd = parsed
        per_image.setdefault(image_id, []).append((box, class_id, crowd))
    if unmatched:
        skipped_labels += unmapped
        issues.insert(
            0,
            f"{len(unmatched)} COCO categor{'y' if len(unmatched) == 1 else 'ies'} of {file.name} "
            f"match no class name of the model; their {unmapped} annotation(s) are skipped: "
            + ", ".join(unmatched[:10])
            + (", ..." if len(unmatched) > 10 else ""),
        )

    samples = []
    missing = 0
    for image in images:
        image_file = folder / str(image.get("file_name", ""))
        number = _image_id(image)
        if number is None or not image_file.is_file():
            missing += 1
            reason = "has no integer id" if number is None else "is not on disk"
            issues.append(f"{file.name}: image {image.get('id')} ({image_file}) {reason}; skipped")
            continue
        found = per_image.get(number, [])
        samples.append(
            Sample(
                image_file,
                number,
                np.asarray([f[0] for f in found], np.float64).reshape(-1, 4),
                np.asarray([f[1] for f in found], np.int64),
                np.asarray([f[2] for f in found], bool),
                normalized=False,
            )
        )
    if not samples:
        raise DatasetError(
            f"None of the {len(images)} images listed in {file} is on disk (looked in {folder})",
            "Put the images next to the annotations (e.g. val2017/ beside annotations/).",
        )
    reverse = {class_id: category for category, class_id in sorted(to_class.items(), reverse=True)}
    category_ids = tuple(reverse.get(i, -1) for i in range(len(names)))
    return Dataset(
        "coco",
        folder,
        tuple(samples),
        category_ids,
        tuple(issues),
        skipped_labels=skipped_labels,
        skipped_images=missing,
    )


def _image_id(image: dict[str, Any]) -> int | None:
    try:
        return int(image["id"])
    except (KeyError, TypeError, ValueError):
        return None


def _annotation_id(annotation: Any) -> str:
    return str(annotation.get("id", "?")) if isinstance(annotation, dict) else "?"


def _parse_annotation(
    annotation: Any, to_class: dict[int, int]
) -> tuple[int, list[float], int, bool] | str | None:
    """(image id, xyxy box, class id, crowd), the reason it is rejected, or None (unmapped category)."""
    if not isinstance(annotation, dict):
        return "not an object"
    try:
        image_id = int(annotation["image_id"])
        category = int(annotation["category_id"])
        x, y, w, h = (float(v) for v in annotation["bbox"])
    except (KeyError, TypeError, ValueError):
        return "needs image_id, category_id and bbox [x, y, w, h]"
    if category not in to_class:
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return f"bbox {annotation['bbox']} has no area"
    return image_id, [x, y, x + w, y + h], to_class[category], bool(annotation.get("iscrowd", 0))


def _coco_image_folder(file: Path, file_names: list[str]) -> Path:
    """Where the images are: COCO keeps annotations/instances_val2017.json beside val2017/."""
    split = file.stem.removeprefix("instances_")
    parent = file.parent
    root = parent.parent if parent.name == "annotations" else parent
    candidates = [
        root / split,
        root / "images" / split,
        root / "images",
        root,
        parent / split,
        parent / "images",
        parent,
    ]
    probe = file_names[:20]
    best, best_found = candidates[0], 0
    for candidate in dict.fromkeys(candidates):
        found = sum((candidate / name).is_file() for name in probe)
        if found > best_found:
            best, best_found = candidate, found
    return best
