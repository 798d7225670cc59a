"""``edgecv val``: COCO mAP of a model on a labelled dataset (YOLO folder or COCO JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edgecv.calibration import SUBSETS
from edgecv.cli.options import backend_options, model_options

if TYPE_CHECKING:
    from edgecv.evaluation import ValResult


@click.command("val")
@model_options
@click.option(
    "--data",
    "-d",
    required=True,
    help="YOLO dataset folder (images/ + labels/, or an images folder) or COCO instances_*.json.",
)
@click.option(
    "--subset",
    type=click.Choice(SUBSETS, case_sensitive=False),
    default="all",
    show_default=True,
    help="Score every image, or the even/odd half in name order (e.g. the half that "
    "`edgecv export --calib-subset` did not calibrate on).",
)
@click.option(
    "--fliplr", is_flag=True, help="Score the images flipped left-right (their labels mirrored too)."
)
@click.option("--conf", type=float, default=0.001, show_default=True, help="Minimum score.")
@click.option("--iou", type=float, default=0.7, show_default=True, help="NMS IoU threshold.")
@click.option("--max-det", type=int, default=300, show_default=True, help="Maximum detections per image.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with all results.")
@click.option(
    "--save-json",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the detections to this file in COCO results format.",
)
def val_command(
    model: str | None,
    backend: str,
    imgsz: int | None,
    arch: str | None,
    names: str | None,
    threads: int | None,
    option_pairs: tuple[str, ...],
    data: str,
    subset: str,
    fliplr: bool,
    conf: float,
    iou: float,
    max_det: int,
    as_json: bool,
    save_json: str | None,
) -> None:
    """Measure mAP50-95, mAP50, precision and recall on a labelled dataset.

    NMS is multi-label (the COCO evaluation protocol); class names come from the model or --names.
    """
    import edgecv
    from edgecv.evaluation import validate
    from edgecv.postprocess import PostprocessOptions
    from edgecv.progress import terminal_progress
    from edgecv.registry import DEFAULT_MODEL

    PostprocessOptions(conf=conf, iou=iou, max_det=max_det)  # checks them before the model loads
    options = backend_options(threads, option_pairs)
    loaded = edgecv.load(model or DEFAULT_MODEL, backend, arch=arch, imgsz=imgsz, names=names, **options)
    result = validate(
        loaded,
        data,
        conf=conf,
        iou=iou,
        max_det=max_det,
        progress=terminal_progress(enabled=not as_json),
        save_json=Path(save_json) if save_json else None,
        subset=subset,
        mirror=fliplr,
    )
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    _print_table(result)
    if save_json:
        click.echo(f"Detections written to {save_json}")


def _print_table(result: ValResult) -> None:
    width = max([len("Class"), *(len(c.name) for c in result.per_class)])
    header = (
        f"{'Class':>{width}} {'Images':>7} {'Instances':>9} {'P':>6} {'R':>6} {'mAP50':>6} {'mAP50-95':>8}"
    )
    click.echo(header)

    def row(name: str, images: int, instances: int, p: float, r: float, m50: float, m: float) -> None:
        click.echo(f"{name:>{width}} {images:>7} {instances:>9} {p:>6.3f} {r:>6.3f} {m50:>6.3f} {m:>8.3f}")

    row(
        "all", result.images, result.instances, result.precision, result.recall, result.map50, result.map50_95
    )
    for c in result.per_class:
        row(c.name, c.images, c.instances, c.precision, c.recall, c.ap50, c.ap50_95)
    stages = ", ".join(f"{stage} {ms:.1f} ms" for stage, ms in result.timing_ms.items())
    click.echo(f"Speed per image: {stages} ({result.backend}, {Path(result.model).name})")
    click.echo(f"P and R at IoU 0.5 and conf {result.f1_conf:.3f} (best mean F1)")
    skipped = result.skipped
    if skipped.images or skipped.labels:
        click.echo(f"Skipped: {skipped.images} image(s), {skipped.labels} label(s) (see the warnings above)")
