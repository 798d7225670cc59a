"""``edgecv predict``: detections for images or folders, as text, JSON lines or annotated images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgecv.cli.options import backend_options, model_options, parse_class_ids

if TYPE_CHECKING:
    from edgecv.detections import Detections


@click.command("predict")
@click.argument("sources", nargs=-1, required=True)
@model_options
@click.option("--conf", type=float, default=0.25, show_default=True, help="Minimum score.")
@click.option("--iou", type=float, default=0.45, show_default=True, help="NMS IoU threshold.")
@click.option("--max-det", type=int, default=300, show_default=True, help="Maximum detections per image.")
@click.option("--classes", default=None, help="Comma-separated class ids to keep.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per image.")
@click.option(
    "--save", "save_dir", type=click.Path(file_okay=False), default=None, help="Write annotated images here."
)
@click.option(
    "--save-json",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write all detections to this file as COCO results, as val --save-json does (image_id: the file "
    "name's number when every name is one, else the path as printed).",
)
def predict_command(
    sources: tuple[str, ...],
    model: str | None,
    backend: str,
    imgsz: int | None,
    arch: str | None,
    names: str | None,
    threads: int | None,
    option_pairs: tuple[str, ...],
    conf: float,
    iou: float,
    max_det: int,
    classes: str | None,
    as_json: bool,
    save_dir: str | None,
    save_json: str | None,
) -> None:
    """Detect objects in image files or folders of images (SOURCES).

    A JPEG far larger than any model input is decoded reduced (its longer side kept at 4096 pixels
    or more) and saved at that size with --save; boxes are given in the file's own pixels.
    """
    import edgecv
    from edgecv.errors import EdgecvError, ImageError
    from edgecv.images import iter_image_files, read_image_reduced
    from edgecv.registry import DEFAULT_MODEL

    # A mistyped argument fails before the model loads; a broken file inside a folder is reported
    # when its turn comes, like any unreadable image, and the others are still predicted.
    options = backend_options(threads, option_pairs)
    missing = [source for source in sources if not Path(source).exists()]
    if missing:
        raise ImageError(f"Image {missing[0]} does not exist", "Check the path.")
    files = list(iter_image_files(sources))
    output = Path(save_dir) if save_dir else None
    if output is not None:
        from edgecv.files import check_writable

        check_writable(output, "--save", folder=True)
    if save_json is not None:
        from edgecv.files import check_output_file

        check_output_file(Path(save_json), "--save-json", "detections.json")  # before the model loads
    class_ids = parse_class_ids(classes)
    loaded = edgecv.load(
        model or DEFAULT_MODEL,
        backend,
        arch=arch,
        imgsz=imgsz,
        names=names,
        conf=conf,
        iou=iou,
        max_det=max_det,
        classes=class_ids,
        **options,
    )
    coco = _CocoResults(files, loaded.names) if save_json is not None else None
    failures = 0
    for file in files:
        try:
            read = read_image_reduced(file)
        except EdgecvError as exc:
            if len(files) == 1:
                raise
            click.echo(f"error: {exc}", err=True)
            failures += 1
            continue
        detections = loaded.predict(read.image, source=str(file))
        if as_json:
            click.echo(json.dumps(read.restore(detections).to_dict()))
        else:
            _print_summary(file, read.restore(detections))
        if output is not None:
            from edgecv.annotate import save_annotated

            save_annotated(read.image, detections, output / file.name)  # drawn at the decoded size
        if coco is not None:
            coco.add(file, read.restore(detections))
    if coco is not None and save_json is not None:
        coco.write(Path(save_json))  # the images that could be read, even when others failed
    if failures:
        raise click.exceptions.Exit(1)


class _CocoResults:
    """COCO results entries of a predict run, in val --save-json's format and with its writer.

    ``image_id`` is the file name's number when every name is a distinct number (COCO's own
    000000000139.jpg: the results score against the official annotations), else the path as
    printed (the ``source`` of --json); ``category_id`` is the COCO id when the model has the 80
    COCO classes, else the class id.
    """

    def __init__(self, files: list[Path], names: tuple[str, ...]) -> None:
        from edgecv.evaluation.datasets import COCO80_TO_91
        from edgecv.names import COCO80

        stems = [file.stem for file in files]
        numeric = all(s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems)
        self.image_ids: dict[Path, int | str] = {
            file: int(file.stem) if numeric else str(file) for file in files
        }
        coco_names = tuple(n.lower() for n in names) == COCO80
        self.category_ids = COCO80_TO_91 if coco_names else tuple(range(len(names)))
        self.entries: list[dict[str, Any]] = []

    def add(self, file: Path, detections: Detections) -> None:
        from edgecv.evaluation.validate import _coco_results

        # val's ids are numbers; a path here is written the same way
        image_id = self.image_ids[file]
        self.entries += _coco_results(detections, image_id, self.category_ids)  # type: ignore[arg-type]

    def write(self, path: Path) -> None:
        from edgecv.evaluation.validate import _write_json

        _write_json(path, self.entries)


def _print_summary(file: Path, detections: Detections) -> None:
    height, width = detections.image_shape
    counts: dict[str, int] = {}
    for label in detections.labels:
        counts[label] = counts.get(label, 0) + 1
    found = ", ".join(f"{n} {label}" for label, n in counts.items()) or "no detections"
    timing = detections.timings
    stages = (
        f"  [pre {timing.preprocess:.1f} ms | infer {timing.infer:.1f} ms | post {timing.postprocess:.1f} ms]"
        if timing
        else ""
    )
    click.echo(f"{file} ({width}x{height}): {found}{stages}")
    for det in detections:
        box = ", ".join(f"{v:.1f}" for v in det.box)
        click.echo(f"  {det.label:<14} {det.score:.3f}  [{box}]")
