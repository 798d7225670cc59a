"""``validate``: run a model over a labelled dataset and score it with COCO mAP.

NMS runs multi-label (one box may count for several classes) with conf 0.001 and IoU 0.7, the
protocol behind published YOLO mAPs: on coco128 it reproduces the reference numbers in the
assets' SOURCES.md, which single-label NMS misses (YOLO11n at 320: 0.339 instead of 0.346
mAP50-95). The model's own ``classes`` / ``agnostic`` settings are not used: val measures the model.
Problems with single files (bad label lines, undecodable images) are skipped, counted, and
reported as ``DatasetWarning`` (first few only; all of them are in ``ValResult.issues``).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

from edgecv.errors import ConfigError, EdgecvError
from edgecv.evaluation.datasets import Dataset, DatasetError, Sample, load_dataset
from edgecv.evaluation.metrics import ImageMatches, accumulate, match_image
from edgecv.files import atomic_target, check_output_file
from edgecv.postprocess import PostprocessOptions
from edgecv.progress import Progress, report

if TYPE_CHECKING:
    from edgecv.detections import Detections
    from edgecv.model import Model

WARNING_LIMIT = 10
"""Problems reported one by one before the rest are summarized in a count."""
PREFETCH = 2
"""Images decoded ahead in a thread while the model runs (OpenCV releases the GIL)."""


class DatasetWarning(UserWarning):
    """A label line, annotation or image was skipped."""


@attrs.frozen
class ClassResult:
    """Scores of one class that has ground truth; P/R at the run's best-F1 confidence."""

    class_id: int
    name: str
    images: int
    instances: int
    precision: float
    recall: float
    ap50: float
    ap50_95: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_id": self.class_id,
            "name": self.name,
            "images": self.images,
            "instances": self.instances,
            "precision": round(self.precision, 6),
            "recall": round(self.recall, 6),
            "ap50": round(self.ap50, 6),
            "ap50_95": round(self.ap50_95, 6),
        }


@attrs.frozen
class Skipped:
    """What did not enter the metrics."""

    images: int = 0
    """Images that failed to decode, or that a COCO file lists but are not on disk."""
    labels: int = 0
    """Rejected YOLO label lines and COCO annotations (incl. categories the model lacks)."""
    orphan_labels: int = 0
    """YOLO label files without an image."""

    def to_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


@attrs.frozen
class ValResult:
    """The outcome of ``validate``; ``to_dict`` is what ``edgecv val --json`` prints."""

    model: str
    backend: str
    data: str
    format: str
    map50: float
    map50_95: float
    precision: float
    """Mean over classes at IoU 0.5 and confidence ``f1_conf``."""
    recall: float
    f1_conf: float
    """The confidence threshold maximizing the class-mean F1 (where P and R are taken)."""
    images: int
    instances: int
    per_class: tuple[ClassResult, ...]
    skipped: Skipped
    timing_ms: dict[str, float]
    """Mean per image: read (decode), preprocess, infer, postprocess."""
    options: dict[str, Any]
    issues: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "data": self.data,
            "format": self.format,
            "map50": round(self.map50, 6),
            "map50_95": round(self.map50_95, 6),
            "precision": round(self.precision, 6),
            "recall": round(self.recall, 6),
            "f1_conf": round(self.f1_conf, 4),
            "images": self.images,
            "instances": self.instances,
            "per_class": [c.to_dict() for c in self.per_class],
            "skipped": self.skipped.to_dict(),
            "timing_ms": {k: round(v, 3) for k, v in self.timing_ms.items()},
            "options": dict(self.options),
            "issues": list(self.issues),
        }


def validate(
    model: Model,
    data: str | Path,
    *,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    progress: Progress | None = None,
    save_json: Path | None = None,
    subset: str | None = None,
    mirror: bool = False,
) -> ValResult:
    """COCO mAP50-95 / mAP50 of ``model`` on a YOLO folder or COCO JSON dataset ``data``.

    ``progress`` is told of each image (stage ``val MODEL-FILE``, see ``edgecv.progress``).
    ``save_json`` writes the detections in COCO results format: YOLO folders use the image stem
    as ``image_id`` when every stem is a number (else the image's index in sorted order) and the
    COCO category id (1..90) when the model has the 80 COCO class names (else the class id); COCO
    datasets use their own image and category ids. ``subset`` (``"even"``/``"odd"``) scores one
    half of the images in name order and ``mirror`` flips them left-right with their labels
    (``datasets.select``): held-out scoring of a model calibrated on the other half.
    """
    dataset = load_dataset(data, model.names, subset=subset, mirror=mirror)
    if save_json is not None:
        check_output_file(Path(save_json), "--save-json", "detections.json")  # before a long run
    _warn(dataset.issues, "dataset problems")
    options = PostprocessOptions(conf=conf, iou=iou, max_det=max_det, multi_label=True)
    run = _Run(dataset, model, max_det, keep_detections=save_json is not None)
    with ThreadPoolExecutor(max_workers=1) as pool:
        stage = f"val {model.spec.path.name}"
        with report(progress)(stage, len(dataset.samples)) as advance:
            for sample, future in _prefetch(pool, dataset.samples):
                run.add(sample, future, options)
                advance(1)
    _warn(run.failures, "unreadable images")
    if not run.matches:
        raise DatasetError(
            f"None of the {len(dataset.samples)} images in {dataset.root} could be read",
            "Check the files (see the warnings above).",
        )
    if save_json is not None:
        _write_json(Path(save_json), run.detections)
    return run.result(data, options)


def _prefetch(
    pool: ThreadPoolExecutor, samples: Sequence[Sample]
) -> Iterator[tuple[Sample, Future[tuple[npt.NDArray[np.uint8], float]]]]:
    pending: list[tuple[Sample, Future[tuple[npt.NDArray[np.uint8], float]]]] = []
    for sample in samples:
        pending.append((sample, pool.submit(_timed_read, sample)))
        if len(pending) > PREFETCH:
            yield pending.pop(0)
    yield from pending


def _timed_read(sample: Sample) -> tuple[npt.NDArray[np.uint8], float]:
    start = time.perf_counter()
    image = sample.read()  # flipped left-right for a mirrored sample
    return image, (time.perf_counter() - start) * 1e3


class _Run:
    """Per-image state of one validation: matches, timings, failures, detections to save."""

    def __init__(self, dataset: Dataset, model: Model, max_det: int, keep_detections: bool) -> None:
        self.dataset = dataset
        self.model = model
        self.max_det = max_det
        self.keep_detections = keep_detections
        self.matches: list[ImageMatches] = []
        self.class_images = np.zeros(len(model.names), np.int64)
        self.timings: list[tuple[float, float, float, float]] = []
        self.failures: list[str] = []
        self.detections: list[dict[str, Any]] = []

    def add(
        self,
        sample: Sample,
        future: Future[tuple[npt.NDArray[np.uint8], float]],
        options: PostprocessOptions,
    ) -> None:
        try:
            image, read_ms = future.result()
        except EdgecvError as exc:
            self.failures.append(f"{exc}; image skipped")
            return
        except OSError as exc:  # unreadable file (permissions, I/O error)
            self.failures.append(f"Cannot read {sample.path}: {exc.strerror or exc}; image skipped")
            return
        found = self.model.predict(image, options, source=str(sample.path))
        height, width = image.shape[:2]
        self.matches.append(
            match_image(
                found.boxes,
                found.scores,
                found.class_ids,
                sample.pixel_boxes(height, width),
                sample.class_ids,
                sample.crowd,
                max_det=self.max_det,
            )
        )
        present = np.unique(sample.class_ids[~sample.crowd])
        self.class_images[present[present < len(self.class_images)]] += 1
        stages = found.timings
        if stages is not None:
            self.timings.append((read_ms, stages.preprocess, stages.infer, stages.postprocess))
        if self.keep_detections:
            self.detections += _coco_results(found, sample.image_id, self.dataset.category_ids)

    def result(self, data: str | Path, options: PostprocessOptions) -> ValResult:
        scores = accumulate(self.matches)
        names = self.model.names
        per_class = tuple(
            ClassResult(
                class_id=int(c),
                name=names[c] if 0 <= c < len(names) else str(c),
                images=int(self.class_images[c]) if 0 <= c < len(names) else 0,
                instances=int(n),
                precision=float(p),
                recall=float(r),
                ap50=float(a50),
                ap50_95=float(a),
            )
            for c, n, p, r, a50, a in zip(
                scores.class_ids,
                scores.instances,
                scores.precision,
                scores.recall,
                scores.ap50,
                scores.ap50_95,
                strict=True,
            )
        )
        means = np.mean(self.timings, axis=0) if self.timings else np.zeros(4)
        read = len(self.matches)
        dataset = self.dataset
        return ValResult(
            model=str(self.model.spec.path),
            backend=self.model.backend,
            data=str(data),
            format=dataset.format,
            map50=scores.map50,
            map50_95=scores.map50_95,
            precision=scores.mean_precision,
            recall=scores.mean_recall,
            f1_conf=scores.conf,
            images=read,
            instances=int(scores.instances.sum()),
            per_class=per_class,
            skipped=Skipped(
                images=dataset.skipped_images + len(self.failures),
                labels=dataset.skipped_labels,
                orphan_labels=dataset.orphan_labels,
            ),
            timing_ms=dict(
                zip(("read", "preprocess", "infer", "postprocess"), map(float, means), strict=True)
            ),
            options={
                "conf": options.conf,
                "iou": options.iou,
                "max_det": options.max_det,
                "multi_label": options.multi_label,
                "subset": dataset.subset,
                "mirror": dataset.mirrored,
            },
            issues=(*dataset.issues, *self.failures),
        )


def _coco_results(found: Detections, image_id: int, category_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Detections as COCO results entries; classes without a category id are left out."""
    entries = []
    for box, score, class_id in zip(
        found.boxes.tolist(), found.scores.tolist(), found.class_ids.tolist(), strict=True
    ):
        category = category_ids[class_id] if 0 <= class_id < len(category_ids) else -1
        if category < 0:
            continue
        x1, y1, x2, y2 = box
        entries.append(
            {
                "image_id": image_id,
                "category_id": category,
                "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                "score": round(score, 5),
            }
        )
    return entries


def _write_json(path: Path, entries: list[dict[str, Any]]) -> None:
    """Through a fresh temporary name, renamed: never through a link planted at ``path``."""
    try:
        with atomic_target(path) as partial:
            partial.write_text(json.dumps(entries, separators=(",", ":")) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"Cannot write detections to {path}: {exc.strerror or exc}", "Pass a writable --save-json path."
        ) from exc


def _warn(issues: Sequence[str], what: str) -> None:
    for issue in issues[:WARNING_LIMIT]:
        warnings.warn(issue, DatasetWarning, stacklevel=3)
    if len(issues) > WARNING_LIMIT:
        warnings.warn(
            f"... and {len(issues) - WARNING_LIMIT} more {what} (the first {WARNING_LIMIT} are shown)",
            DatasetWarning,
            stacklevel=3,
        )
